/**
 * The Redis stores on a real Redis Cluster (3 masters, one replica each, started once for the file):
 * every shared contract suite (the inventory in 16 shards, the default on a Cluster), with each store
 * building its Cluster client from store.redis.cluster_nodes; plus that each group of keys that one
 * script changes together stays under one hash tag, and that one client can be shared. The spread
 * over the masters is measured in redis-spread.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { RedisCatalogRegistry } from '../../src/registry/catalog-redis.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { inventoryShardBase, keySlot } from '../../src/store/redis-layout.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { RedisBudgetRegistry } from '../../src/registry/budgets-redis.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { redisCommand } from '../support/redis-process.js';
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
  it('keeps each atomic group under one hash tag: the ledger, the catalog, the budget registry, each inventory shard', async () => {
    const cfg = config();
    const prefix = cfg.key_prefix;
    const store = new RedisStore({ redis: cfg, retentionHours: 48 });
    const ledger = new RedisLedger({ redis: cfg });
    const registry = new RedisBudgetRegistry({ redis: cfg });
    const catalog = new RedisCatalogRegistry({ redis: cfg });
    try {
      await store.apply(batch(...Array.from({ length: 40 }, (_, i) => delta(`c${i}`, 'openai', 'gpt-4o', Date.now(), { responseModels: ['gpt-4o-2024-08-06'] }))));
      await ledger.reserve({ requestId: requestId(), leaseMs: 30_000, items: [item('c', { windowEndMs: Date.now() + 3_600_000 }), item('d', { windowEndMs: Date.now() + 3_600_000 })], consumer: 'alice', nowMs: Date.now() });
      await registry.budgets.put(budget('b'));
      await catalog.owners.put(owner('o'));
      await catalog.audit.append({ at: 1, actor: 'a', action: 'create', entity: 'owner', id: 'o', after: owner('o') });
    } finally {
      await Promise.all([store.close(), ledger.close(), registry.close(), catalog.close()]);
    }

    const byTag = new Map<string, string[]>();
    for (const m of await cluster.masters()) {
      for (const key of (await redisCommand(m.node.port, ['KEYS', '*'])) as string[]) {
        // Every key is where Redis puts its slot, and the slot computed in Node is Redis's.
        expect(await cluster.masterOf(key), key).toBe(m.node);
        expect(keySlot(key), key).toBe(await cluster.slotOf(key));
        const tag = /^\{([^}]+)\}:/.exec(key)?.[1] ?? '';
        byTag.set(tag, [...(byTag.get(tag) ?? []), key]);
      }
    }
    const shardTags = Array.from({ length: 16 }, (_, i) => /^\{([^}]+)\}:/.exec(inventoryShardBase(prefix, i))![1]!);
    expect([...byTag.keys()].every((t) => shardTags.includes(t) || t === `${prefix}:catalog` || t === `${prefix}:registry`), [...byTag.keys()].join(' ')).toBe(true);
    // {prefix}: the whole ledger (as before, so upgrades keep the counters) and the shard count; no
    // inventory (shard 0 is only read when there are several shards), so the ledger's slot has its own.
    const base = byTag.get(prefix) ?? [];
    expect(base.filter((k) => k.startsWith(`{${prefix}}:budget:cnt:`))).toHaveLength(2);
    expect(base.filter((k) => !k.startsWith(`{${prefix}}:budget:`))).toEqual([`{${prefix}}:inv:shards`]);
    expect((byTag.get(`${prefix}:catalog`) ?? []).sort()).toEqual([`{${prefix}:catalog}:audit`, `{${prefix}:catalog}:owners`, `{${prefix}:catalog}:version`]);
    expect((byTag.get(`${prefix}:registry`) ?? []).sort()).toEqual([`{${prefix}:registry}:budgets`, `{${prefix}:registry}:version`]);
    // 40 consumers in 16 shards: most shards hold records, each with its own batch id marker.
    const withRecords = shardTags.filter((t) => (byTag.get(t) ?? []).some((k) => k.includes('}:rec:')));
    expect(withRecords.length).toBeGreaterThan(10);
    for (const t of withRecords) expect(byTag.get(t)!.filter((k) => k.includes('}:batch:'))).toHaveLength(1);
    // The shards land on every master.
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
