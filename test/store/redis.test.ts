/**
 * The Redis store against a real redis-server: the shared contract, the key layout (one hash tag,
 * bucket TTLs), one round trip per batch, client construction per deployment, and outages.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { RedisStore } from '../../src/store/redis.js';
import { HOUR_MS } from '../../src/store/types.js';
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

describe('RedisStore', () => {
  let admin: Redis;

  beforeAll(() => {
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    await admin.quit();
  });

  it('puts every key under the {prefix} hash tag; buckets expire with retention, the inventory does not', async () => {
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

  it('applies a batch in one command', async () => {
    const cfg = config();
    // The store's own connection (built as the store would build it), so MONITOR can be read for it alone.
    const client = createRedisClient(cfg) as Redis;
    const store = new RedisStore({ redis: cfg, retentionHours: 48, client });
    const marker = new Redis(server.url);
    const monitor = await new Redis(server.url).monitor();
    try {
      await Promise.all([store.ping(), marker.ping()]);
      const storeAddress = /(?:^|\s)addr=(\S+)/.exec(await client.client('INFO'))?.[1];
      expect(storeAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      const seen: { args: string[]; source: string }[] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => seen.push({ args, source }));
      let round = 0;
      const markerAt = (text: string): number => seen.findIndex((c) => c.args[0]?.toLowerCase() === 'echo' && c.args[1] === text);
      const commandsOf = async (apply: () => Promise<void>): Promise<string[]> => {
        const [start, end] = [`start ${++round}`, `end ${round}`];
        await marker.echo(start);
        await apply();
        await marker.echo(end);
        await until(() => markerAt(end) >= 0, 'the end marker in MONITOR');
        // MONITOR lines arrive late and from every connection (a setup ping once landed here): only the store's, between the markers.
        return seen
          .slice(markerAt(start) + 1, markerAt(end))
          .filter((c) => c.source === storeAddress)
          .map((c) => c.args[0]!.toLowerCase());
      };
      const many = Array.from({ length: 50 }, (_, i) => delta(`c${i}`, 'openai', 'gpt-4o', Date.now(), { responseModels: ['a', 'b'] }));
      expect(await commandsOf(() => store.apply(batch(...many)))).toEqual(['eval']);
      // Later batches send the script's hash only.
      const again = batch(...many);
      expect(await commandsOf(() => store.apply(again))).toEqual(['evalsha']);
      expect(await commandsOf(() => store.apply(again))).toEqual(['evalsha']);
      expect((await store.models({})).items[0]).toMatchObject({ consumers: 50, requests: 100 });
    } finally {
      monitor.disconnect();
      marker.disconnect();
      await store.close();
      client.disconnect();
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
