/**
 * The Redis store against a real redis-server: the shared contract (with one inventory shard and
 * with four), the key layout (one hash tag with one shard, bucket TTLs), one script call per shard
 * and batch, reads that merge parts in several shards, client construction per deployment, outages.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { MemoryStore } from '../../src/inventory/memory.js';
import { applyDelta } from '../../src/inventory/rollup.js';
import type { InventoryDelta, InventoryQuery } from '../../src/inventory/types.js';
import { HOUR_MS } from '../../src/time.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { batch, delta, storeContract, T0 } from './contract.js';
import { until } from '../support/wait.js';

let server: RedisServer;
let prefixSeq = 0;

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  await server?.close();
});

function config(over: Partial<RedisConfig> = {}): RedisConfig {
  return { ...defaultConfig().store.redis, url: server.url, key_prefix: `t${process.pid}-${++prefixSeq}`, ...over };
}


storeContract('redis', async ({ now, retentionHours }) => {
  const store = new RedisStore({ redis: config(), retentionHours, now });
  return { store, cleanup: () => store.close() };
});

// Every consumer of the contract in its own shard or sharing one: reads merge the shards.
storeContract('redis, 4 inventory shards', async ({ now, retentionHours }) => {
  const store = new RedisStore({ redis: config({ inventory_shards: 4 }), retentionHours, now });
  return { store, cleanup: () => store.close() };
});

describe('RedisStore', () => {
  let admin: Redis;

  beforeAll(() => {
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    await admin.quit();
  });

  it('with one shard (the default without a Cluster) puts every key under the {prefix} hash tag, as earlier versions did; buckets expire with retention, the inventory does not', async () => {
    const cfg = config();
    const now = T0 + 30 * 60_000;
    const store = new RedisStore({ redis: cfg, retentionHours: 48, now: () => now });
    try {
      await store.apply(batch(delta('alice', 'openai', 'gpt-4o', T0, { responseModels: ['gpt-4o-2024-08-06'] }), delta('bob', 'anthropic', 'claude', T0 - HOUR_MS)));
      const keys = await admin.keys(`*${cfg.key_prefix}*`);
      expect(keys.length).toBeGreaterThan(10);
      for (const key of keys) expect(key.startsWith(`{${cfg.key_prefix}}:`), key).toBe(true);
      const ttls = new Map(await Promise.all(keys.map(async (k) => [k, await admin.pttl(k)] as const)));
      const bucketKeys = keys.filter((k) => /^\{[^}]+\}:hour(recs)?:/.test(k));
      expect(bucketKeys).toHaveLength(4);
      // The bucket of hour T0 lives until its hour leaves retention: T0 + 1 h + 48 h on the store's clock.
      for (const k of bucketKeys.filter((k) => k.includes(`:${T0}`))) {
        expect(ttls.get(k)).toBeGreaterThan(T0 + 49 * HOUR_MS - now - 60_000);
        expect(ttls.get(k)).toBeLessThanOrEqual(T0 + 49 * HOUR_MS - now);
      }
      for (const k of bucketKeys) expect(ttls.get(k)).toBeGreaterThan(0);
      const batchKeys = keys.filter((k) => k.includes('}:batch:'));
      expect(batchKeys).toHaveLength(1);
      expect(ttls.get(batchKeys[0]!)).toBeGreaterThan(23 * HOUR_MS);
      for (const k of keys.filter((k) => !bucketKeys.includes(k) && !batchKeys.includes(k))) expect(ttls.get(k), k).toBe(-1);
    } finally {
      await store.close();
    }
  });

  it('reads buckets written before buckets had an API (record id members) with api ""', async () => {
    const cfg = config();
    const store = new RedisStore({ redis: cfg, retentionHours: 48, now: () => T0 + HOUR_MS });
    try {
      const base = `{${cfg.key_prefix}}:`;
      const legacy = JSON.stringify(['alice', 'openai', 'gpt-4o']);
      await admin.hset(`${base}hour:${T0}:${legacy}`, { requests: '2', cost: '50', 'rep.input': '7' });
      await admin.sadd(`${base}hourrecs:${T0}`, legacy);
      await admin.zadd(`${base}hours`, T0, String(T0));
      await store.apply(batch(delta('alice', 'openai', 'gpt-4o', T0 + 5, { lastApi: 'responses' })));
      const byApi = await store.usage({ groupBy: 'api', bucket: 'hour', from: T0, to: T0 + HOUR_MS });
      expect(byApi.map((p) => [p.group, p.requests, p.costMicroUsd, p.reported.input])).toEqual([
        ['', 2, 50, 7],
        ['responses', 1, 0, 0],
      ]);
      expect((await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0, to: T0 + HOUR_MS }))[0]?.requests).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('rejects a key prefix with braces (it would break the hash tag)', () => {
    expect(() => new RedisStore({ redis: config({ key_prefix: 'a}b' }), retentionHours: 1 })).toThrow(/braces/);
  });

  it('applies a batch in one command, or one per shard with deltas (and once, the shard count)', async () => {
    const cfg = config();
    // The stores' own connections (built as the store would build them), so MONITOR can be read for each alone.
    const client = createRedisClient(cfg) as Redis;
    const store = new RedisStore({ redis: cfg, retentionHours: 48, client });
    const shardedClient = createRedisClient(cfg) as Redis;
    const sharded = new RedisStore({ redis: { ...cfg, key_prefix: `${cfg.key_prefix}s`, inventory_shards: 4 }, retentionHours: 48, client: shardedClient });
    const marker = new Redis(server.url);
    const monitor = await new Redis(server.url).monitor();
    try {
      await Promise.all([store.ping(), sharded.ping(), marker.ping()]);
      const addressOf = async (c: Redis): Promise<string | undefined> => /(?:^|\s)addr=(\S+)/.exec(await c.client('INFO'))?.[1];
      const [storeAddress, shardedAddress] = [await addressOf(client), await addressOf(shardedClient)];
      expect(storeAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      const seen: { args: string[]; source: string }[] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => seen.push({ args, source }));
      let round = 0;
      const markerAt = (text: string): number => seen.findIndex((c) => c.args[0]?.toLowerCase() === 'echo' && c.args[1] === text);
      const commandsOf = async (apply: () => Promise<void>, source = storeAddress): Promise<string[]> => {
        const [start, end] = [`start ${++round}`, `end ${round}`];
        await marker.echo(start);
        await apply();
        await marker.echo(end);
        await until(() => markerAt(end) >= 0, 'the end marker in MONITOR');
        // MONITOR lines arrive late and from every connection (a setup ping once landed here): only the store's, between the markers.
        return seen
          .slice(markerAt(start) + 1, markerAt(end))
          .filter((c) => c.source === source)
          .map((c) => c.args[0]!.toLowerCase());
      };
      const many = Array.from({ length: 50 }, (_, i) => delta(`c${i}`, 'openai', 'gpt-4o', Date.now(), { responseModels: ['a', 'b'] }));
      expect(await commandsOf(() => store.apply(batch(...many)))).toEqual(['eval']);
      // Later batches send the script's hash only.
      const again = batch(...many);
      expect(await commandsOf(() => store.apply(again))).toEqual(['evalsha']);
      expect(await commandsOf(() => store.apply(again))).toEqual(['evalsha']);
      expect((await store.models({})).items[0]).toMatchObject({ consumers: 50, requests: 100 });

      // 50 consumers over 4 shards, written to shards 1-3 (shard 0 shares the ledger's slot and is only
      // read): one script call per shard; the first batch raises the shard count first.
      // (ioredis sends a script's first call as EVAL, later ones, even in the same round trip, as EVALSHA.)
      expect(await commandsOf(() => sharded.apply(batch(...many)), shardedAddress)).toEqual(['eval', 'eval', 'evalsha', 'evalsha']);
      expect(await commandsOf(() => sharded.apply(batch(...many)), shardedAddress)).toEqual(['evalsha', 'evalsha', 'evalsha']);
      // One consumer: one shard.
      expect(await commandsOf(() => sharded.apply(batch(many[0]!)), shardedAddress)).toEqual(['evalsha']);
      expect((await sharded.models({})).items[0]).toMatchObject({ consumers: 50, requests: 101 });
    } finally {
      monitor.disconnect();
      marker.disconnect();
      await Promise.all([store.close(), sharded.close()]);
      client.disconnect();
      shardedClient.disconnect();
    }
  });

  it('leaves a client it was given open', async () => {
    const client = new Redis(server.url);
    const store = new RedisStore({ redis: config(), retentionHours: 1, client });
    await store.apply(batch(delta('a', 'openai', 'gpt-4o', Date.now())));
    await store.close();
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });

  it('builds a standalone, TLS, Sentinel or Cluster client without connecting', () => {
    const clients = [
      createRedisClient(config({ url: 'redis://:secret@127.0.0.1:1/2' })),
      createRedisClient(config({ url: 'rediss://user:pw@redis.example:6380' })),
      createRedisClient(config({ url: 'rediss://:pw@x', sentinels: ['10.0.0.1:26379', '[::1]:26380'], sentinel_master: 'inventory' })),
      createRedisClient(config({ cluster_nodes: ['10.0.0.1:7000', '10.0.0.2:7001'] })),
    ];
    try {
      const [plain, tls, sentinel, cluster] = clients as [Redis, Redis, Redis, Cluster];
      expect(plain.options).toMatchObject({ host: '127.0.0.1', port: 1, password: 'secret', db: 2, enableOfflineQueue: false, lazyConnect: true });
      expect(plain.options.tls).toBeUndefined();
      expect(tls.options).toMatchObject({ host: 'redis.example', port: 6380, username: 'user', password: 'pw', tls: true });
      expect(sentinel.options).toMatchObject({
        name: 'inventory',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        password: 'pw',
        enableTLSForSentinelMode: true,
      });
      expect(cluster).toBeInstanceOf(Cluster);
      expect(cluster.options.redisOptions).toMatchObject({ commandTimeout: 2_000 });
      for (const c of clients) expect(c.status).toBe('wait');
    } finally {
      for (const c of clients) c.disconnect();
    }
    expect(() => createRedisClient(config({ cluster_nodes: ['nohost'] }))).toThrow(/host:port/);
  });

  it('rejects at once while Redis is unreachable, without queueing', async () => {
    // A long command timeout: a queued command would hang past the test timeout instead of rejecting.
    const store = new RedisStore({ redis: config({ url: 'redis://127.0.0.1:1', command_timeout_ms: 120_000 }), retentionHours: 1 });
    try {
      await expect(store.ping()).rejects.toThrow();
      await expect(store.apply(batch(delta('a', 'openai', 'gpt-4o', Date.now())))).rejects.toThrow();
      await expect(store.ping()).rejects.toThrow();
    } finally {
      await store.close();
    }
  });
});

describe('RedisStore inventory shards', () => {
  it('merges parts of records, rollups and buckets in several shards: the same answers as one memory store', async () => {
    const now = T0 + HOUR_MS;
    const cfg = config();
    // One prefix written by stores with 1 shard (the layout of earlier versions), 3 and 5: consumers
    // move between shards, so records, rollups and buckets have parts in several.
    const stores = [1, 3, 5].map((n) => new RedisStore({ redis: { ...cfg, inventory_shards: n }, retentionHours: 48, now: () => now }));
    const memory = new MemoryStore({ maxRecords: 10_000, retentionHours: 48, now: () => now });
    // mulberry32: deterministic, and its low bits are as random as its high ones.
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const models = [['openai', 'gpt-4o'], ['openai', 'gpt-4o-mini'], ['anthropic', 'claude']] as const;
    try {
      let at = T0 - 9 * HOUR_MS;
      for (let b = 0; b < 30; b++) {
        const deltas = Array.from({ length: 8 }, () => {
          const [provider, model] = models[rand(3)]!;
          // Distinct, increasing lastSeen: which part is the latest is never a tie.
          at += 1 + rand(5 * 60_000);
          return delta(`c${rand(12)}`, provider, model, at, {
            firstSeen: at - rand(600_000),
            requests: 1 + rand(5),
            costMicroUsd: rand(3) === 0 ? 0 : rand(10_000),
            unpricedRequests: rand(4) === 0 ? 1 : 0,
            reported: { input: rand(1000), output: rand(500) },
            errors: { upstream_5xx: rand(3) === 0 ? 1 : 0 },
            lastApi: ['chat_completions', 'responses'][rand(2)]!,
            consumerResolver: ['header', 'api_key'][rand(2)]!,
            responseModels: [`${model}-v${rand(3)}`],
          });
        });
        // Deltas of one key merged, as the Recorder sends them.
        const byKey = new Map<string, InventoryDelta>();
        for (const d of deltas) {
          const k = JSON.stringify(d.key);
          const prev = byKey.get(k);
          if (prev) applyDelta(prev, d);
          else byKey.set(k, d);
        }
        const one = batch(...byKey.values());
        await stores[b % 3]!.apply(one);
        await memory.apply(one);
      }
      const mid = T0 - 4 * HOUR_MS;
      const queries: InventoryQuery[] = [
        { limit: 1000 },
        { order: 'asc', limit: 7, offset: 3 },
        { consumer: 'c3' },
        { provider: 'openai', model: 'gpt-4o', order: 'asc' },
        { lastSeenFrom: mid },
        { lastSeenTo: mid, limit: 1000 },
        { lastSeenFrom: mid - HOUR_MS, lastSeenTo: mid + HOUR_MS, consumer: 'c5' },
        { lastSeenFrom: mid, sort: 'requests' },
        { firstSeenFrom: mid, sort: 'firstSeen', order: 'asc' },
        { unpriced: true, sort: 'costMicroUsd', limit: 1000 },
        ...(['tokens', 'consumer', 'provider', 'model'] as const).map((sort) => ({ sort, offset: 2, limit: 5 })),
      ];
      for (const store of stores) {
        for (const q of queries) expect(await store.inventory(q), JSON.stringify(q)).toEqual(await memory.inventory(q));
        for (const q of [{}, { offset: 3, limit: 4 }, { limit: 0 }]) {
          expect(await store.consumers(q)).toEqual(await memory.consumers(q));
          expect(await store.models(q)).toEqual(await memory.models(q));
        }
        for (const groupBy of ['consumer', 'provider', 'model', 'api', 'key'] as const) {
          for (const bucket of ['hour', 'day'] as const) {
            const q = { groupBy, bucket, from: T0 - 12 * HOUR_MS, to: now, ...(groupBy === 'api' ? { consumer: 'c1' } : {}) };
            expect(await store.usage(q)).toEqual(await memory.usage(q));
          }
        }
      }
      // The 1-shard store read every shard: the shard count kept in Redis says 5.
      const admin = new Redis(server.url);
      expect(await admin.get(`{${cfg.key_prefix}}:inv:shards`)).toBe('5');
      await admin.quit();
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

// Last: it stops and restarts the shared server.
describe('RedisStore across a Redis outage', () => {
  it('fails fast while Redis is down and recovers after a restart, keeping or losing data with Redis', async () => {
    const store = new RedisStore({ redis: config({ command_timeout_ms: 120_000 }), retentionHours: 48 });
    const count = async (): Promise<number> => (await store.inventory({})).items.reduce((n, r) => n + r.requests, 0);
    const pings = async (): Promise<boolean> => store.ping().then(() => true, () => false);
    try {
      const first = batch(delta('a', 'openai', 'gpt-4o', Date.now(), { requests: 5 }));
      await store.apply(first);

      await server.stop();
      await expect(store.ping()).rejects.toThrow();
      await expect(store.apply(batch(delta('a', 'openai', 'gpt-4o', Date.now())))).rejects.toThrow();
      await expect(store.inventory({})).rejects.toThrow();

      await server.restart();
      await until(pings, 'the store to reconnect');
      expect(await count()).toBe(0);
      await store.apply(first);
      expect(await count()).toBe(5);

      // SHUTDOWN SAVE and reload: the data and the applied batch ids survive.
      await server.restart({ keepData: true });
      await until(pings, 'the store to reconnect');
      await store.apply(first);
      expect(await count()).toBe(5);

      server.kill();
      await expect(store.apply(batch(delta('a', 'openai', 'gpt-4o', Date.now())))).rejects.toThrow();
      await server.restart();
      await until(pings, 'the store to reconnect');
      await store.apply(batch(delta('a', 'openai', 'gpt-4o', Date.now())));
      expect(await count()).toBe(1);
    } finally {
      await store.close();
    }
  });
});
