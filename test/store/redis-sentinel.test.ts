/**
 * The Redis stores behind real Redis Sentinels (a master, one replica, three sentinels, started once
 * for the file): every shared contract suite, with each store finding the master through
 * store.redis.sentinels / sentinel_master; plus that writes land on the master and reach the
 * replica, and that a client built after a failover finds the new master.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { redisCommand } from '../support/redis-process.js';
import { startRedisSentinel, type RedisSentinel } from '../support/redis-sentinel.js';
import { batch, delta } from './contract.js';
import { redisContracts } from './redis-contracts.js';

let deployment: RedisSentinel;
let prefixSeq = 0;

beforeAll(async () => {
  // Nothing here waits for the sentinels to notice a dead master (the failover below is asked for):
  // a longer down-after keeps a loaded machine's stall from starting one mid-suite.
  deployment = await startRedisSentinel({ downAfterMs: 3_000 });
}, 60_000);

afterAll(async () => {
  await deployment?.close();
});

// After each test's own cleanup (inner afterEach hooks run first).
afterEach(async () => {
  await deployment?.flushAll();
});

function config(over: Partial<RedisConfig> = {}): RedisConfig {
  return {
    ...defaultConfig().store.redis,
    // With sentinels the url only lends credentials and TLS: a dead one shows nothing connects to it.
    url: 'redis://127.0.0.1:1',
    sentinels: deployment.sentinels,
    sentinel_master: deployment.masterName,
    key_prefix: `se${process.pid}-${++prefixSeq}`,
    ...over,
  };
}

redisContracts('redis sentinel', () => config());

describe('Redis stores behind Sentinel', () => {
  const keys = async (port: number, prefix: string): Promise<string[]> => ((await redisCommand(port, ['KEYS', `{${prefix}}:*`])) as string[]).sort();

  it('writes to the master the sentinels name, and the replica follows', async () => {
    const cfg = config();
    const store = new RedisStore({ redis: cfg, retentionHours: 48 });
    try {
      await store.apply(batch(delta('alice', 'openai', 'gpt-4o', Date.now(), { requests: 2 })));
      const master = await deployment.currentMaster();
      const replica = master === deployment.master ? deployment.replica : deployment.master;
      const written = await keys(master.port, cfg.key_prefix);
      expect(written.length).toBeGreaterThan(5);
      await redisCommand(master.port, ['WAIT', 1, 2_000], 3_000);
      expect(await keys(replica.port, cfg.key_prefix)).toEqual(written);
    } finally {
      await store.close();
    }
  });

  // Last: it moves the master.
  it('finds the new master after a failover', async () => {
    const { from, to } = await deployment.failover();
    expect(from).toBe(deployment.master);
    expect(to).toBe(deployment.replica);
    const cfg = config();
    const store = new RedisStore({ redis: cfg, retentionHours: 48 });
    try {
      await store.apply(batch(delta('alice', 'openai', 'gpt-4o', Date.now(), { requests: 4 })));
      expect((await store.inventory({})).items.map((r) => r.requests)).toEqual([4]);
      expect((await keys(to.port, cfg.key_prefix)).length).toBeGreaterThan(5);
      expect(await keys(from.port, cfg.key_prefix)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
