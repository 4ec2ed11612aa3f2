/**
 * Three tokenwarden processes (`tokenwarden serve`, as deployed) share ONE redis-server. Known traffic
 * goes through each via the Envoy emulator; the flush interval is longer than the test, so what
 * reaches Redis is written by the graceful shutdown on SIGTERM. The shared inventory then holds the
 * exact sums of all three, which equal what one process makes of the same traffic.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import { MemoryStore } from '../src/inventory/memory.js';
import { RedisStore } from '../src/inventory/redis.js';
import type { InventoryRecord, InventoryStore } from '../src/inventory/types.js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startTestServer } from './support/server.js';
import { freePort, startSidecar, type Sidecar } from './support/sidecar-process.js';

const PROCESSES = 3;
const CONSUMERS = ['team-a', 'team-b'];
const PREFIX = 'multi';

function reportedTokens(fx: Fixture): number {
  const u = fx.expected.usage;
  return (u.input_tokens ?? 0) + (u.output_tokens ?? 0) + (u.cached_input_tokens ?? 0) + (u.cache_write_tokens ?? 0) + (u.reasoning_tokens ?? 0);
}

const reportsUsage = (fx: Fixture): boolean => Object.values(fx.expected.usage).some((v) => v !== null);
const isSuccess = (fx: Fixture): boolean => fx.expected.status >= 200 && fx.expected.status < 300;

/**
 * Every LLM fixture, once per consumer: the traffic each process gets. Left out: 2xx responses
 * without usage, whose tokens tokenwarden estimates exactly or with a cheap bound depending on
 * whether its tokenizer worker has loaded yet, which differs from process to process.
 */
const traffic = loadFixtures()
  .filter((fx) => fx.expected.provider !== 'unknown' && (reportsUsage(fx) || !isSuccess(fx)))
  .flatMap((fx) => CONSUMERS.map((consumer) => ({ fx, consumer })));

async function replayAll(target: string): Promise<void> {
  const envoy = new EnvoyEmulator(target, SIDECAR);
  try {
    for (const { fx, consumer } of traffic) {
      const r = await envoy.exchange({
        request: { headers: [...fx.request.headers.filter(([k]) => k !== 'x-consumer-id'), ['x-consumer-id', consumer]], body_chunks: fx.request.body_chunks },
        upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
        attributes: { 'source.address': '10.1.2.3:40000' },
      });
      expect(r.errors).toEqual([]);
    }
  } finally {
    await envoy.close();
  }
}

/** Every record of the store, by key. */
async function allRecords(store: InventoryStore): Promise<Map<string, InventoryRecord>> {
  const out = new Map<string, InventoryRecord>();
  for (let offset = 0; ; offset += 1000) {
    const page = await store.inventory({ offset, limit: 1000, sort: 'consumer' });
    for (const r of page.items) out.set(JSON.stringify(r.key), r);
    if (offset + page.items.length >= page.total) return out;
  }
}

/** What must not depend on which process saw an exchange first or last. */
function additive(r: InventoryRecord): object {
  return {
    requests: r.requests,
    errors: r.errors,
    reported: r.reported,
    estimated: r.estimated,
    costMicroUsd: r.costMicroUsd,
    unpricedRequests: r.unpricedRequests,
    responseModels: [...r.responseModels].sort(),
    consumerResolver: r.consumerResolver,
  };
}

function times<T extends object>(r: T, n: number): T {
  return JSON.parse(JSON.stringify(r), (_k, v: unknown) => (typeof v === 'number' ? v * n : v)) as T;
}

describe('three sidecars sharing one Redis', () => {
  let redis: RedisServer;
  let dir: string;
  const sidecars: Sidecar[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'tw-multi-'));
  });

  afterAll(async () => {
    for (const s of sidecars) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await Promise.all(sidecars.map((s) => s.exited));
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the shared inventory holds the exact sums of every process, written on SIGTERM', async () => {
    for (let i = 0; i < PROCESSES; i++) {
      const grpcAddress = `127.0.0.1:${await freePort()}`;
      const file = path.join(dir, `sidecar-${i}.yaml`);
      writeFileSync(
        file,
        [
          `grpc: { address: "${grpcAddress}" }`,
          'admin: { address: "" }',
          'consumer: { fingerprint_secret: test-secret }',
          'store:',
          '  type: redis',
          `  redis: { url: "${redis.url}", key_prefix: ${PREFIX} }`,
          // Longer than the test: only the shutdown flush writes to Redis.
          '  flush_interval_ms: 10m',
          'logging: { level: warn }',
          '',
        ].join('\n'),
      );
      sidecars.push(await startSidecar(file, grpcAddress));
    }
    await Promise.all(sidecars.map((s) => replayAll(s.grpcAddress)));

    const shared = new RedisStore({ redis: { ...defaultConfig().store.redis, url: redis.url, key_prefix: PREFIX }, retentionHours: 24 });
    try {
      expect((await shared.inventory({})).total).toBe(0);
      for (const s of sidecars) s.child.kill('SIGTERM');
      for (const s of sidecars) expect(await s.exited, s.stderr()).toBe(0);

      const records = await allRecords(shared);
      const sum = (f: (r: InventoryRecord) => number): number => [...records.values()].reduce((n, r) => n + f(r), 0);

      // Against the known traffic, independently of tokenwarden's own arithmetic.
      const perProcess = (f: (fx: Fixture) => number): number => PROCESSES * traffic.reduce((n, t) => n + f(t.fx), 0);
      expect(sum((r) => r.requests)).toBe(PROCESSES * traffic.length);
      expect(sum((r) => r.reported.input + r.reported.output + r.reported.cached_input + r.reported.cache_write + r.reported.reasoning)).toBe(
        perProcess(reportedTokens),
      );
      expect(sum((r) => r.estimated.input + r.estimated.output)).toBe(0);
      // Bad input is counted as such even when the upstream rejected it (one kind per exchange).
      const clean = (fx: Fixture): boolean => fx.expected.error === null;
      expect(sum((r) => r.errors.upstream_4xx)).toBe(perProcess((fx) => (clean(fx) && fx.expected.status >= 400 && fx.expected.status < 500 ? 1 : 0)));
      expect(sum((r) => r.errors.upstream_5xx)).toBe(perProcess((fx) => (clean(fx) && fx.expected.status >= 500 ? 1 : 0)));
      expect(sum((r) => r.errors.bad_input)).toBe(perProcess((fx) => (fx.expected.error !== null && fx.expected.error !== 'stream_truncated' ? 1 : 0)));
      expect(sum((r) => r.errors.truncated)).toBe(perProcess((fx) => (fx.expected.error === 'stream_truncated' ? 1 : 0)));
      expect(sum((r) => r.costMicroUsd)).toBeGreaterThan(0);
      expect(new Set([...records.values()].map((r) => r.key.consumer))).toEqual(new Set(CONSUMERS));

      // Against one process given all of it: every record, field by field (three times the sums).
      const single = new MemoryStore({ maxRecords: 10_000, retentionHours: 24 });
      const one = await startTestServer(() => {}, { store: single });
      try {
        await replayAll(one.address);
        await one.server.flush();
        const reference = await allRecords(single);
        expect([...records.keys()].sort()).toEqual([...reference.keys()].sort());
        for (const [key, r] of records) expect(additive(r), key).toEqual(times(additive(reference.get(key)!), PROCESSES));
      } finally {
        await one.stop();
      }
    } finally {
      await shared.close();
    }
  });
});
