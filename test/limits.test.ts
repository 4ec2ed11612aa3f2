/**
 * Resource caps through the real gRPC server: each has a safe default, and exceeding it degrades
 * predictably — the traffic passes through unchanged and the event is counted — instead of growing
 * memory without bound.
 */
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { headers, rawClient } from './support/raw-client.js';
import { until } from './support/wait.js';
import { defaultConfig } from '../src/config/types.js';
import type { InventoryBatch, InventoryStore } from '../src/inventory/types.js';
import { MemoryStore } from '../src/inventory/memory.js';

const fixtures = loadFixtures();
const fx = (name: string): Fixture => fixtures.find((f) => f.name === name)!;
const basic = fx('openai_chat_completions_basic');
const sse = fx('openai_chat_completions_stream_include_usage');
const ndjson = fx('ollama_chat_stream_ndjson');

let srv: TestServer | null = null;
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await srv?.stop();
  srv = null;
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await srv!.server.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (found?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

function replay(envoy: EnvoyEmulator, f: Fixture, over: { requestHeaders?: [string, string][]; responseChunks?: Buffer[] } = {}) {
  return envoy.exchange({
    request: { headers: over.requestHeaders ?? f.request.headers, body_chunks: f.request.body_chunks },
    upstream: { headers: f.response.headers, body_chunks: over.responseChunks ?? f.response.body_chunks },
    attributes: { 'source.address': '10.1.2.3:40000' },
  });
}

/** `body` cut into pieces of `size` bytes, as Envoy streams a large response. */
function pieces(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out;
}

describe('grpc.max_concurrent_streams', () => {
  it('defaults to 10,000', () => {
    expect(defaultConfig().grpc.max_concurrent_streams).toBe(10_000);
  });

  it('ends a stream over the cap at once with status OK, so Envoy continues it unprocessed, and counts it', async () => {
    srv = await startTestServer((c) => (c.grpc.max_concurrent_streams = 2));
    const client = rawClient(srv.address);
    clients.push(client);
    const held = [client.open(), client.open()];
    for (const s of held) s.write({ request_headers: { headers: headers(basic.request.headers) } });
    await Promise.all(held.map((s) => s.next(1)));
    expect(srv.server.activeStreams).toBe(2);

    // A third stream gets no answer and no per-stream state: just status OK.
    const over = client.open();
    over.write({ request_headers: { headers: headers(basic.request.headers) } });
    expect((await over.status).code).toBe(grpc.status.OK);
    expect(over.answers).toEqual([]);
    expect(srv.server.activeStreams).toBe(2);
    expect(await metric('tokenwarden_extproc_streams_refused_total')).toBe(1);

    // Envoy's view: the request goes to the upstream and back unchanged, and nothing is recorded.
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const before = srv.records.length;
    const r = await replay(envoy, basic);
    expect(r.errors).toEqual([]);
    expect(r.counters.streams_failed).toBe(0);
    expect(r.downstream.status).toBe(200);
    expect(r.upstream.body.equals(Buffer.concat(basic.request.body_chunks))).toBe(true);
    expect(r.downstream.body.equals(Buffer.concat(basic.response.body_chunks))).toBe(true);
    expect(srv.records.length).toBe(before);
    expect(await metric('tokenwarden_extproc_streams_refused_total')).toBe(2);

    // Once a stream ends, there is room again: the next exchange is processed and recorded.
    held[0]!.halfCloseAndCancel();
    await until(() => srv!.server.activeStreams === 1, 'the ended stream to be released');
    await replay(envoy, basic);
    await srv.waitForRecords(before + 1);
    expect(await metric('tokenwarden_extproc_streams_refused_total')).toBe(2);
  });
});

describe('limits.max_request_body_bytes and limits.max_response_body_bytes', () => {
  it('passes a request body over the cap through unparsed and counts it', async () => {
    srv = await startTestServer((c) => (c.limits.max_request_body_bytes = 64));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const r = await replay(envoy, basic);
    expect(r.errors).toEqual([]);
    expect(r.upstream.body.equals(Buffer.concat(basic.request.body_chunks))).toBe(true);
    expect(r.downstream.body.equals(Buffer.concat(basic.response.body_chunks))).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.error).toBe('body_too_large');
    expect(await metric('tokenwarden_exchange_errors_total', { error: 'body_too_large' })).toBe(1);
  });

  it('passes a non-streaming response body over the cap through unparsed and counts it', async () => {
    srv = await startTestServer((c) => (c.limits.max_response_body_bytes = 64));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const r = await replay(envoy, basic);
    expect(r.errors).toEqual([]);
    expect(r.downstream.body.equals(Buffer.concat(basic.response.body_chunks))).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.error).toBe('body_too_large');
    expect(record!.reportedUsage).toBeNull();
    expect(await metric('tokenwarden_exchange_errors_total', { error: 'body_too_large' })).toBe(1);
  });
});

describe('per-stream decoder caps (limits.max_stream_event_bytes, default 1 MiB; counted as body_too_large)', () => {
  const huge = 'x'.repeat(3 * 1024 * 1024);

  it('skips an SSE event over 1 MiB, passes it through unchanged, and still reads the usage after it', async () => {
    srv = await startTestServer();
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const body = Buffer.concat([Buffer.from(`data: {"pad":"${huge}"}\n\n`), ...sse.response.body_chunks]);
    const r = await replay(envoy, sse, { responseChunks: pieces(body, 64 * 1024) });
    expect(r.errors).toEqual([]);
    expect(r.downstream.body.equals(body)).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.reportedUsage).toEqual(sse.expected.usage);
    expect(record!.error).toBe('body_too_large');
  });

  it('skips an NDJSON line over 1 MiB, passes it through unchanged, and still reads the usage after it', async () => {
    srv = await startTestServer();
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const body = Buffer.concat([Buffer.from(`{"pad":"${huge}"}\n`), ...ndjson.response.body_chunks]);
    const r = await replay(envoy, ndjson, { responseChunks: pieces(body, 64 * 1024) });
    expect(r.errors).toEqual([]);
    expect(r.downstream.body.equals(body)).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.reportedUsage).toEqual(ndjson.expected.usage);
    expect(record!.error).toBe('body_too_large');
  });
});

describe('limits.max_stream_event_bytes', () => {
  it('is the size of the largest SSE event read: a lower setting skips a smaller event', async () => {
    srv = await startTestServer((c) => (c.limits.max_stream_event_bytes = 64 * 1024));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const body = Buffer.concat([Buffer.from(`data: {"pad":"${'y'.repeat(100 * 1024)}"}\n\n`), ...sse.response.body_chunks]);
    const r = await replay(envoy, sse, { responseChunks: pieces(body, 16 * 1024) });
    expect(r.errors).toEqual([]);
    expect(r.downstream.body.equals(body)).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.reportedUsage).toEqual(sse.expected.usage);
    expect(record!.error).toBe('body_too_large');
  });

  it('reads the same 100 KiB event under the default', async () => {
    srv = await startTestServer();
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    const body = Buffer.concat([Buffer.from(`data: {"pad":"${'y'.repeat(100 * 1024)}"}\n\n`), ...sse.response.body_chunks]);
    const r = await replay(envoy, sse, { responseChunks: pieces(body, 16 * 1024) });
    expect(r.errors).toEqual([]);
    const [record] = await srv.waitForRecords(1);
    expect(record!.error).toBeNull();
  });
});

describe('limits.max_decoded_stream_bytes', () => {
  it('stops inflating a compressed stream at the cap, passes the rest through unchanged, and counts it', async () => {
    srv = await startTestServer((c) => (c.limits.max_decoded_stream_bytes = 1024 * 1024));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    // 64 MiB of SSE comments inflate from about 64 KiB of gzip: a small bomb.
    const plain = Buffer.concat([Buffer.from(`: ${' '.repeat(64 * 1024 * 1024)}\n\n`), ...sse.response.body_chunks]);
    const body = gzipSync(plain);
    const headersGz = [...sse.response.headers.filter(([k]) => k !== 'content-length'), ['content-encoding', 'gzip']] as [string, string][];
    const r = await envoy.exchange({
      request: { headers: sse.request.headers, body_chunks: sse.request.body_chunks },
      upstream: { headers: headersGz, body_chunks: pieces(body, 16 * 1024) },
      attributes: { 'source.address': '10.1.2.3:40000' },
    });
    expect(r.errors).toEqual([]);
    expect(r.downstream.body.equals(body)).toBe(true);
    const [record] = await srv.waitForRecords(1);
    expect(record!.error).toBe('body_too_large');
    expect(await metric('tokenwarden_exchange_errors_total', { error: 'body_too_large' })).toBe(1);
  });
});

/** `n` exchanges from distinct consumers (one inventory record each). */
async function distinctConsumers(envoy: EnvoyEmulator, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await replay(envoy, basic, { requestHeaders: [...basic.request.headers, ['x-consumer-id', `app-${i}`]] });
    expect(r.errors).toEqual([]);
  }
}

describe('metrics.max_label_values', () => {
  it('reports model names and consumer ids past the cap as "(other)" and counts them: /metrics cannot grow without bound', async () => {
    srv = await startTestServer((c) => {
      c.metrics.max_label_values = 3;
      c.metrics.consumer_labels = true;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    for (let i = 0; i < 6; i++) {
      const body = JSON.parse(Buffer.concat(basic.request.body_chunks).toString('utf8')) as Record<string, unknown>;
      const request = Buffer.from(JSON.stringify({ ...body, model: `made-up-model-${i}` }));
      const r = await envoy.exchange({
        request: {
          headers: [...basic.request.headers.filter(([k]) => k !== 'content-length'), ['x-consumer-id', `client-${i}`]],
          body_chunks: [request],
        },
        upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
        attributes: { 'source.address': '10.1.2.3:40000' },
      });
      expect(r.errors).toEqual([]);
    }
    await srv.waitForRecords(6);
    const found = (await srv.server.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'tokenwarden_exchanges_total');
    const series = (found?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
    const models = new Set(series.map((v) => v.labels.gen_ai_request_model));
    expect(models.size).toBeLessThanOrEqual(4);
    expect(models.has('(other)')).toBe(true);
    expect(series.reduce((n, v) => n + v.value, 0)).toBe(6);
    expect(await metric('tokenwarden_metrics_label_overflow_total', { label: 'model' })).toBeGreaterThan(0);
    expect(await metric('tokenwarden_metrics_label_overflow_total', { label: 'consumer' })).toBeGreaterThan(0);
  });
});

describe('store.memory_max_records', () => {
  it('keeps at most that many inventory records, evicting the least recently updated, and counts evictions', async () => {
    srv = await startTestServer((c) => {
      c.store.memory_max_records = 3;
      c.store.flush_max_deltas = 1;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    await distinctConsumers(envoy, 5);
    await srv.waitForRecords(5);
    await srv.server.flush();
    const page = await srv.server.store.inventory({ sort: 'consumer', order: 'asc' });
    expect(page.items.map((r) => r.key.consumer)).toEqual(['app-2', 'app-3', 'app-4']);
    expect(await metric('tokenwarden_store_evicted_records_total')).toBe(2);
  });
});

/** A store that is down: every write fails. */
class UnreachableStore extends MemoryStore {
  constructor() {
    super({ maxRecords: 10, retentionHours: 1 });
  }
  override apply(_batch: InventoryBatch): Promise<void> {
    return Promise.reject(new Error('connection refused'));
  }
}

describe('store.retry_buffer_max_deltas', () => {
  it('keeps at most that many deltas during a store outage, dropping the oldest and counting them', async () => {
    const store: InventoryStore = new UnreachableStore();
    srv = await startTestServer(
      (c) => {
        c.store.flush_max_deltas = 2;
        c.store.retry_buffer_max_deltas = 4;
        c.store.flush_interval_ms = 10;
      },
      { store },
    );
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    clients.push(envoy);
    await distinctConsumers(envoy, 10);
    await srv.waitForRecords(10);
    // Every exchange is either still held for retry or counted as dropped: none is lost silently.
    const held = () => metric('tokenwarden_store_pending_deltas');
    const dropped = () => metric('tokenwarden_store_dropped_requests_total');
    await until(async () => (await held()) + (await dropped()) === 10, 'every exchange to be held or counted as dropped');
    expect(await held()).toBeLessThanOrEqual(4);
    expect(await dropped()).toBeGreaterThanOrEqual(6);
    expect(srv.logs.some((l) => l.includes('inventory deltas dropped'))).toBe(true);
  });
});
