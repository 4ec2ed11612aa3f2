/**
 * Sustained load the way Envoy produces it: a few HTTP/2 connections with many concurrent side
 * streams each, every stream closed as Envoy closes it (spec §1.6), at the rate this machine allows.
 * 20,000 exchanges per close style (non-LLM, JSON chat and SSE chat in turn, 64 in flight), then:
 * zero failed exchanges, and the inventory counts every LLM exchange sent.
 *
 * A control run shows the test can fail: the same load on one connection with connection rotation
 * off loses exchanges to Node's rapid-reset protection (GOAWAY(INTERNAL_ERROR)).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator, type EmulatorConfig, type ExchangeInput, type ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { loadFixtures, type Fixture } from '../support/fixtures.js';
import { startTestServer, type TestServer } from '../support/server.js';

const EXCHANGES = Number(process.env.TW_LOAD_EXCHANGES ?? 20_000);
const CONCURRENCY = 64;
const CONNECTIONS = 4;

const fixtures = new Map(loadFixtures().map((f) => [f.name, f]));
const fixture = (name: string): Fixture => {
  const f = fixtures.get(name);
  if (!f) throw new Error(`fixture ${name} missing`);
  return f;
};
const JSON_CHAT = fixture('openai_chat_completions_basic');
const SSE_CHAT = fixture('openai_chat_completions_stream_include_usage');

/** One exchange of the mix: i % 3 == 0 is non-LLM traffic, 1 JSON chat, 2 an SSE stream. */
function input(i: number, consumer: string): { input: ExchangeInput; llm: boolean } {
  if (i % 3 === 0) {
    return {
      llm: false,
      input: {
        request: { headers: [[':method', 'GET'], [':path', `/orders/${i}`], [':authority', 'orders.internal'], [':scheme', 'http']] },
        upstream: { headers: [[':status', '200'], ['content-type', 'application/json']], body_chunks: ['{"ok":true}'] },
      },
    };
  }
  const fx = i % 3 === 1 ? JSON_CHAT : SSE_CHAT;
  return {
    llm: true,
    input: {
      request: { headers: [...fx.request.headers.filter(([k]) => k !== 'x-consumer-id'), ['x-consumer-id', consumer]], body_chunks: fx.request.body_chunks },
      upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
      attributes: { 'source.address': '10.1.2.3:40000' },
    },
  };
}

interface RunResult {
  sent: number;
  llm: number;
  failed: number;
  firstFailures: string[];
  seconds: number;
}

function failure(r: ExchangeResult, llm: boolean): string | null {
  if (r.errors.length > 0) return `emulator: ${r.errors.join('; ')}`;
  if (r.counters.streams_failed > 0 || r.counters.failure_mode_allowed > 0) return `side stream failed (${r.streamEnd?.details ?? ''})`;
  if (r.downstream.status !== 200 || !r.downstream.complete) return `downstream ${r.downstream.status ?? 'none'}${r.downstream.localReply ? ` ${r.downstream.localReply.details}` : ''}`;
  if (llm && r.dynamicMetadata.tokenwarden?.['input_tokens'] === undefined) return 'no metadata on the last answer';
  return null;
}

async function run(srv: TestServer, config: EmulatorConfig, consumer: string, opts: { exchanges: number; connections: number }): Promise<RunResult> {
  const envoys = Array.from(
    { length: opts.connections },
    // One HTTP/2 connection per emulated Envoy worker thread.
    () => new EnvoyEmulator(srv.address, { ...config, grpc: { channel_options: { 'grpc.use_local_subchannel_pool': 1 } } }),
  );
  const result: RunResult = { sent: 0, llm: 0, failed: 0, firstFailures: [], seconds: 0 };
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < opts.exchanges) {
      const i = next++;
      const { input: inp, llm } = input(i, consumer);
      const r = await envoys[i % envoys.length]!.exchange(inp);
      result.sent++;
      if (llm) result.llm++;
      const why = failure(r, llm);
      if (why) {
        result.failed++;
        if (result.firstFailures.length < 5) result.firstFailures.push(why);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  result.seconds = (performance.now() - t0) / 1000;
  await Promise.all(envoys.map((e) => e.close()));
  return result;
}

async function inventoryRequests(srv: TestServer, consumer: string): Promise<number> {
  await srv.server.flush();
  const page = await srv.server.store.inventory({ consumer, limit: 1000 });
  return page.items.reduce((n, rec) => n + rec.requests, 0);
}

async function counter(srv: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = srv.server.metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} missing`);
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}

const CLOSE_STYLES: Array<[string, EmulatorConfig]> = [
  // Envoy >= 1.37 default: half-close + cancel right after the last answer the filter needs.
  ['Envoy >= 1.37 default close (half-close + cancel after the last answer)', { ...SIDECAR }],
  // Envoy 1.31-1.36: the side stream is closed when the HTTP stream ends.
  ['Envoy 1.31-1.36 default close (half-close + cancel at the end of the HTTP stream)', { ...SIDECAR, stream_close_optimization: false }],
  // Envoy >= 1.34 with the ext_proc_graceful_grpc_close runtime key: half-close, wait for the trailers.
  ['graceful close (ext_proc_graceful_grpc_close)', { ...SIDECAR, graceful_close: true }],
];

describe('sustained load with Envoy closing every side stream', () => {
  let srv: TestServer;
  const summary: string[] = [];

  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.store.flush_interval_ms = 200;
    });
  });
  afterAll(async () => {
    await srv?.stop();
    if (summary.length > 0) console.log(summary.join('\n'));
  });

  it.each(CLOSE_STYLES.map(([name, config], i) => ({ name, config, consumer: `load-${i}` })))(
    '$name: 20,000 exchanges, none failed, every LLM exchange in the inventory',
    async ({ name, config, consumer }) => {
      const rotatedBefore = await counter(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_sent_rotation' });
      const r = await run(srv, config, consumer, { exchanges: EXCHANGES, connections: CONNECTIONS });
      expect(r.firstFailures).toEqual([]);
      expect(r.failed).toBe(0);
      expect(r.sent).toBe(EXCHANGES);
      await expect.poll(() => inventoryRequests(srv, consumer), { timeout: 10_000 }).toBe(r.llm);
      const rotated = (await counter(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_sent_rotation' })) - rotatedBefore;
      summary.push(`${name}: ${r.sent} exchanges (${r.llm} LLM) in ${r.seconds.toFixed(1)} s = ${Math.round(r.sent / r.seconds)}/s, failed ${r.failed}, inventory ${r.llm}, connections rotated ${rotated}`);
    },
    300_000,
  );

  it('no HTTP/2 session ended in error and none was lost with exchanges in flight', async () => {
    expect(await counter(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'error' })).toBe(0);
    expect(await counter(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'connection_lost' })).toBe(0);
    expect(await counter(srv, 'tokenwarden_extproc_streams_ended_by_server_total')).toBeGreaterThanOrEqual(3 * EXCHANGES);
    expect(srv.logs.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });
});

describe('control: the same load without connection rotation', () => {
  it('loses exchanges once Envoy has reset more streams than Node allows on one connection', async () => {
    const srv = await startTestServer((c) => {
      c.grpc.rotate_connections = false;
    });
    try {
      const r = await run(srv, SIDECAR, 'load-control', { exchanges: 6_000, connections: 1 });
      expect(r.failed).toBeGreaterThan(0);
      expect(r.firstFailures.some((f) => f.startsWith('side stream failed') || f.startsWith('downstream 500'))).toBe(true);
    } finally {
      await srv.stop();
    }
  }, 300_000);
});
