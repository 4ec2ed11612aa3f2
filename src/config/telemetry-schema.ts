/**
 * The `telemetry:` section of the YAML configuration: OTLP export of the metrics and, optionally,
 * one span per LLM exchange (src/telemetry/). Example:
 *
 *   telemetry:
 *     otlp:
 *       endpoint: http://otel-collector:4318   # "" (default): no export
 *       protocol: http/protobuf                # or grpc (then usually port 4317)
 *       headers: { x-tenant: payments }
 *     traces: { enabled: true, sample_ratio: 0.1 }
 *
 * The field schemas are exported so that the OTEL_* environment variables, which replace these
 * keys, are checked by the same rules (src/telemetry/settings.ts).
 */
import { bool, duration, int, isMapping, key, oneOf, section, text, type Schema } from './schema.js';

export const OTLP_PROTOCOLS = ['http/protobuf', 'grpc'] as const;

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const MAX_HEADERS = 64;

/** "" (export off) or an http:// or https:// URL. Not echoed: a URL may carry credentials. */
export function otlpEndpoint(): Schema<string> {
  const base = text({ maxLength: 2048 });
  return {
    parse(value, path, issues) {
      const endpoint = base.parse(value, path, issues);
      if (endpoint === undefined || endpoint === '') return endpoint;
      let protocol: string | undefined;
      try {
        protocol = new URL(endpoint).protocol;
      } catch {
        protocol = undefined;
      }
      if (protocol === 'http:' || protocol === 'https:') return endpoint;
      issues.push({ path, message: 'expected "" or an http:// or https:// URL such as http://otel-collector:4318' });
      return undefined;
    },
  };
}

/** Header names to values. The values are secrets (API keys, tenant tokens): never echoed. */
export function otlpHeaders(): Schema<Record<string, string>> {
  const headerValue = text({ maxLength: 4096, secret: true });
  return {
    parse(value, path, issues) {
      if (!isMapping(value)) {
        issues.push({ path, message: 'expected a mapping of header names to values' });
        return undefined;
      }
      const entries = Object.entries(value);
      if (entries.length > MAX_HEADERS) {
        issues.push({ path, message: `must have at most ${MAX_HEADERS} headers, got ${entries.length}` });
        return undefined;
      }
      const out: [string, string][] = [];
      for (const [name, raw] of entries) {
        const lower = name.toLowerCase();
        if (!HEADER_NAME.test(lower)) {
          issues.push({ path: [...path, name], message: "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)", atKey: true });
          continue;
        }
        const parsed = headerValue.parse(raw, [...path, name], issues);
        if (parsed !== undefined) out.push([lower, parsed]);
      }
      // fromEntries defines own properties, so a `__proto__` header cannot touch the prototype.
      return Object.fromEntries(out);
    },
  };
}

export function sampleRatio(): Schema<number> {
  return {
    parse(value, path, issues) {
      if (typeof value === 'number' && value >= 0 && value <= 1) return value;
      issues.push({ path, message: `expected a number from 0 to 1${typeof value === 'number' ? `, got ${value}` : ''}` });
      return undefined;
    },
  };
}

export const telemetryFields = {
  service_name: key(text({ minLength: 1, maxLength: 256 }), {
    doc: '`service.name` of everything exported.',
    default: 'tokenwarden',
  }),
  // The OpenTelemetry SDK's defaults (OTLP timeout, metric export interval, span queue and delay).
  otlp: section({
    endpoint: key(otlpEndpoint(), {
      doc: "The OTLP receiver's base URL, e.g. `http://otel-collector:4318` (http/protobuf: `/v1/metrics` and `/v1/traces` are appended) or `http://otel-collector:4317` (gRPC; `https://` for TLS). Setting it turns metrics export on.",
      default: '',
      type: '`""` or an `http://` / `https://` URL',
      defaultText: '`""` (no export)',
    }),
    protocol: key(oneOf(OTLP_PROTOCOLS), { doc: 'OTLP transport.', default: 'http/protobuf' }),
    headers: key(otlpHeaders(), {
      doc: 'Sent with every export (HTTP headers, or gRPC metadata), e.g. an API key or a tenant id. The values are secrets: never logged, never shown in error messages.',
      default: {},
      type: `mapping of header names to strings (at most ${MAX_HEADERS})`,
    }),
    timeout_ms: key(duration(1, 600_000), {
      doc: "Deadline of one export (the exporter's retries included), and of the final export at shutdown. A metrics export never runs past the next interval.",
      default: 10_000,
      type: 'duration 1 ms-10 min',
    }),
  }),
  metrics: section({
    export_interval_ms: key(duration(100, 86_400_000), {
      doc: 'How often the metrics are exported.',
      default: 60_000,
      type: 'duration 100 ms-24 h',
    }),
  }),
  traces: section({
    enabled: key(bool(), { doc: 'One span per LLM exchange (needs an endpoint).', default: false }),
    sample_ratio: key(sampleRatio(), {
      doc: "Share of exchanges without a `traceparent` that get a span; a `traceparent`'s sampled flag decides for the others.",
      default: 1,
      type: 'number 0-1',
    }),
    max_queue_size: key(int(1, 1_000_000), {
      doc: 'Spans waiting for export; past it new spans are dropped and counted in `tokenwarden_telemetry_spans_dropped_total`.',
      default: 2_048,
    }),
    export_interval_ms: key(duration(10, 3_600_000), {
      doc: 'The longest a finished span waits before its batch (at most 512 spans) is exported.',
      default: 5_000,
      type: 'duration 10 ms-1 h',
    }),
  }),
};

export const telemetrySchema = section(telemetryFields);
