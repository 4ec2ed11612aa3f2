/**
 * The Redis key layout on a real Redis Cluster (3 masters, one replica each): realistic writes and
 * reads through the real stores (inventory batches for many consumers x models x hours, budget
 * reservations and settlements, catalog and registry changes), then keys per master (every key,
 * classified by hash tag) and commands per master (INFO commandstats deltas), measured and asserted:
 * the inventory spreads over every master, the ledger stays in one slot. Plus what sharding must
 * keep: a batch that landed in some shards only counts once when retried, and data written in the
 * layout of earlier versions (one hash tag) is still read, merged with new writes.
 */
import type { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { RedisCatalogRegistry } from '../../src/registry/catalog-redis.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { MemoryStore } from '../../src/inventory/memory.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { inventoryShardBase, keySlot, shardOf } from '../../src/store/redis-layout.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { RedisBudgetRegistry } from '../../src/registry/budgets-redis.js';
import type { InventoryBatch, InventoryDelta } from '../../src/inventory/types.js';
import { HOUR_MS } from '../../src/time.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { info, redisCommand, type RedisProcess } from '../support/redis-process.js';
import { owner, resource } from './catalog-contract.js';
import { batch, delta } from './contract.js';
import { item, requestId } from './ledger-contract.js';
import { budget, template } from './registry-contract.js';

let cluster: RedisCluster;
let prefixSeq = 0;

beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

afterEach(async () => {
  await cluster?.flushAll();
});

function config(over: Partial<RedisConfig> = {}): RedisConfig {
  return { ...defaultConfig().store.redis, url: 'redis://127.0.0.1:1', cluster_nodes: cluster.nodes, key_prefix: `sp${process.pid}-${++prefixSeq}`, ...over };
}

/** Commands that are not the stores' own (the test's, the cluster's and the replicas'). */
const ADMIN_COMMANDS = new Set(['replconf', 'ping', 'info', 'config', 'cluster', 'client', 'dbsize', 'keys', 'command', 'hello', 'readonly', 'echo', 'wait', 'psync', 'flushall']);

/** Calls per command since the last CONFIG RESETSTAT, the stores' commands only. */
async function commandStats(port: number): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const [k, v] of Object.entries(await info(port, 'commandstats'))) {
    const name = k.replace(/^cmdstat_/, '');
    if (!ADMIN_COMMANDS.has(name.split('|')[0]!)) stats.set(name, Number(/calls=(\d+)/.exec(v)?.[1] ?? 0));
  }
  return stats;
}

async function resetStats(masters: RedisProcess[]): Promise<void> {
  await Promise.all(masters.map((m) => redisCommand(m.port, ['CONFIG', 'RESETSTAT'])));
}

interface Share {
  master: string;
  count: number;
  share: number;
}

function shares(counts: Map<RedisProcess, number>): Share[] {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts].map(([m, count]) => ({ master: m.name, count, share: count / total }));
}

const tagOf = (key: string): string => /^\{([^}]*)\}/.exec(key)?.[1] ?? '';

/** Consumers x models x hours, one batch per hour (as the Recorder flushes, at most 1,000 deltas). */
function traffic(consumers: number, now: number, hours: number): InventoryBatch[] {
  const models = [
    ['openai', 'gpt-4o'],
    ['openai', 'gpt-4o-mini'],
    ['anthropic', 'claude-sonnet-4'],
    ['gcp_gemini', 'gemini-2.5-pro'],
  ] as const;
  return Array.from({ length: hours }, (_, h) => {
    const at = now - (hours - 1 - h) * HOUR_MS;
    const deltas: InventoryDelta[] = [];
    for (let c = 0; c < consumers; c++) {
      for (const [provider, model] of models) {
        deltas.push(delta(`team-${c % 17}/svc-${c}`, provider, model, at - c, { requests: 1 + (c % 3), reported: { input: 100 + c, output: 20 }, costMicroUsd: 5 * c, responseModels: [`${model}-2025`] }));
      }
    }
    return batch(...deltas);
  });
}

describe('the key layout on a 3-master Redis Cluster', () => {
  it('spreads the inventory keys and commands over every master; the ledger stays in one slot', async () => {
    const cfg = config();
    const prefix = cfg.key_prefix;
    const now = Date.now();
    const masters = (await cluster.masters()).map((m) => m.node);
    const store = new RedisStore({ redis: cfg, retentionHours: 48 });
    const ledger = new RedisLedger({ redis: cfg });
    const registry = new RedisBudgetRegistry({ redis: cfg });
    const catalog = new RedisCatalogRegistry({ redis: cfg });
    const log: string[] = [];
    const perMaster = async (): Promise<Map<RedisProcess, number>> =>
      new Map(await Promise.all(masters.map(async (m) => [m, [...(await commandStats(m.port)).values()].reduce((a, b) => a + b, 0)] as const)));
    try {
      // The inventory: 200 consumers x 4 models x 6 hours through apply, then the admin API's reads.
      await resetStats(masters);
      for (const b of traffic(200, now, 6)) await store.apply(b);
      expect((await store.consumers({ limit: 0 })).total).toBe(200);
      expect((await store.models({})).items.map((m) => m.consumers)).toEqual([200, 200, 200, 200]);
      expect((await store.inventory({ limit: 1000 })).total).toBe(800);
      expect((await store.inventory({ consumer: 'team-3/svc-3' })).items).toHaveLength(4);
      expect(await store.usage({ groupBy: 'model', bucket: 'hour', from: now - 6 * HOUR_MS, to: now + 1 })).toHaveLength(24);
      const inventoryCommands = shares(await perMaster());
      const scripts = shares(
        new Map(
          await Promise.all(
            masters.map(async (m) => {
              const stats = await commandStats(m.port);
              return [m, (stats.get('eval') ?? 0) + (stats.get('evalsha') ?? 0)] as const;
            }),
          ),
        ),
      );

      // Budgets: 300 admissions over 3 counters each (org, team, consumer), each settled.
      await resetStats(masters);
      for (let i = 0; i < 300; i++) {
        const id = requestId();
        const counters = ['org-day', `team-${i % 17}-day`, `svc-${i}-hour`];
        const decision = await ledger.reserve({ requestId: id, leaseMs: 60_000, consumer: `team-${i % 17}/svc-${i}`, nowMs: now, items: counters.map((c) => item(c, { max: 1_000_000, amount: 50, windowEndMs: now + HOUR_MS })) });
        expect(decision.admitted).toBe(true);
        await ledger.settle({ requestId: id, actual: Object.fromEntries(counters.map((c) => [c, 40])) });
      }
      const ledgerCommands = shares(await perMaster());

      // Definitions through the API: budgets and templates, owners and resources, with their audit entries.
      for (let i = 0; i < 20; i++) {
        await registry.budgets.put(budget(`b${i}`));
        await registry.templates.put(template(`t${i}`));
        await catalog.owners.put(owner(`o${i}`));
        await catalog.resources.put(resource('openai', `model-${i}`));
        await catalog.audit.append({ at: now + i, actor: 'admin', action: 'create', entity: 'owner', id: `o${i}`, after: owner(`o${i}`) });
      }
      expect((await registry.snapshot()).budgets).toHaveLength(20);
      expect((await catalog.snapshot()).owners).toHaveLength(20);

      // Every key, by master and by group (its hash tag).
      const shardTags = new Set(Array.from({ length: 16 }, (_, i) => tagOf(inventoryShardBase(prefix, i))).slice(1));
      const groupOf = (key: string): string => {
        const tag = tagOf(key);
        if (shardTags.has(tag)) return 'inventory';
        if (tag === `${prefix}:catalog`) return 'catalog';
        if (tag === `${prefix}:registry`) return 'registry';
        expect(tag, key).toBe(prefix);
        // The ledger's slot holds no inventory: shard 0 is only read when there are several shards.
        expect(key.startsWith(`{${prefix}}:budget:`) || key === `{${prefix}}:inv:shards`, key).toBe(true);
        return key.startsWith(`{${prefix}}:budget:`) ? 'ledger' : 'shard count';
      };
      const keys = new Map<RedisProcess, string[]>(
        await Promise.all(masters.map(async (m) => [m, (await redisCommand(m.port, ['KEYS', `*${prefix}*`])) as string[]] as const)),
      );
      const groups = new Map<string, Map<RedisProcess, number>>();
      for (const [m, list] of keys) {
        for (const key of list) {
          const g = groupOf(key);
          if (!groups.has(g)) groups.set(g, new Map(masters.map((x) => [x, 0])));
          groups.get(g)!.set(m, groups.get(g)!.get(m)! + 1);
        }
      }
      const inventoryKeys = shares(groups.get('inventory')!);
      const ledgerKeys = [...keys.values()].flat().filter((k) => groupOf(k) === 'ledger');

      const line = (name: string, s: Share[]): string => `${name}: ${s.map((x) => `${x.count} (${(100 * x.share).toFixed(1)}%)`).join(' / ')}`;
      log.push(
        line('inventory keys', inventoryKeys),
        line('inventory commands', inventoryCommands),
        line('inventory script calls', scripts),
        line('ledger commands', ledgerCommands),
        ...[...groups].filter(([g]) => g !== 'inventory').map(([g, counts]) => line(`${g} keys`, shares(counts))),
      );

      // The inventory: a substantial share of keys, script calls and commands on every master.
      for (const s of [inventoryKeys, inventoryCommands, scripts]) {
        for (const x of s) {
          expect(x.share, log.join('\n')).toBeGreaterThan(0.2);
          expect(x.share, log.join('\n')).toBeLessThan(0.6);
        }
      }
      // The ledger: every key in one slot (the `{prefix}` tag, as before), so on one master with its commands.
      expect(ledgerKeys.length).toBeGreaterThan(300);
      expect(new Set(ledgerKeys.map(keySlot))).toEqual(new Set([keySlot(`{${prefix}}`)]));
      expect(await cluster.slotOf(ledgerKeys[0]!)).toBe(keySlot(`{${prefix}}`));
      const ledgerMaster = await cluster.masterOf(`{${prefix}}`);
      expect(ledgerCommands.find((s) => s.master === ledgerMaster.name)?.share).toBe(1);
      // Each registry in one slot of its own.
      for (const g of ['catalog', 'registry']) expect([...groups.get(g)!.values()].filter((n) => n > 0)).toHaveLength(1);
      // The slots computed here are Redis's.
      for (const key of [...keys.values()].flat().slice(0, 200)) expect(keySlot(key), key).toBe(await cluster.slotOf(key));
      console.log(`key layout spread over ${masters.length} masters (${masters.map((m) => m.name).join(' / ')}):\n  ${log.join('\n  ')}`);
    } finally {
      await Promise.all([store.close(), ledger.close(), registry.close(), catalog.close()]);
    }
  }, 60_000);

  it('counts a batch that landed in some shards only once when it is retried', async () => {
    const cfg = config({ command_timeout_ms: 300 });
    const client = createRedisClient(cfg) as Cluster;
    client.on('error', () => {});
    const store = new RedisStore({ redis: cfg, retentionHours: 48, client });
    const memory = new MemoryStore({ maxRecords: 10_000, retentionHours: 48 });
    const requests = async (): Promise<number> => (await store.inventory({ limit: 1000 })).items.reduce((n, r) => n + r.requests, 0);
    const [first, second] = traffic(40, Date.now(), 2) as [InventoryBatch, InventoryBatch];
    const total = (b: InventoryBatch): number => b.deltas.reduce((n, d) => n + d.requests, 0);
    try {
      // 1. One shard's script never reaches Redis: the others apply their parts; the retry adds only the missing one.
      const scripts = client as unknown as { tokenwardenApplyBatch: (key: string, ...args: string[]) => Promise<number> };
      const applyPart = scripts.tokenwardenApplyBatch.bind(client);
      const shards = new Set(first.deltas.map((d) => shardOf(d.key.consumer, 16)));
      expect(shards.size).toBeGreaterThan(8);
      const lost = `${inventoryShardBase(cfg.key_prefix, shardOf(first.deltas[0]!.key.consumer, 16))}batch:${first.id}`;
      let calls = 0;
      scripts.tokenwardenApplyBatch = (key, ...args) => {
        calls++;
        return key === lost ? Promise.reject(new Error('connection lost')) : applyPart(key, ...args);
      };
      await expect(store.apply(first)).rejects.toThrow('connection lost');
      expect(calls).toBe(shards.size);
      const landed = await requests();
      expect(landed).toBeGreaterThan(0);
      expect(landed).toBeLessThan(total(first));
      scripts.tokenwardenApplyBatch = applyPart;
      await store.apply(first);
      await store.apply(first);
      expect(await requests()).toBe(total(first));

      // 2. One master stalls past the command timeout: its shards' parts time out, then run; the retry counts nothing twice.
      const stalled = await cluster.masterOf(inventoryShardBase(cfg.key_prefix, 1));
      await redisCommand(stalled.port, ['CLIENT', 'PAUSE', '1500', 'WRITE']);
      await expect(store.apply(second)).rejects.toThrow(/timed? ?out/i);
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      await store.apply(second);
      await memory.apply(first);
      await memory.apply(second);
      expect(await requests()).toBe(total(first) + total(second));
      expect(await store.inventory({ limit: 1000 })).toEqual(await memory.inventory({ limit: 1000 }));
      expect(await store.consumers({ limit: 1000 })).toEqual(await memory.consumers({ limit: 1000 }));
      expect(await store.models({})).toEqual(await memory.models({}));
    } finally {
      await store.close();
      client.disconnect();
    }
  }, 30_000);

  it('reads what the layout of earlier versions holds (one hash tag), merged with new writes; copies the definitions', async () => {
    const cfg = config();
    const prefix = cfg.key_prefix;
    const now = Date.now();
    const memory = new MemoryStore({ maxRecords: 10_000, retentionHours: 48, now: () => now });
    // An earlier version: one shard under `{prefix}` (its keys are exactly those of a 1-shard store), and definitions under `{prefix}:reg:` and `{prefix}:cat:`.
    const before = new RedisStore({ redis: { ...cfg, inventory_shards: 1 }, retentionHours: 48, now: () => now });
    const after = new RedisStore({ redis: cfg, retentionHours: 48, now: () => now });
    const [old1, old2, new1, new2] = traffic(30, now - 3 * HOUR_MS, 4) as [InventoryBatch, InventoryBatch, InventoryBatch, InventoryBatch];
    const masters = (await cluster.masters()).map((m) => m.node);
    try {
      for (const b of [old1, old2]) await before.apply(b);
      const oldKeys = (await Promise.all(masters.map((m) => redisCommand(m.port, ['KEYS', `*${prefix}*`]) as Promise<string[]>))).flat();
      expect(oldKeys.length).toBeGreaterThan(100);
      for (const key of oldKeys) expect(key.startsWith(`{${prefix}}:`), key).toBe(true);
      const oldMaster = (await cluster.masterOf(`{${prefix}}`)).port;
      await redisCommand(oldMaster, ['HSET', `{${prefix}}:reg:budgets`, 'org', JSON.stringify(budget('org'))]);
      await redisCommand(oldMaster, ['SET', `{${prefix}}:reg:version`, '3']);
      await redisCommand(oldMaster, ['HSET', `{${prefix}}:cat:owners`, 'payments', JSON.stringify(owner('payments'))]);
      await redisCommand(oldMaster, ['SET', `{${prefix}}:cat:version`, '9']);

      // The upgrade: the same consumers, now in 16 shards.
      for (const b of [new1, new2]) await after.apply(b);
      for (const b of [old1, old2, new1, new2]) await memory.apply(b);
      expect(await after.inventory({ limit: 1000 })).toEqual(await memory.inventory({ limit: 1000 }));
      expect(await after.inventory({ lastSeenFrom: now - HOUR_MS, consumer: 'team-4/svc-4' })).toEqual(await memory.inventory({ lastSeenFrom: now - HOUR_MS, consumer: 'team-4/svc-4' }));
      expect(await after.consumers({ limit: 1000 })).toEqual(await memory.consumers({ limit: 1000 }));
      expect(await after.models({})).toEqual(await memory.models({}));
      const usage = { groupBy: 'consumer', bucket: 'day', from: now - 6 * HOUR_MS, to: now + 1 } as const;
      expect(await after.usage(usage)).toEqual(await memory.usage(usage));
      // A store configured with one shard reads the 16 shards too (it finds their number in Redis).
      expect(await before.consumers({ limit: 1000 })).toEqual(await memory.consumers({ limit: 1000 }));

      const registry = new RedisBudgetRegistry({ redis: cfg });
      const catalog = new RedisCatalogRegistry({ redis: cfg });
      try {
        expect(await registry.snapshot()).toMatchObject({ version: 3, budgets: [budget('org')] });
        expect(await catalog.snapshot()).toMatchObject({ version: 9, owners: [owner('payments')] });
      } finally {
        await Promise.all([registry.close(), catalog.close()]);
      }
    } finally {
      await Promise.all([before.close(), after.close()]);
    }
  }, 30_000);
});
