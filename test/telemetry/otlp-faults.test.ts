/**
 * A Collector that is down or stuck must cost the request path nothing: exchanges complete as
 * promptly as ever, failed exports are counted (tokenwarden_telemetry_export_failures_total) and
 * logged at most once per interval, the span queue stays at telemetry.traces.max_queue_size with
 * every span beyond it counted as dropped, and shutdown does not wait past the OTLP timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Metrics } from '../../src/telemetry/metrics.js';
import { createLogger } from '../../src/log.js';
import { ThrottledWarning } from '../../src/telemetry/failures.js';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { openAiChat } from '../support/openai-chat.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { freePort } from '../support/sidecar-process.js';
import { until } from '../support/wait.js';

/** Generous for a loaded CI machine; an exchange here takes a few milliseconds. */
const PROMPT_MS = 500;

async function failures(metrics: Metrics, signal: string): Promise<number> {
  return (await metrics.telemetryExportFailures.get()).values.find((v) => v.labels.signal === signal)?.value ?? 0;
}

async function dropped(metrics: Metrics): Promise<number> {
  return (await metrics.telemetrySpansDropped.get()).values[0]?.value ?? 0;
}

/** Runs `n` exchanges one after another; returns the slowest one's duration in ms. */
async function exchanges(srv: TestServer, n: number): Promise<number> {
  const envoy = new EnvoyEmulator(srv.address, SIDECAR);
  let slowest = 0;
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const r = await envoy.exchange(openAiChat());
    slowest = Math.max(slowest, performance.now() - started);
    expect(r.downstream.status).toBe(200);
  }
  await envoy.close();
  return slowest;
}

const warnings = (srv: TestServer, msg: string) => srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

describe('the Collector is down (nothing listens on its port)', () => {
  let srv: TestServer;
  let slowest: number;
  let started: number;

  beforeAll(async () => {
    const port = await freePort();
    started = Date.now();
    srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = `http://127.0.0.1:${port}`;
      c.telemetry.otlp.headers = { authorization: 'Bearer header-secret-value' };
      c.telemetry.otlp.timeout_ms = 300;
      c.telemetry.metrics.export_interval_ms = 100;
      c.telemetry.traces.enabled = true;
      c.telemetry.traces.export_interval_ms = 20;
    });
    slowest = await exchanges(srv, 20);
  });
  afterAll(() => srv.stop());

  it('leaves the exchanges prompt', () => {
    expect(slowest).toBeLessThan(PROMPT_MS);
  });

  it('counts failed exports of both signals, and every span of a failed export as dropped', async () => {
    await until(async () => (await failures(srv.server.metrics, 'metrics')) >= 2 && (await failures(srv.server.metrics, 'traces')) >= 1, 'failed exports');
    await until(async () => (await dropped(srv.server.metrics)) === 20, 'all 20 spans dropped');
  });

  it('logs a failure at most once per export interval per signal, without the headers', async () => {
    const elapsed = Date.now() - started;
    const lines = warnings(srv, 'OTLP export failed');
    const metricsLines = lines.filter((l) => l.signal === 'metrics');
    const tracesLines = lines.filter((l) => l.signal === 'traces');
    expect(metricsLines.length).toBeGreaterThan(0);
    expect(metricsLines.length).toBeLessThanOrEqual(elapsed / 100 + 1);
    expect(tracesLines.length).toBeLessThanOrEqual(elapsed / 20 + 1);
    expect(metricsLines[0]).toMatchObject({ level: 'warn', receiver: expect.stringMatching(/^127\.0\.0\.1:\d+$/), error: expect.any(String) });
    expect(srv.logs.join('\n')).not.toContain('header-secret-value');
  });
});

describe('the Collector hangs (accepts every export, never answers)', () => {
  let receiver: OtlpReceiver;
  let srv: TestServer;
  let slowest: number;
  let elapsed: number;

  beforeAll(async () => {
    receiver = await startOtlpReceiver({ hang: true });
    srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = receiver.httpUrl;
      c.telemetry.otlp.timeout_ms = 2_000;
      c.telemetry.metrics.export_interval_ms = 100;
      c.telemetry.traces.enabled = true;
      c.telemetry.traces.max_queue_size = 5;
      c.telemetry.traces.export_interval_ms = 20;
    });
    const started = Date.now();
    slowest = await exchanges(srv, 15);
    elapsed = Date.now() - started;
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('leaves the exchanges prompt', () => {
    expect(slowest).toBeLessThan(PROMPT_MS);
  });

  it('keeps at most max_queue_size spans waiting and counts every other one as dropped', async () => {
    // The first batch is stuck in an export; 5 wait in the queue; everything else was dropped.
    const inExport = receiver.spans.length;
    expect(inExport).toBeGreaterThan(0);
    expect(inExport).toBeLessThanOrEqual(5);
    expect(await dropped(srv.server.metrics)).toBe(15 - inExport - 5);
    const logged = warnings(srv, 'spans dropped: the span queue is full (telemetry.traces.max_queue_size)').length;
    expect(logged).toBeGreaterThan(0);
    expect(logged).toBeLessThanOrEqual(elapsed / 20 + 1);
  });

  it('counts the exports that time out', async () => {
    await until(async () => (await failures(srv.server.metrics, 'metrics')) >= 1, 'a timed-out metrics export', 5_000);
  });

  it('shuts down without waiting past the OTLP timeout', async () => {
    const started = Date.now();
    await srv.stop();
    expect(Date.now() - started).toBeLessThan(2_000 + 1_000);
    expect(warnings(srv, 'the final OTLP export did not finish in time; shutting down without it')).toHaveLength(1);
  });
});

describe('ThrottledWarning', () => {
  it('logs once per interval and says how many lines it held back', () => {
    const lines: string[] = [];
    let now = 0;
    const warning = new ThrottledWarning(createLogger('info', (l) => lines.push(l)), 'OTLP export failed', 1_000, () => now);
    for (now = 0; now < 3_000; now += 100) warning.warn({ signal: 'traces' });
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.map((l) => l.not_logged_since_last)).toEqual([0, 9, 9]);
    expect(logged.every((l) => l.msg === 'OTLP export failed' && l.signal === 'traces')).toBe(true);
  });
});
