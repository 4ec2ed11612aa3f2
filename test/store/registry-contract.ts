/**
 * The BudgetRegistry contract: one suite run against every implementation (memory, and Redis
 * standalone, Cluster and Sentinel). Each test gets a fresh, empty registry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Budget, BudgetTemplate } from '../../src/governance/types.js';
import type { BudgetRegistry } from '../../src/registry/types.js';

export function budget(id: string, over: Partial<Budget> = {}): Budget {
  return {
    id,
    selector: { consumers: ['team-a-*'], models: ['gpt-4o*'] },
    limits: [
      { metric: 'total_tokens', max: 1_000_000, window: { kind: 'day', timezone: 'Europe/Paris', weekStart: 1 } },
      { metric: 'cost_micro_usd', max: 500_000_000, window: { kind: 'month', timezone: 'UTC', weekStart: 1 } },
    ],
    mode: 'monitor',
    onStoreError: 'open',
    stopStreams: false,
    source: 'api',
    ...over,
  };
}

export function template(id: string, over: Partial<BudgetTemplate> = {}): BudgetTemplate {
  return {
    id,
    selector: {},
    groupBy: { label: 'team' },
    limits: [{ metric: 'requests', max: 60, window: { kind: 'rolling', seconds: 60 } }],
    mode: 'enforce',
    onStoreError: 'closed',
    stopStreams: true,
    source: 'api',
    ...over,
  };
}

export type MakeRegistry = () => Promise<{ registry: BudgetRegistry; cleanup(): Promise<void> }>;

export function registryContract(name: string, make: MakeRegistry): void {
  describe(`BudgetRegistry contract: ${name}`, () => {
    let registry: BudgetRegistry;
    let cleanup: () => Promise<void> = async () => {};

    async function fresh(): Promise<BudgetRegistry> {
      ({ registry, cleanup } = await make());
      return registry;
    }

    afterEach(async () => {
      await cleanup();
    });

    it('starts empty at version 0', async () => {
      const r = await fresh();
      expect(await r.version()).toBe(0);
      expect(await r.snapshot()).toEqual({ version: 0, budgets: [], templates: [] });
      expect(await r.budgets.get('nope')).toBeNull();
    });

    it('creates, reads back exactly, lists by id, and refuses to create an existing id', async () => {
      const r = await fresh();
      const b = budget('b-team-a', { description: 'team A daily', selector: { labels: { team: 'a' }, apis: ['chat_completions'] } });
      expect(await r.budgets.create(b)).toBe(true);
      expect(await r.budgets.create(budget('a-first'))).toBe(true);
      expect(await r.budgets.get('b-team-a')).toEqual(b);
      expect((await r.budgets.list()).map((x) => x.id)).toEqual(['a-first', 'b-team-a']);

      expect(await r.budgets.create(budget('b-team-a', { mode: 'enforce' }))).toBe(false);
      expect((await r.budgets.get('b-team-a'))?.mode).toBe('monitor');
    });

    it('put creates or replaces; delete removes once', async () => {
      const r = await fresh();
      expect(await r.templates.put(template('per-team'))).toBe('created');
      expect(await r.templates.put(template('per-team', { groupBy: 'consumer', mode: 'monitor' }))).toBe('replaced');
      expect(await r.templates.get('per-team')).toEqual(template('per-team', { groupBy: 'consumer', mode: 'monitor' }));
      expect(await r.templates.delete('per-team')).toBe(true);
      expect(await r.templates.delete('per-team')).toBe(false);
      expect(await r.templates.get('per-team')).toBeNull();
      expect(await r.templates.list()).toEqual([]);
    });

    it('keeps budgets and templates apart, even with the same id', async () => {
      const r = await fresh();
      await r.budgets.put(budget('same'));
      await r.templates.put(template('same'));
      expect(await r.budgets.get('same')).toEqual(budget('same'));
      expect(await r.templates.get('same')).toEqual(template('same'));
      await r.budgets.delete('same');
      expect(await r.templates.get('same')).not.toBeNull();
    });

    it('bumps the version on every change and only on changes', async () => {
      const r = await fresh();
      const seen = [await r.version()];
      await r.budgets.create(budget('x'));
      seen.push(await r.version());
      await r.budgets.create(budget('x')); // refused: no change
      seen.push(await r.version());
      await r.templates.put(template('t'));
      seen.push(await r.version());
      await r.budgets.put(budget('x', { mode: 'enforce' }));
      seen.push(await r.version());
      await r.budgets.delete('missing'); // nothing deleted: no change
      seen.push(await r.version());
      await r.templates.delete('t');
      seen.push(await r.version());
      expect(seen).toEqual([0, 1, 1, 2, 3, 3, 4]);
      expect(await r.snapshot()).toEqual({ version: 4, budgets: [budget('x', { mode: 'enforce' })], templates: [] });
    });

    it('stores copies: mutating what was passed or returned changes nothing stored', async () => {
      const r = await fresh();
      const b = budget('copy');
      await r.budgets.create(b);
      b.limits[0]!.max = 1;
      const read = await r.budgets.get('copy');
      read!.selector.consumers!.push('everyone');
      expect(await r.budgets.get('copy')).toEqual(budget('copy'));
    });

    it('keeps ids with any characters', async () => {
      const r = await fresh();
      const id = 'team:a/ü {x} "q"';
      await r.budgets.put(budget(id));
      expect((await r.budgets.get(id))?.id).toBe(id);
      expect(await r.budgets.delete(id)).toBe(true);
    });
  });
}
