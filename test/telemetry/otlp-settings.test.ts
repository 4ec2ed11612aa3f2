/**
 * Where the telemetry goes: the `telemetry` section with the standard OTEL_* variables applied
 * (src/telemetry/settings.ts). A set variable wins over the file; bad values are refused with the
 * variable, the key it replaces and what is wrong, never with a secret's value.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { defaultConfig, type TelemetryConfig } from '../../src/config/types.js';
import { resolveTelemetry, type Instance } from '../../src/telemetry/settings.js';

const INSTANCE: Instance = { version: '9.9.9', workerIndex: null };

function telemetry(edit: (t: TelemetryConfig) => void = () => {}): TelemetryConfig {
  const t = defaultConfig().telemetry;
  edit(t);
  return t;
}

const resolve = (env: Record<string, string>, edit?: (t: TelemetryConfig) => void, instance = INSTANCE) => resolveTelemetry(telemetry(edit), env, instance);

function refusal(env: Record<string, string>, edit?: (t: TelemetryConfig) => void): string[] {
  try {
    resolve(env, edit);
  } catch (error) {
    if (error instanceof ConfigError) return error.message.split('\n');
    throw error;
  }
  throw new Error('accepted');
}

describe('the file alone', () => {
  it('exports nothing by default', () => {
    expect(resolve({})).toMatchObject({ metrics: null, traces: null });
  });

  it('HTTP: the signal paths are appended to the base endpoint; spans only when enabled', () => {
    const s = resolve({}, (t) => {
      t.otlp.endpoint = 'http://collector:4318/';
      t.otlp.headers = { 'x-tenant': 'a' };
    });
    expect(s.metrics).toEqual({ protocol: 'http/protobuf', url: 'http://collector:4318/v1/metrics', headers: { 'x-tenant': 'a' }, timeoutMs: 10_000, intervalMs: 60_000 });
    expect(s.traces).toBeNull();
    const traced = resolve({}, (t) => {
      t.otlp.endpoint = 'https://collector:4318/otlp';
      t.traces.enabled = true;
    });
    expect(traced.traces).toEqual({
      protocol: 'http/protobuf',
      url: 'https://collector:4318/otlp/v1/traces',
      headers: {},
      timeoutMs: 10_000,
      intervalMs: 5_000,
      sampleRatio: 1,
      maxQueueSize: 2048,
    });
  });

  it('gRPC: the endpoint is used as it is', () => {
    const s = resolve({}, (t) => {
      t.otlp.endpoint = 'http://collector:4317';
      t.otlp.protocol = 'grpc';
    });
    expect(s.metrics?.url).toBe('http://collector:4317');
  });

  it('describes the service: name from the file, version, a fresh instance id per process', () => {
    const a = resolve({}, (t) => (t.service_name = 'edge'));
    const b = resolve({});
    expect(a.resource).toEqual({ 'service.name': 'edge', 'service.version': '9.9.9', 'service.instance.id': expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(b.resource['service.instance.id']).not.toBe(a.resource['service.instance.id']);
  });
});

describe('OTEL_* variables win over the file', () => {
  const file = (t: TelemetryConfig) => {
    t.otlp.endpoint = 'http://from-file:4318';
    t.otlp.headers = { 'x-tenant': 'file', 'x-keep': 'file' };
    t.traces.enabled = true;
  };

  it('endpoint, protocol, headers, timeout, interval, sampler and queue', () => {
    const s = resolve(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://from-env:4317',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=env, Authorization=Bearer%20t0ken',
        OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
        OTEL_METRIC_EXPORT_INTERVAL: '15000',
        OTEL_BSP_SCHEDULE_DELAY: '250',
        OTEL_BSP_MAX_QUEUE_SIZE: '64',
        OTEL_TRACES_SAMPLER_ARG: '0.5',
      },
      file,
    );
    expect(s.metrics).toEqual({
      protocol: 'grpc',
      url: 'http://from-env:4317',
      headers: { 'x-tenant': 'env', 'x-keep': 'file', authorization: 'Bearer t0ken' },
      timeoutMs: 2500,
      intervalMs: 15_000,
    });
    expect(s.traces).toMatchObject({ protocol: 'grpc', url: 'http://from-env:4317', intervalMs: 250, sampleRatio: 0.5, maxQueueSize: 64 });
  });

  it('per-signal variables win over the generic ones; their endpoint is the full URL', () => {
    const s = resolve(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom/path',
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://metrics:4317',
        OTEL_EXPORTER_OTLP_HEADERS: 'a=generic,b=generic',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=traces',
        OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '3000',
      },
      file,
    );
    expect(s.metrics).toMatchObject({ protocol: 'grpc', url: 'http://metrics:4317', timeoutMs: 3000, headers: { a: 'generic', b: 'generic' } });
    expect(s.traces).toMatchObject({ protocol: 'http/protobuf', url: 'http://traces:4318/custom/path', timeoutMs: 1000, headers: { a: 'generic', b: 'traces' } });
  });

  it('an empty variable counts as unset', () => {
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_PROTOCOL: ' ' }, file).metrics?.url).toBe('http://from-file:4318/v1/metrics');
  });

  it('the environment alone turns metrics export on', () => {
    expect(resolve({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/v1/metrics' }).metrics?.url).toBe('http://c:4318/v1/metrics');
  });

  it('OTEL_SDK_DISABLED=true turns every export off', () => {
    expect(resolve({ OTEL_SDK_DISABLED: 'TRUE' }, file)).toMatchObject({ metrics: null, traces: null });
  });

  it('service name and resource attributes: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then the file', () => {
    const attrs = { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,deployment.environment.name=prod,k8s.pod.name=tw-0,note=a%2Cb' };
    expect(resolve(attrs, (t) => (t.service_name = 'from-file')).resource).toMatchObject({
      'service.name': 'from-attrs',
      'deployment.environment.name': 'prod',
      'k8s.pod.name': 'tw-0',
      note: 'a,b',
      'service.version': '9.9.9',
    });
    expect(resolve({ ...attrs, OTEL_SERVICE_NAME: 'from-env' }).resource['service.name']).toBe('from-env');
  });

  it('a given service.instance.id is kept, and made distinct per --workers worker', () => {
    const env = { OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=pod-7,service.version=custom' };
    expect(resolve(env).resource).toMatchObject({ 'service.instance.id': 'pod-7', 'service.version': 'custom' });
    expect(resolve(env, undefined, { version: '1', workerIndex: 3 }).resource['service.instance.id']).toBe('pod-7-3');
  });
});

describe('invalid values fail the start, naming the variable, the key and the problem', () => {
  it('reports every bad variable at once', () => {
    expect(
      refusal({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        OTEL_EXPORTER_OTLP_TIMEOUT: 'soon',
        OTEL_METRIC_EXPORT_INTERVAL: '10',
        OTEL_TRACES_SAMPLER_ARG: '2',
        OTEL_BSP_MAX_QUEUE_SIZE: '1.5',
        OTEL_SERVICE_NAME: 'x'.repeat(300),
      }),
    ).toEqual([
      'environment variable OTEL_SERVICE_NAME: telemetry.service_name: must be at most 256 characters, got 300',
      'environment variable OTEL_EXPORTER_OTLP_PROTOCOL: telemetry.otlp.protocol: expected one of http/protobuf, grpc, got "http/json"',
      'environment variable OTEL_EXPORTER_OTLP_ENDPOINT: telemetry.otlp.endpoint: expected "" or an http:// or https:// URL such as http://otel-collector:4318',
      'environment variable OTEL_EXPORTER_OTLP_TIMEOUT: telemetry.otlp.timeout_ms: expected milliseconds or a duration such as "500ms", "10s" or "2m", got "soon"',
      'environment variable OTEL_METRIC_EXPORT_INTERVAL: telemetry.metrics.export_interval_ms: must be between 100 and 86400000 ms, got 10 ms',
      'environment variable OTEL_TRACES_SAMPLER_ARG: telemetry.traces.sample_ratio: expected a number from 0 to 1, got 2',
      'environment variable OTEL_BSP_MAX_QUEUE_SIZE: telemetry.traces.max_queue_size: expected a whole number, got 1.5',
    ]);
  });

  it('never shows a header value', () => {
    const lines = [
      ...refusal({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%ZZsecret-token' }),
      ...refusal({ OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'no-equals-sign-secret-token' }),
      ...refusal({ OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'bad name=secret-token' }),
      ...refusal({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=secret-token%01' }),
    ];
    expect(lines).toEqual([
      'environment variable OTEL_EXPORTER_OTLP_HEADERS: telemetry.otlp.headers: expected comma-separated key=value pairs with percent-encoded values',
      'environment variable OTEL_EXPORTER_OTLP_TRACES_HEADERS: telemetry.otlp.headers: expected comma-separated key=value pairs with percent-encoded values',
      `environment variable OTEL_EXPORTER_OTLP_METRICS_HEADERS: telemetry.otlp.headers["bad name"]: expected an HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
      'environment variable OTEL_EXPORTER_OTLP_HEADERS: telemetry.otlp.headers.authorization: must not contain control characters, got a string',
    ]);
    expect(lines.join('\n')).not.toContain('secret-token');
  });

  it('refuses malformed OTEL_RESOURCE_ATTRIBUTES', () => {
    expect(refusal({ OTEL_RESOURCE_ATTRIBUTES: 'a=1,=2' })).toEqual([
      'environment variable OTEL_RESOURCE_ATTRIBUTES: expected comma-separated key=value pairs with percent-encoded values',
    ]);
  });
});

describe('the telemetry section in the file', () => {
  it('takes durations with units and lower-cases header names', () => {
    const config = parseConfig(
      'telemetry:\n  otlp:\n    endpoint: http://c:4318\n    headers: { X-Tenant: a }\n    timeout_ms: 2s\n  metrics:\n    export_interval_ms: 1m\n  traces:\n    enabled: true\n    sample_ratio: 0\n',
      't.yaml',
      {},
    );
    expect(config.telemetry).toEqual({
      service_name: 'tokenwarden',
      otlp: { endpoint: 'http://c:4318', protocol: 'http/protobuf', headers: { 'x-tenant': 'a' }, timeout_ms: 2000 },
      metrics: { export_interval_ms: 60_000 },
      traces: { enabled: true, sample_ratio: 0, max_queue_size: 2048, export_interval_ms: 5000 },
    });
  });

  it('names the file, the line and the key, without echoing a header value', () => {
    expect(() => parseConfig('telemetry:\n  otlp:\n    headers:\n      authorization: "s3cret\\u0001"\n', 't.yaml', {})).toThrow(
      't.yaml:4:22: telemetry.otlp.headers.authorization: must not contain control characters, got a string',
    );
  });
});
