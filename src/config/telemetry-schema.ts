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
import { bool, duration, int, isMapping, obj, oneOf, text, type Schema } from './schema.js';

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
  service_name: text({ minLength: 1, maxLength: 256 }),
  otlp: obj(
    { endpoint: otlpEndpoint(), protocol: oneOf(OTLP_PROTOCOLS), headers: otlpHeaders(), timeout_ms: duration(1, 600_000) },
    { nullIsAbsent: true },
  ),
  metrics: obj({ export_interval_ms: duration(100, 86_400_000) }, { nullIsAbsent: true }),
  traces: obj(
    { enabled: bool(), sample_ratio: sampleRatio(), max_queue_size: int(1, 1_000_000), export_interval_ms: duration(10, 3_600_000) },
    { nullIsAbsent: true },
  ),
};

export const telemetrySchema = obj(telemetryFields, { nullIsAbsent: true });
