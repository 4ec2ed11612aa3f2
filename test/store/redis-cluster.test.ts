/**
 * The Redis stores on a real Redis Cluster (3 masters, one replica each, started once for the file):
 * every shared contract suite, with each store building its Cluster client from
 * store.redis.cluster_nodes; plus that the cluster really spreads prefixes over masters while one
 * prefix's keys (one hash tag) stay on one master, and that one client can be shared.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { RedisCatalogRegistry } from '../../src/store/catalog-redis.js';
import { RedisLedger } from '../../src/store/ledger-redis.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { RedisStore } from '../../src/store/redis.js';
import { RedisBudgetRegistry } from '../../src/store/registry-redis.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { redisCommand, type RedisProcess } from '../support/redis-process.js';
import { owner } from './catalog-contract.js';
import { batch, delta } from './contract.js';
import { item, requestId } from './ledger-contract.js';
import { redisContracts } from './redis-contracts.js';
import { budget } from './registry-contract.js';

let cluster: RedisCluster;
let prefixSeq = 0;

beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

// After each test's own cleanup (inner afterEach hooks run first).
afterEach(async () => {
  await cluster?.flushAll();
});

function config(over: Partial<RedisConfig> = {}): RedisConfig {
  return {
    ...defaultConfig().store.redis,
    // With cluster_nodes the url only lends credentials and TLS: a dead one shows nothing connects to it.
    url: 'redis://127.0.0.1:1',
    cluster_nodes: cluster.nodes,
    key_prefix: `cl${process.pid}-${++prefixSeq}`,
    ...over,
  };
}

redisContracts('redis cluster', () => config());

describe('Redis stores on a Cluster', () => {
  /** Every key of every master, by master. */
  const keysByMaster = async (): Promise<Map<RedisProcess, string[]>> => {
    const out = new Map<RedisProcess, string[]>();
    for (const m of await cluster.masters()) out.set(m.node, ((await redisCommand(m.node.port, ['KEYS', '*'])) as string[]).sort());
    return out;
  };

  it('keeps all of a prefix on the master of its hash tag while prefixes spread over the masters', async () => {
    const masters = (await cluster.masters()).map((m) => m.node);
    // One key prefix per master: the first prefixes whose hash tag lands on each.
    const prefixes = new Map<RedisProcess, string>();
    for (let i = 0; prefixes.size < masters.length && i < 1000; i++) {
      const prefix = `spread${process.pid}-${i}`;
      const m = await cluster.masterOf(`{${prefix}}`);
      if (!prefixes.has(m)) prefixes.set(m, prefix);
    }
    expect(prefixes.size).toBe(masters.length);

    for (const prefix of prefixes.values()) {
      const cfg = config({ key_prefix: prefix });
      const store = new RedisStore({ redis: cfg, retentionHours: 48 });
      const ledger = new RedisLedger({ redis: cfg });
      const registry = new RedisBudgetRegistry({ redis: cfg });
      const catalog = new RedisCatalogRegistry({ redis: cfg });
      try {
        await store.apply(batch(delta('alice', 'openai', 'gpt-4o', Date.now(), { responseModels: ['gpt-4o-2024-08-06'] })));
        await ledger.reserve({ requestId: requestId(), leaseMs: 30_000, items: [item('c', { windowEndMs: Date.now() + 3_600_000 })], consumer: 'alice', nowMs: Date.now() });
        await registry.budgets.put(budget('b'));
        await catalog.owners.put(owner('o'));
        await catalog.audit.append({ at: 1, actor: 'a', action: 'create', entity: 'owner', id: 'o', after: owner('o') });
      } finally {
        await Promise.all([store.close(), ledger.close(), registry.close(), catalog.close()]);
      }
    }

    const byMaster = await keysByMaster();
    for (const [m, prefix] of prefixes) {
      const keys = byMaster.get(m) ?? [];
      // Inventory, ledger, budget registry and catalog keys, and nothing of the other prefixes.
      for (const part of ['rec:', 'budget:cnt:', 'reg:budgets', 'cat:owners', 'cat:audit']) expect(keys.some((k) => k.startsWith(`{${prefix}}:${part}`)), `${m.name}: ${part}`).toBe(true);
      for (const k of keys) expect(k.startsWith(`{${prefix}}:`), `${k} on ${m.name}`).toBe(true);
    }
    expect((await cluster.keysPerMaster()).every((x) => x.keys > 0)).toBe(true);
  });

  it('shares one Cluster client between the inventory, the ledger and both registries', async () => {
    const cfg = config();
    const client = createRedisClient(cfg);
    client.on('error', () => {});
    const store = new RedisStore({ redis: cfg, retentionHours: 48, client });
    const ledger = new RedisLedger({ redis: cfg, client });
    const registry = new RedisBudgetRegistry({ redis: cfg, client });
    const catalog = new RedisCatalogRegistry({ redis: cfg, client });
    try {
      // All at once, while the shared client is still connecting.
      await Promise.all([
        store.apply(batch(delta('alice', 'openai', 'gpt-4o', Date.now(), { requests: 3 }))),
        ledger.reserve({ requestId: requestId(), leaseMs: 30_000, items: [item('c', { windowEndMs: Date.now() + 3_600_000 })], consumer: 'alice', nowMs: Date.now() }),
        registry.budgets.create(budget('b')),
        catalog.owners.create(owner('o')),
      ]);
      expect((await store.inventory({})).items.map((r) => r.requests)).toEqual([3]);
      expect((await ledger.read([{ counter: 'c', max: 10 }]))[0]).toMatchObject({ reserved: 1 });
      expect((await registry.snapshot()).budgets.map((b) => b.id)).toEqual(['b']);
      expect((await catalog.snapshot()).owners.map((o) => o.id)).toEqual(['o']);
      await Promise.all([store.close(), ledger.close(), registry.close(), catalog.close()]);
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });
});
