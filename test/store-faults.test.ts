/**
 * The Recorder on a real redis-server through faults: Redis stopped and restarted, replies delayed
 * past the command timeout (the script ran but the client gave up: an ambiguous failure), and
 * connections cut, while traffic keeps being recorded. Nothing escapes, and after recovery Redis
 * holds exactly what was recorded minus what the Recorder reports dropped.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import type { ExchangeRecord } from '../src/domain.js';
import { Recorder, type RecorderOptions } from '../src/inventory/recorder.js';
import { RedisStore } from '../src/inventory/redis.js';
import type { InventoryRecord, TokenCounts } from '../src/inventory/types.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { TcpFaultProxy } from './support/tcp-proxy.js';
import { until } from './support/wait.js';

const COMMAND_TIMEOUT_MS = 200;
const REPLY_DELAY_MS = 3 * COMMAND_TIMEOUT_MS;

function record(i: number, over: Partial<ExchangeRecord> = {}): ExchangeRecord {
  const estimated = i % 11 === 0;
  return {
    requestId: null,
    traceparent: null,
    serverAddress: null,
    startedAt: 1_700_000_000_000 + i,
    endedAt: 1_700_000_000_000 + i,
    mode: 'inline',
    provider: 'openai',
    api: 'chat_completions',
    model: `m${i % 4}`,
    responseModel: `m${i % 4}-2024`,
    stream: false,
    consumer: { id: `c${i % 10}`, resolver: 'header' },
    status: i % 19 === 0 ? 429 : 200,
    reportedUsage: null,
    usage: { input_tokens: 1 + (i % 7), output_tokens: i % 5, total_tokens: null, cached_input_tokens: i % 3, cache_write_tokens: i % 2, reasoning_tokens: null },
    usageSource: estimated ? 'estimated' : 'reported',
    promptEstimate: null,
    costMicroUsd: i % 17 === 0 ? null : 100 + i,
    unpriced: i % 17 === 0,
    error: null,
    completion: 'complete',
    usageInjected: false,
    blockedBy: [],
    unsanctioned: false,
    latency: null,
    ...over,
  };
}

interface Totals {
  requests: number;
  upstream4xx: number;
  reported: TokenCounts;
  estimated: TokenCounts;
  costMicroUsd: number;
  unpricedRequests: number;
}

function zeroTotals(): Totals {
  const t = (): TokenCounts => ({ input: 0, cached_input: 0, cache_write: 0, output: 0, reasoning: 0 });
  return { requests: 0, upstream4xx: 0, reported: t(), estimated: t(), costMicroUsd: 0, unpricedRequests: 0 };
}

/** What the records add up to, computed from the records themselves (not with the Recorder's code). */
function addRecord(t: Totals, r: ExchangeRecord): void {
  t.requests += 1;
  if (r.status === 429) t.upstream4xx += 1;
  const c = r.usageSource === 'estimated' ? t.estimated : t.reported;
  c.input += r.usage.input_tokens ?? 0;
  c.output += r.usage.output_tokens ?? 0;
  c.cached_input += r.usage.cached_input_tokens ?? 0;
  c.cache_write += r.usage.cache_write_tokens ?? 0;
  c.reasoning += r.usage.reasoning_tokens ?? 0;
  t.costMicroUsd += r.costMicroUsd ?? 0;
  t.unpricedRequests += r.unpriced ? 1 : 0;
}

function addInventory(t: Totals, r: InventoryRecord): void {
  t.requests += r.requests;
  t.upstream4xx += r.errors.upstream_4xx;
  for (const k of Object.keys(t.reported) as (keyof TokenCounts)[]) {
    t.reported[k] += r.reported[k];
    t.estimated[k] += r.estimated[k];
  }
  t.costMicroUsd += r.costMicroUsd;
  t.unpricedRequests += r.unpricedRequests;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` (bounded): the test waits for a fault to be observed, never for a fixed time. */

describe('Recorder + RedisStore under faults', () => {
  let redis: RedisServer;
  let proxy: TcpFaultProxy;
  let proxyUrl: string;
  const closers: (() => Promise<void>)[] = [];
  const escaped: unknown[] = [];
  const onEscape = (err: unknown): void => void escaped.push(err);

  beforeEach(async () => {
    redis = await startRedis();
    proxy = new TcpFaultProxy(redis.port, { delayMs: REPLY_DELAY_MS });
    proxyUrl = `redis://127.0.0.1:${await proxy.listen()}`;
    process.on('unhandledRejection', onEscape);
    process.on('uncaughtException', onEscape);
  });

  afterEach(async () => {
    process.off('unhandledRejection', onEscape);
    process.off('uncaughtException', onEscape);
    for (const close of closers.splice(0).reverse()) await close();
    await proxy.close();
    await redis.close();
    escaped.length = 0;
  });

  function redisStore(url: string): RedisStore {
    const store = new RedisStore({
      redis: { ...defaultConfig().store.redis, url, key_prefix: 'faults', connect_timeout_ms: COMMAND_TIMEOUT_MS, command_timeout_ms: COMMAND_TIMEOUT_MS },
      retentionHours: 24 * 365 * 10,
    });
    closers.push(() => store.close());
    return store;
  }

  function recorder(opts: Pick<RecorderOptions, 'flushMaxDeltas' | 'retryBufferMaxDeltas'>) {
    const failures: unknown[] = [];
    const drops: number[] = [];
    let flushes = 0;
    const rec = new Recorder(
      redisStore(proxyUrl),
      { flushIntervalMs: 20, ...opts },
      { flushed: () => void flushes++, flushFailed: (err) => void failures.push(err), dropped: (_d, requests) => void drops.push(requests) },
    );
    closers.push(() => rec.stop(0));
    rec.start();
    return { rec, failures, drops, flushes: () => flushes };
  }

  /** Stops Redis with its data saved (restart({ keepData: true }) brings it back). */
  async function stopRedisKeepingData(): Promise<void> {
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    admin.on('error', () => {});
    await admin.connect();
    await admin.shutdown('SAVE').catch(() => {});
    admin.disconnect();
    await redis.stop();
  }

  async function redisTotals(): Promise<Totals> {
    const store = redisStore(redis.url);
    const t = zeroTotals();
    for (let offset = 0; ; offset += 1000) {
      const page = await store.inventory({ offset, limit: 1000, sort: 'consumer' });
      for (const r of page.items) addInventory(t, r);
      if (offset + page.items.length >= page.total) return t;
    }
  }

  it('loses nothing through a restart, delayed replies and cut connections when the buffer is large enough', async () => {
    const { rec, failures, flushes } = recorder({ flushMaxDeltas: 25, retryBufferMaxDeltas: 100_000 });
    const expected = zeroTotals();
    let i = 0;
    const feed = async (until: number): Promise<void> => {
      for (; i < until; i++) {
        const r = record(i);
        rec.record(r);
        addRecord(expected, r);
        if (i % 10 === 0) await sleep(2);
      }
    };
    const failed = (): number => failures.length;

    await feed(500);
    await stopRedisKeepingData();
    let before = failed();
    await feed(1200);
    await until(() => failed() > before, 'a failed flush while Redis is down');
    await redis.restart({ keepData: true });
    let flushed = flushes();
    await feed(1800);
    await until(() => flushes() > flushed, 'a flush after the restart');

    proxy.mode = 'delay';
    before = failed();
    await feed(2200);
    await until(() => failed() > before, 'a flush timing out on a delayed reply');
    expect(failures.slice(before).some((e) => /timed out/i.test(String(e)))).toBe(true);

    proxy.cut();
    before = failed();
    await feed(2500);
    await until(() => failed() > before, 'a failed flush while connections are cut');
    proxy.mode = 'pass';
    flushed = flushes();
    await feed(3000);
    await until(() => flushes() > flushed, 'a flush once connections are back');

    await rec.stop(15_000);
    expect(rec.pendingDeltas).toBe(0);
    expect(rec.droppedRequests).toBe(0);
    expect(await redisTotals()).toEqual(expected);
    expect(expected.requests).toBe(3000);
    expect(escaped).toEqual([]);
  });

  it('with a tiny buffer, drops the oldest batches during an outage and counts them exactly', async () => {
    const { rec, drops } = recorder({ flushMaxDeltas: 5, retryBufferMaxDeltas: 10 });
    const expected = zeroTotals();
    let i = 0;
    // Identical usage in every record, so the dropped requests tell exactly what is missing.
    const feed = async (until: number): Promise<void> => {
      for (; i < until; i++) {
        const r = record(i, { usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5, cached_input_tokens: null, cache_write_tokens: null, reasoning_tokens: null }, usageSource: 'reported', status: 200, costMicroUsd: 10, unpriced: false });
        rec.record(r);
        addRecord(expected, r);
        if (i % 10 === 0) await sleep(2);
      }
    };

    await feed(300);
    // Everything so far is in Redis, so no failure below can be one that Redis ran anyway.
    await until(() => rec.pendingDeltas === 0, 'the first records to be applied');
    await stopRedisKeepingData();
    await feed(1500);
    await until(() => drops.length > 0, 'the retry buffer to overflow');
    // The buffer, plus the batch being sent, plus the pending deltas.
    expect(rec.pendingDeltas).toBeLessThanOrEqual(10 + 5 + 5);
    await redis.restart({ keepData: true });
    await feed(2000);
    await rec.stop(15_000);

    expect(rec.pendingDeltas).toBe(0);
    const dropped = rec.droppedRequests;
    expect(dropped).toBe(drops.reduce((a, b) => a + b, 0));
    expect(dropped).toBeGreaterThan(0);
    const kept = expected.requests - dropped;
    expect(await redisTotals()).toEqual({
      ...zeroTotals(),
      requests: kept,
      reported: { input: 3 * kept, cached_input: 0, cache_write: 0, output: 2 * kept, reasoning: 0 },
      costMicroUsd: 10 * kept,
    });
    expect(escaped).toEqual([]);
  });
});
