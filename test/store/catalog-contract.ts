/**
 * The CatalogRegistry contract (definitions, version, snapshot, audit log): one suite run against
 * every implementation (memory, and Redis standalone, Cluster and Sentinel). Each test gets a fresh,
 * empty registry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry, ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../../src/catalog/types.js';
import type { CatalogRegistry } from '../../src/registry/catalog-types.js';

export const owner = (id: string, over: Partial<Owner> = {}): Owner => ({ id, name: `Team ${id}`, costCenter: 'CC-1', contacts: ['a@example.com'], source: 'api', ...over });
export const consumer = (id: string, over: Partial<ConsumerEntry> = {}): ConsumerEntry => ({
  id,
  status: 'added',
  owner: 'payments',
  labels: { env: 'prod' },
  displayName: 'Checkout',
  budgetTemplates: ['per-consumer'],
  source: 'api',
  ...over,
});
export const rule = (id: string, over: Partial<ConsumerRule> = {}): ConsumerRule => ({ id, match: 'spiffe://prod/ns/payments/*', priority: 10, status: 'added', owner: 'payments', source: 'api', ...over });
export const resource = (provider: string, model: string, over: Partial<Resource> = {}): Resource => ({
  id: `${provider}/${model}`,
  provider,
  model,
  sanctioned: true,
  price: { input_mtok: 2.5, output_mtok: 10 },
  source: 'api',
  ...over,
});
export const policy = (id: string, over: Partial<SanctionPolicy> = {}): SanctionPolicy => ({ id, mode: 'enforce', allow: ['openai/gpt-4o-mini*'], source: 'api', ...over });
export const audit = (at: number, id: string): AuditEntry => ({ at, actor: 'alice', action: 'update', entity: 'owner', id, before: owner(id), after: owner(id, { name: 'new' }) });

export type MakeRegistry = () => Promise<{ registry: CatalogRegistry; cleanup(): Promise<void> }>;

export function catalogContract(name: string, make: MakeRegistry): void {
  describe(`CatalogRegistry contract: ${name}`, () => {
    let cleanup: () => Promise<void> = async () => {};

    async function fresh(): Promise<CatalogRegistry> {
      const made = await make();
      cleanup = made.cleanup;
      return made.registry;
    }

    afterEach(async () => {
      await cleanup();
    });

    it('starts empty at version 0', async () => {
      const r = await fresh();
      expect(await r.snapshot()).toEqual({ version: 0, owners: [], consumers: [], consumerRules: [], resources: [], policies: [] });
      expect(await r.owners.get('nope')).toBeNull();
      expect(await r.audit.list({ limit: 10 })).toEqual([]);
    });

    it('stores every kind apart, reads each back exactly, and snapshots them together', async () => {
      const r = await fresh();
      expect(await r.owners.create(owner('payments'))).toBe(true);
      expect(await r.owners.create(owner('payments', { name: 'other' }))).toBe(false);
      await r.consumers.put(consumer('spiffe://prod/ns/payments/sa/checkout'));
      await r.consumerRules.put(rule('payments'));
      await r.resources.put(resource('openai', 'gpt-4o'));
      await r.resources.put(resource('aws_bedrock', 'anthropic.claude-3-5-sonnet-20240620-v1:0', { sanctioned: false, endpoint: 'eu-west-1' }));
      await r.policies.put(policy('global'));
      await r.policies.put(policy('payments', { mode: 'monitor', allow: [] }));
      expect(await r.owners.get('payments')).toEqual(owner('payments'));
      expect(await r.consumers.get('spiffe://prod/ns/payments/sa/checkout')).toEqual(consumer('spiffe://prod/ns/payments/sa/checkout'));
      expect(await r.consumers.get('payments')).toBeNull();
      const snap = await r.snapshot();
      expect(snap.version).toBe(7);
      expect(snap.owners).toEqual([owner('payments')]);
      expect(snap.consumerRules).toEqual([rule('payments')]);
      expect(snap.resources.map((x) => x.id)).toEqual(['aws_bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0', 'openai/gpt-4o']);
      expect(snap.policies.map((p) => [p.id, p.mode])).toEqual([
        ['global', 'enforce'],
        ['payments', 'monitor'],
      ]);
    });

    it('bumps the version on every definition change and only on changes; audit appends leave it alone', async () => {
      const r = await fresh();
      const seen = [await r.version()];
      await r.owners.create(owner('a'));
      seen.push(await r.version());
      await r.owners.create(owner('a')); // refused
      seen.push(await r.version());
      await r.resources.put(resource('openai', 'gpt-4o'));
      seen.push(await r.version());
      await r.audit.append(audit(1, 'a'));
      seen.push(await r.version());
      await r.policies.delete('missing'); // nothing deleted
      seen.push(await r.version());
      await r.owners.delete('a');
      seen.push(await r.version());
      expect(seen).toEqual([0, 1, 1, 2, 2, 2, 3]);
    });

    it('put creates or replaces; delete removes once', async () => {
      const r = await fresh();
      expect(await r.consumerRules.put(rule('r1'))).toBe('created');
      expect(await r.consumerRules.put(rule('r1', { priority: 1 }))).toBe('replaced');
      expect((await r.consumerRules.get('r1'))?.priority).toBe(1);
      expect(await r.consumerRules.delete('r1')).toBe(true);
      expect(await r.consumerRules.delete('r1')).toBe(false);
      expect(await r.consumerRules.list()).toEqual([]);
    });

    it('stores copies: mutating what was passed or returned changes nothing stored', async () => {
      const r = await fresh();
      const c = consumer('x');
      await r.consumers.put(c);
      c.labels!['env'] = 'dev';
      const read = await r.consumers.get('x');
      read!.budgetTemplates!.push('other');
      expect(await r.consumers.get('x')).toEqual(consumer('x'));
      const entry = audit(5, 'x');
      await r.audit.append(entry);
      entry.actor = 'mallory';
      expect((await r.audit.list({ limit: 1 }))[0]?.actor).toBe('alice');
    });

    it('keeps consumer ids with any characters', async () => {
      const r = await fresh();
      const id = 'key:9f86d081 {x} "q" ü/ns';
      await r.consumers.put(consumer(id));
      expect((await r.consumers.get(id))?.id).toBe(id);
      expect(await r.consumers.delete(id)).toBe(true);
    });

    it('lists the audit log newest first, limited, and before a time', async () => {
      const r = await fresh();
      for (let i = 1; i <= 7; i++) await r.audit.append(audit(i * 1000, `o${i}`));
      expect((await r.audit.list({ limit: 3 })).map((e) => e.id)).toEqual(['o7', 'o6', 'o5']);
      expect((await r.audit.list({ limit: 3, before: 5000 })).map((e) => e.id)).toEqual(['o4', 'o3', 'o2']);
      expect((await r.audit.list({ limit: 100, before: 2000 })).map((e) => e.id)).toEqual(['o1']);
      expect(await r.audit.list({ limit: 100, before: 1000 })).toEqual([]);
      expect((await r.audit.list({ limit: 1 }))[0]).toEqual(audit(7000, 'o7'));
    });
  });
}
