/**
 * What to export, where and how: the `telemetry` section with the standard OTEL_* environment
 * variables applied. A variable that is set (and not empty, the OTel spec's rule) wins over the
 * file, as TOKENWARDEN_FINGERPRINT_SECRET does: that is how an orchestrator or the OpenTelemetry
 * Operator points every sidecar at a Collector without editing each file. Headers merge by name
 * (file, then OTEL_EXPORTER_OTLP_HEADERS, then the per-signal variable). Invalid values fail the
 * start with the variable, the key it replaces and what is wrong (a ConfigError, exit code 2).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { workerIndex } from '../worker-env.js';
import { ConfigError, formatPath, type ConfigIssue } from '../config/errors.js';
import type { Environment } from '../config/load.js';
import type { Issue, Schema } from '../config/schema.js';
import { otlpEndpoint, otlpHeaders, telemetryFields } from '../config/telemetry-schema.js';
import type { TelemetryConfig } from '../config/types.js';

export type Signal = 'metrics' | 'traces';

export interface OtlpTarget {
  protocol: TelemetryConfig['otlp']['protocol'];
  /** HTTP: the signal's full URL. gRPC: the receiver's URL (scheme, host and port). */
  url: string;
  /** Secrets: never logged. */
  headers: Record<string, string>;
  timeoutMs: number;
  /** Metrics: the export interval. Traces: the longest a finished span waits for its batch. */
  intervalMs: number;
}

export interface TraceTarget extends OtlpTarget {
  sampleRatio: number;
  maxQueueSize: number;
}

export interface TelemetrySettings {
  /** null: no metrics export. */
  metrics: OtlpTarget | null;
  /** null: no spans. */
  traces: TraceTarget | null;
  /** Resource attributes: service.name, service.version, service.instance.id and OTEL_RESOURCE_ATTRIBUTES. */
  resource: Record<string, string>;
}

const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
/** OTEL_* numbers are plain; other strings go to the schema as they are (a duration such as "10s" is fine). */
const numeric = (raw: string): unknown => (NUMBER.test(raw) ? Number(raw) : raw);

/** Reads OTEL_* variables, checking each with the schema of the key it replaces; collects every problem. */
class EnvReader {
  readonly issues: ConfigIssue[] = [];

  constructor(private readonly env: Environment) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  value<T>(name: string, key: string, schema: Schema<T>, convert: (raw: string) => unknown = (raw) => raw): T | undefined {
    const raw = this.raw(name);
    if (raw === undefined) return undefined;
    const issues: Issue[] = [];
    const parsed = schema.parse(convert(raw), key.split('.'), issues);
    for (const issue of issues) this.issues.push({ source: `environment variable ${name}`, path: formatPath(issue.path), message: issue.message });
    return issues.length === 0 ? parsed : undefined;
  }

  /** Header variables: pairs whose names are checked like telemetry.otlp.headers. */
  headers(name: string): Record<string, string> {
    return this.value(name, HEADERS, otlpHeaders(), () => this.pairs(name, HEADERS)) ?? {};
  }

  /** `key=value,key=value` with percent-encoded values (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
  pairs(name: string, key: string): Record<string, string> {
    const raw = this.raw(name);
    if (raw === undefined) return {};
    const out: [string, string][] = [];
    for (const item of raw.split(',')) {
      if (item.trim() === '') continue;
      const eq = item.indexOf('=');
      const pairKey = eq < 0 ? '' : item.slice(0, eq).trim();
      let value: string | undefined;
      try {
        value = eq < 0 ? undefined : decodeURIComponent(item.slice(eq + 1).trim());
      } catch {
        value = undefined;
      }
      if (pairKey === '' || value === undefined) {
        // The values may be secrets (headers): say what is wrong, never what was given.
        this.issues.push({ source: `environment variable ${name}`, path: key, message: 'expected comma-separated key=value pairs with percent-encoded values' });
        return {};
      }
      out.push([pairKey, value]);
    }
    return Object.fromEntries(out);
  }
}

const PROTOCOL = 'telemetry.otlp.protocol';
const ENDPOINT = 'telemetry.otlp.endpoint';
const HEADERS = 'telemetry.otlp.headers';
const TIMEOUT = 'telemetry.otlp.timeout_ms';

/** Base URL + `v1/metrics` (the OTel spec's rule for OTEL_EXPORTER_OTLP_ENDPOINT); gRPC takes the URL as it is. */
function signalUrl(base: string, protocol: OtlpTarget['protocol'], signal: Signal): string {
  if (base === '' || protocol === 'grpc') return base;
  return `${base.replace(/\/+$/, '')}/v1/${signal}`;
}

function packageVersion(): string {
  // The same relative location from src/telemetry/ and dist/telemetry/.
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}

export interface Instance {
  /** service.version. */
  version: string;
  /** The `--workers` worker this process is (1-based), or null. */
  workerIndex: number | null;
}

export function resolveTelemetry(
  config: TelemetryConfig,
  env: Environment = process.env,
  instance: Instance = { version: packageVersion(), workerIndex: workerIndex() },
): TelemetrySettings {
  const read = new EnvReader(env);
  const resource = resourceAttributes(config, read, instance);
  const fields = telemetryFields.otlp.fields;
  const protocol = read.value('OTEL_EXPORTER_OTLP_PROTOCOL', PROTOCOL, fields.protocol) ?? config.otlp.protocol;
  const endpoint = read.value('OTEL_EXPORTER_OTLP_ENDPOINT', ENDPOINT, otlpEndpoint()) ?? config.otlp.endpoint;
  const headers = { ...config.otlp.headers, ...read.headers('OTEL_EXPORTER_OTLP_HEADERS') };
  const timeoutMs = read.value('OTEL_EXPORTER_OTLP_TIMEOUT', TIMEOUT, fields.timeout_ms, numeric) ?? config.otlp.timeout_ms;

  const target = (signal: Signal, intervalMs: number): OtlpTarget | null => {
    const prefix = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}`;
    const own = read.value(`${prefix}_PROTOCOL`, PROTOCOL, fields.protocol) ?? protocol;
    // The per-signal endpoint is the full URL, used as it is.
    const url = read.value(`${prefix}_ENDPOINT`, ENDPOINT, otlpEndpoint()) ?? signalUrl(endpoint, own, signal);
    const ownHeaders = read.headers(`${prefix}_HEADERS`);
    const ownTimeout = read.value(`${prefix}_TIMEOUT`, TIMEOUT, fields.timeout_ms, numeric);
    return url === '' ? null : { protocol: own, url, headers: { ...headers, ...ownHeaders }, timeoutMs: ownTimeout ?? timeoutMs, intervalMs };
  };
  const metricsInterval =
    read.value('OTEL_METRIC_EXPORT_INTERVAL', 'telemetry.metrics.export_interval_ms', telemetryFields.metrics.fields.export_interval_ms, numeric) ??
    config.metrics.export_interval_ms;
  const traceFields = telemetryFields.traces.fields;
  const spanDelay = read.value('OTEL_BSP_SCHEDULE_DELAY', 'telemetry.traces.export_interval_ms', traceFields.export_interval_ms, numeric) ?? config.traces.export_interval_ms;
  const sampleRatio = read.value('OTEL_TRACES_SAMPLER_ARG', 'telemetry.traces.sample_ratio', traceFields.sample_ratio, numeric) ?? config.traces.sample_ratio;
  const maxQueueSize = read.value('OTEL_BSP_MAX_QUEUE_SIZE', 'telemetry.traces.max_queue_size', traceFields.max_queue_size, numeric) ?? config.traces.max_queue_size;
  const metrics = target('metrics', metricsInterval);
  const traces = target('traces', spanDelay);
  if (read.issues.length > 0) throw new ConfigError(read.issues);
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return { metrics: null, traces: null, resource };
  return { metrics, traces: config.traces.enabled && traces !== null ? { ...traces, sampleRatio, maxQueueSize } : null, resource };
}

function resourceAttributes(config: TelemetryConfig, read: EnvReader, instance: Instance): Record<string, string> {
  const attributes = read.pairs('OTEL_RESOURCE_ATTRIBUTES', '');
  const name = read.value('OTEL_SERVICE_NAME', 'telemetry.service_name', telemetryFields.service_name);
  const given = attributes['service.instance.id'];
  return {
    ...attributes,
    'service.name': name ?? attributes['service.name'] ?? config.service_name,
    'service.version': attributes['service.version'] ?? instance.version,
    // Every process exports its own series: workers sharing a configured id get their index appended.
    'service.instance.id': given === undefined ? randomUUID() : instance.workerIndex === null ? given : `${given}-${instance.workerIndex}`,
  };
}
