/**
 * The CatalogRegistry contract (definitions, version, snapshot, audit log), run against the memory
 * registry and the Redis registry (a real redis-server), plus what only Redis has: the key layout,
 * sharing between sidecars, the audit bound, outages.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import type { Owner } from '../../src/catalog/types.js';
import { MemoryCatalogRegistry } from '../../src/registry/catalog-memory.js';
import { RedisCatalogRegistry } from '../../src/registry/catalog-redis.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { audit, catalogContract, consumer, owner, policy, resource, rule } from './catalog-contract.js';

catalogContract('memory', async () => ({ registry: new MemoryCatalogRegistry(), cleanup: async () => {} }));

describe('MemoryCatalogRegistry audit bound', () => {
  it('keeps only the newest entries once the ring is full', async () => {
    const r = new MemoryCatalogRegistry({ auditCapacity: 5 });
    for (let i = 1; i <= 12; i++) await r.audit.append(audit(i, `o${i}`));
    expect((await r.audit.list({ limit: 100 })).map((e) => e.at)).toEqual([12, 11, 10, 9, 8]);
    expect((await r.audit.list({ limit: 2, before: 10 })).map((e) => e.at)).toEqual([9, 8]);
  });
});

describe('RedisCatalogRegistry', () => {
  let server: RedisServer;
  let prefixSeq = 0;
  const made: RedisCatalogRegistry[] = [];

  beforeAll(async () => {
    server = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(made.map((r) => r.close()));
    await server?.close();
  });

  function config(over: Partial<RedisConfig> = {}): RedisConfig {
    return { ...defaultConfig().store.redis, url: server.url, key_prefix: `cat${process.pid}-${++prefixSeq}`, ...over };
  }

  function open(cfg: RedisConfig, auditCapacity?: number): RedisCatalogRegistry {
    const r = new RedisCatalogRegistry({ redis: cfg, ...(auditCapacity ? { auditCapacity } : {}) });
    made.push(r);
    return r;
  }

  catalogContract('redis', async () => {
    const registry = new RedisCatalogRegistry({ redis: config() });
    return { registry, cleanup: () => registry.close() };
  });

  it('keeps a hash per kind, a version and the audit list under its own hash tag {prefix:catalog}', async () => {
    const cfg = config();
    const r = open(cfg);
    await r.owners.put(owner('payments'));
    await r.resources.put(resource('openai', 'gpt-4o'));
    await r.audit.append(audit(1, 'payments'));
    const admin = new Redis(server.url);
    try {
      const base = `{${cfg.key_prefix}:catalog}:`;
      expect((await admin.keys(`*${cfg.key_prefix}*`)).sort()).toEqual([`${base}audit`, `${base}owners`, `${base}resources`, `${base}version`]);
      expect(JSON.parse((await admin.hget(`${base}resources`, 'openai/gpt-4o')) ?? 'null')).toEqual(resource('openai', 'gpt-4o'));
      expect(await admin.get(`${base}version`)).toBe('2');
    } finally {
      await admin.quit();
    }
  });

  it('upgrades from the keys of earlier versions ({prefix}:cat:*): copies the definitions once, reads the old audit list after the new one', async () => {
    const cfg = config();
    const old = `{${cfg.key_prefix}}:cat:`;
    const admin = new Redis(server.url);
    try {
      await admin.hset(`${old}owners`, 'payments', JSON.stringify(owner('payments')));
      await admin.hset(`${old}consumers`, 'checkout', JSON.stringify(consumer('checkout')));
      await admin.hset(`${old}consumer_rules`, 'r1', JSON.stringify(rule('r1')));
      await admin.hset(`${old}resources`, 'openai/gpt-4o', JSON.stringify(resource('openai', 'gpt-4o')));
      await admin.hset(`${old}policies`, 'global', JSON.stringify(policy('global')));
      await admin.set(`${old}version`, '5');
      // Newest first, as the old log was kept.
      await admin.rpush(`${old}audit`, ...[3, 2, 1].map((at) => JSON.stringify(audit(at, 'payments'))));

      const [a, b] = [open(cfg, 5), open(cfg, 5)];
      const expected = {
        version: 5,
        owners: [owner('payments')],
        consumers: [consumer('checkout')],
        consumerRules: [rule('r1')],
        resources: [resource('openai', 'gpt-4o')],
        policies: [policy('global')],
      };
      const [snapA, snapB] = await Promise.all([a.snapshot(), b.snapshot()]);
      expect(snapA).toEqual(expected);
      expect(snapB).toEqual(expected);

      await a.owners.put(owner('search'));
      for (const at of [4, 5, 6]) await a.audit.append(audit(at, 'search'));
      expect(await open(cfg).version()).toBe(6);
      // The log: new entries, then the old ones, within its bound (5).
      expect((await b.audit.list({ limit: 100 })).map((e) => e.at)).toEqual([6, 5, 4, 3, 2]);
      expect((await b.audit.list({ limit: 4 })).map((e) => e.at)).toEqual([6, 5, 4, 3]);
      expect((await b.audit.list({ limit: 100, before: 5 })).map((e) => e.at)).toEqual([4, 3, 2]);
      expect(await admin.get(`${old}version`)).toBe('5');
    } finally {
      await admin.quit();
    }
  });

  it('shares definitions and the audit log between sidecars', async () => {
    const cfg = config();
    const a = open(cfg);
    const b = open(cfg);
    const before = await b.version();
    await a.owners.create(owner('shared'));
    await a.audit.append(audit(1, 'shared'));
    expect(await b.version()).toBeGreaterThan(before);
    expect((await b.snapshot()).owners.map((o) => o.id)).toEqual(['shared']);
    expect((await b.audit.list({ limit: 10 })).map((e) => e.id)).toEqual(['shared']);
  });

  it('trims the audit list to its bound and still finds entries before a time across chunks', async () => {
    const r = open(config(), 1200);
    for (let i = 1; i <= 1500; i++) await r.audit.append(audit(i, `o${i}`));
    const all = await r.audit.list({ limit: 5000 });
    expect(all).toHaveLength(1200);
    expect(all[0]?.at).toBe(1500);
    expect(all.at(-1)?.at).toBe(301);
    expect((await r.audit.list({ limit: 2, before: 700 })).map((e) => e.at)).toEqual([699, 698]);
  });

  it('fails calls while redis is down and works again after it returns', async () => {
    const r = open(config());
    await r.owners.put(owner('kept'));
    server.kill();
    await expect(r.owners.list()).rejects.toThrow();
    await server.restart({ keepData: false });
    let listed: Owner[] | null = null;
    for (let i = 0; i < 100 && listed === null; i++) {
      listed = await r.owners.list().catch(() => null);
      if (listed === null) await new Promise((res) => setTimeout(res, 50));
    }
    expect(listed).toEqual([]);
  });
});
