/**
 * OTLP export over a server's life: configured by the standard OTEL_* variables alone, refused at
 * start (exit code 2) when one is invalid, a final export of both signals at shutdown, and with
 * `--workers` one exporting instance per worker.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { defaultConfig } from '../../src/config/types.js';
import { createServer } from '../../src/server.js';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { openAiChat } from '../support/openai-chat.js';
import { startOtlpReceiver } from '../support/otlp-receiver.js';
import { startTestServer } from '../support/server.js';
import { freePort } from '../support/sidecar-process.js';
import { until } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** Sets OTEL_* variables for one test; afterEach puts the environment back. */
const saved = new Map<string, string | undefined>();
function setEnv(vars: Record<string, string>): void {
  for (const [name, value] of Object.entries(vars)) {
    if (!saved.has(name)) saved.set(name, process.env[name]);
    process.env[name] = value;
  }
}
afterEach(() => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  saved.clear();
});

describe('shutdown', () => {
  it('makes one final export of the metrics and the spans', async () => {
    const receiver = await startOtlpReceiver();
    const srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = receiver.httpUrl;
      // Longer than the test: only shutdown exports anything.
      c.telemetry.metrics.export_interval_ms = 600_000;
      c.telemetry.traces.enabled = true;
      c.telemetry.traces.export_interval_ms = 600_000;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange(openAiChat({ traceparent: SAMPLED }));
    await envoy.close();
    await srv.waitForRecords(1);
    expect(receiver.exports).toEqual([]);
    await srv.stop();
    expect(receiver.exports.map((e) => e.signal).sort()).toEqual(['metrics', 'traces']);
    expect(receiver.points.find((p) => p.name === 'tokenwarden_exchanges')?.value).toBe(1);
    expect(receiver.spans).toHaveLength(1);
    await receiver.close();
  });
});

describe('OTEL_* environment variables', () => {
  it('configure the export without a telemetry section', async () => {
    const receiver = await startOtlpReceiver();
    setEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.grpcUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-scope-orgid=tenant%201',
      OTEL_METRIC_EXPORT_INTERVAL: '100',
      OTEL_BSP_SCHEDULE_DELAY: '20',
      OTEL_SERVICE_NAME: 'llm-gateway',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,service.instance.id=pod-1',
    });
    // Spans are the one thing only the file turns on.
    const srv = await startTestServer((c) => (c.telemetry.traces.enabled = true));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange(openAiChat({ traceparent: SAMPLED }));
    await envoy.close();
    await srv.waitForRecords(1);
    await until(() => receiver.spans.length === 1 && receiver.points.some((p) => p.name === 'tokenwarden_exchanges'), 'metrics and a span');
    await srv.stop();
    await receiver.close();
    expect(new Set(receiver.exports.map((e) => e.transport))).toEqual(new Set(['grpc']));
    expect(receiver.exports.every((e) => e.headers['x-scope-orgid'] === 'tenant 1')).toBe(true);
    for (const resource of [receiver.points[0]!.resource, receiver.spans[0]!.resource]) {
      expect(resource).toMatchObject({ 'service.name': 'llm-gateway', 'deployment.environment.name': 'staging', 'service.instance.id': 'pod-1' });
    }
  });

  it('an invalid one refuses to start, naming the variable and the key', () => {
    setEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    const config = defaultConfig();
    config.admin.address = '';
    expect(() => createServer(config)).toThrow(ConfigError);
    expect(() => createServer(config)).toThrow(
      'environment variable OTEL_EXPORTER_OTLP_PROTOCOL: telemetry.otlp.protocol: expected one of http/protobuf, grpc, got "http/json"',
    );
  });

  it('tokenwarden serve exits 2 on an invalid one', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--grpc-address', `127.0.0.1:${await freePort()}`, '--admin-address', ''], {
      cwd: ROOT,
      env: { ...process.env, OTEL_EXPORTER_OTLP_TIMEOUT: 'never' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('environment variable OTEL_EXPORTER_OTLP_TIMEOUT: telemetry.otlp.timeout_ms: expected milliseconds');
  });
});

describe('tokenwarden serve --workers 2', () => {
  it('exports from each worker, under distinct service.instance.id values', async () => {
    const receiver = await startOtlpReceiver();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--workers', '2', '--grpc-address', `127.0.0.1:${await freePort()}`, '--admin-address', ''], {
      cwd: ROOT,
      env: {
        ...process.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl,
        OTEL_METRIC_EXPORT_INTERVAL: '100',
        OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=pod-1',
        TOKENWARDEN_FINGERPRINT_SECRET: 'workers-test',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await until(() => new Set(receiver.points.map((p) => p.resource['service.instance.id'])).size === 2, 'exports from both workers', 20_000);
      expect(new Set(receiver.points.map((p) => p.resource['service.instance.id']))).toEqual(new Set(['pod-1-1', 'pod-1-2']));
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await receiver.close();
    }
  });
});
