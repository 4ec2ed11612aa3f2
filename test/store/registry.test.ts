/**
 * The BudgetRegistry contract, run against the memory registry and the Redis registry (a real
 * redis-server), plus what only Redis has: the key layout, sharing between sidecars, outages.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import type { Budget } from '../../src/governance/types.js';
import { MemoryBudgetRegistry } from '../../src/registry/budgets-memory.js';
import { RedisBudgetRegistry } from '../../src/registry/budgets-redis.js';
import { effectiveDefinitions } from '../../src/registry/merge.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { budget, registryContract, template } from './registry-contract.js';

describe('effectiveDefinitions: the config file wins over the API', () => {
  it('hides an API definition whose id the config uses, per kind, and reports it', () => {
    const config = { budgets: [budget('org', { source: 'config', mode: 'enforce' })], templates: [template('per-team', { source: 'config' })] };
    const api = {
      budgets: [budget('org', { mode: 'monitor' }), budget('team-a')],
      templates: [template('per-team', { groupBy: 'consumer' }), template('org')],
    };
    const defs = effectiveDefinitions(config, api);
    expect(defs.budgets.map((b) => [b.id, b.source, b.mode])).toEqual([
      ['org', 'config', 'enforce'],
      ['team-a', 'api', 'monitor'],
    ]);
    expect(defs.templates.map((t) => [t.id, t.source])).toEqual([
      ['per-team', 'config'],
      ['org', 'api'],
    ]);
    expect(defs.shadowed).toEqual({ budgets: ['org'], templates: ['per-team'] });
  });

  it('marks whatever came from the store as an API definition', () => {
    const defs = effectiveDefinitions({ budgets: [], templates: [] }, { budgets: [budget('x', { source: 'config' })], templates: [] });
    expect(defs.budgets[0]?.source).toBe('api');
  });
});

registryContract('memory', async () => ({ registry: new MemoryBudgetRegistry(), cleanup: async () => {} }));

describe('RedisBudgetRegistry', () => {
  let server: RedisServer;
  let prefixSeq = 0;
  const made: RedisBudgetRegistry[] = [];

  beforeAll(async () => {
    server = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(made.map((r) => r.close()));
    await server?.close();
  });

  function config(over: Partial<RedisConfig> = {}): RedisConfig {
    return { ...defaultConfig().store.redis, url: server.url, key_prefix: `reg${process.pid}-${++prefixSeq}`, ...over };
  }

  function open(cfg: RedisConfig): RedisBudgetRegistry {
    const r = new RedisBudgetRegistry({ redis: cfg });
    made.push(r);
    return r;
  }

  registryContract('redis', async () => {
    const registry = new RedisBudgetRegistry({ redis: config() });
    return { registry, cleanup: () => registry.close() };
  });

  it('keeps a hash per kind and a version counter under its own hash tag {prefix:registry}, values as JSON', async () => {
    const cfg = config();
    const r = open(cfg);
    await r.budgets.put(budget('b1'));
    await r.templates.put(template('t1'));
    const admin = new Redis(server.url);
    try {
      const base = `{${cfg.key_prefix}:registry}:`;
      expect((await admin.keys(`*${cfg.key_prefix}*`)).sort()).toEqual([`${base}budgets`, `${base}templates`, `${base}version`]);
      expect(JSON.parse((await admin.hget(`${base}budgets`, 'b1')) ?? 'null')).toEqual(budget('b1'));
      expect(await admin.get(`${base}version`)).toBe('2');
    } finally {
      await admin.quit();
    }
  });

  describe('upgrade from the keys of earlier versions ({prefix}:reg:*)', () => {
    let admin: Redis;
    beforeAll(() => {
      admin = new Redis(server.url);
    });
    afterAll(async () => {
      await admin.quit();
    });

    /** What an earlier version left: budget b1 and template t1 at version 7. */
    async function oldKeys(prefix: string): Promise<string> {
      const old = `{${prefix}}:reg:`;
      await admin.hset(`${old}budgets`, 'b1', JSON.stringify(budget('b1')));
      await admin.hset(`${old}templates`, 't1', JSON.stringify(template('t1')));
      await admin.set(`${old}version`, '7');
      return old;
    }

    it('copies the definitions once, keeping the version; later starts leave later changes alone', async () => {
      const cfg = config();
      const old = await oldKeys(cfg.key_prefix);
      // Three sidecars start at once: one of them copies, every one sees the copy.
      const [a, b, c] = [open(cfg), open(cfg), open(cfg)];
      const [snapA, snapB, versionC] = await Promise.all([a.snapshot(), b.snapshot(), c.version()]);
      expect(snapA).toEqual({ version: 7, budgets: [budget('b1')], templates: [template('t1')] });
      expect(snapB).toEqual(snapA);
      expect(versionC).toBe(7);

      // The old keys are still there; a sidecar starting after a change does not copy them again.
      expect(await a.budgets.delete('b1')).toBe(true);
      expect(await open(cfg).snapshot()).toEqual({ version: 8, budgets: [], templates: [template('t1')] });
      expect(await admin.get(`${old}version`)).toBe('7');
      expect(await admin.hkeys(`${old}budgets`)).toEqual(['b1']);
    });

    it('copies all or nothing: a copy that failed is made by the next call', async () => {
      const cfg = config();
      await oldKeys(cfg.key_prefix);
      const client = new Redis(server.url);
      try {
        const r = new RedisBudgetRegistry({ redis: cfg, client });
        const scripts = client as unknown as { tokenwardenDefinitionMigrate: (...args: unknown[]) => Promise<number> };
        const migrate = scripts.tokenwardenDefinitionMigrate.bind(client);
        let failures = 1;
        scripts.tokenwardenDefinitionMigrate = (...args) => (failures-- > 0 ? Promise.reject(new Error('connection lost')) : migrate(...args));
        await expect(r.snapshot()).rejects.toThrow('connection lost');
        expect(await admin.exists(`{${cfg.key_prefix}:registry}:version`)).toBe(0);
        expect(await r.snapshot()).toEqual({ version: 7, budgets: [budget('b1')], templates: [template('t1')] });
      } finally {
        client.disconnect();
      }
    });

    it('starts empty when there is nothing to copy', async () => {
      const cfg = config();
      const r = open(cfg);
      expect(await r.snapshot()).toEqual({ version: 0, budgets: [], templates: [] });
      expect(await admin.keys(`*${cfg.key_prefix}*`)).toEqual([]);
    });
  });

  it('shares definitions between sidecars: a change made by one is seen by another polling version()', async () => {
    const cfg = config();
    const a = open(cfg);
    const b = open(cfg);
    const before = await b.version();
    await a.budgets.create(budget('shared'));
    expect(await b.version()).toBeGreaterThan(before);
    expect((await b.snapshot()).budgets.map((x) => x.id)).toEqual(['shared']);
    expect(await b.budgets.create(budget('shared'))).toBe(false);
  });

  it('creates an id exactly once when many sidecars race for it', async () => {
    const cfg = config();
    const sidecars = [open(cfg), open(cfg), open(cfg)];
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => sidecars[i % 3]!.budgets.create(budget('raced', { description: `writer ${i}` }))),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await sidecars[0]!.version()).toBe(1);
  });

  it('rejects a key prefix with braces', () => {
    expect(() => new RedisBudgetRegistry({ redis: config({ key_prefix: 'a{b}' }) })).toThrow(/braces/);
  });

  it('fails calls while redis is down and works again after it returns', async () => {
    const cfg = config();
    const r = open(cfg);
    await r.budgets.put(budget('kept'));
    server.kill();
    await expect(r.budgets.list()).rejects.toThrow();
    await server.restart({ keepData: false });
    let listed: Budget[] | null = null;
    for (let i = 0; i < 100 && listed === null; i++) {
      listed = await r.budgets.list().catch(() => null);
      if (listed === null) await new Promise((res) => setTimeout(res, 50));
    }
    expect(listed).toEqual([]);
  });
});
