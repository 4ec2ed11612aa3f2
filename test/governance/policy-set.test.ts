import { describe, expect, it } from 'vitest';
import { PolicySet } from '../../src/governance/policy-set.js';
import { formatGroupBy, parseGroupBy } from '../../src/governance/templates.js';
import type { Budget, BudgetTemplate, Limit, RequestSubject } from '../../src/governance/types.js';

const monthly: Limit = { metric: 'cost_micro_usd', max: 10_000_000, window: { kind: 'month', timezone: 'UTC', weekStart: 1 } };

const budget = (id: string, selector: Budget['selector'] = {}, extra: Partial<Budget> = {}): Budget => ({
  id,
  selector,
  limits: [monthly],
  mode: 'enforce',
  onStoreError: 'open',
  stopStreams: false,
  source: 'config',
  ...extra,
});

const template = (id: string, groupBy: BudgetTemplate['groupBy'], selector: BudgetTemplate['selector'] = {}): BudgetTemplate => ({
  id,
  selector,
  groupBy,
  limits: [monthly],
  mode: 'monitor',
  onStoreError: 'closed',
  stopStreams: true,
  source: 'config',
});

const subject = (overrides: Partial<RequestSubject> = {}): RequestSubject => ({
  consumer: 'alice',
  labels: {},
  provider: 'openai',
  model: 'gpt-4o',
  api: 'chat_completions',
  ...overrides,
});

const ids = (budgets: Budget[]): string[] => budgets.map((b) => b.id);

describe('explicit budgets', () => {
  it('apply when their selector matches, all of them (nesting)', () => {
    const set = new PolicySet([budget('org'), budget('openai-only', { providers: ['openai'] }), budget('bob-only', { consumers: ['bob'] })], []);
    expect(ids(set.applicable(subject()))).toEqual(['org', 'openai-only']);
    expect(ids(set.applicable(subject({ consumer: 'bob', provider: 'anthropic' })))).toEqual(['org', 'bob-only']);
  });
});

describe('template instances', () => {
  it('gives every newly seen consumer its own budget with a deterministic id', () => {
    const set = new PolicySet([], [template('per-consumer', 'consumer')]);
    const [alice] = set.applicable(subject());
    expect(alice).toEqual({
      id: 'per-consumer:alice',
      selector: { consumers: ['alice'] },
      limits: [monthly],
      mode: 'monitor',
      onStoreError: 'closed',
      stopStreams: true,
      source: 'template',
      template: { id: 'per-consumer', group: 'alice' },
    });
    expect(ids(set.applicable(subject({ consumer: 'svc:carol' })))).toEqual(['per-consumer:svc:carol']);
    expect(set.applicable(subject())[0]).toBe(alice);
    expect(ids(set.instances())).toEqual(['per-consumer:alice', 'per-consumer:svc:carol']);
    // Another sidecar derives the same instance, hence the same counters.
    expect(new PolicySet([], [template('per-consumer', 'consumer')]).applicable(subject())).toEqual([alice]);
  });

  it('only instantiates for traffic the template selects', () => {
    const set = new PolicySet([], [template('openai-consumers', 'consumer', { providers: ['openai'] })]);
    expect(set.applicable(subject({ provider: 'anthropic' }))).toEqual([]);
    expect(set.instances()).toEqual([]);
  });

  it('groups by a consumer label, and skips consumers without it', () => {
    const set = new PolicySet([], [template('per-team', { label: 'team' })]);
    const payments = set.applicable(subject({ labels: { team: 'payments' } }));
    expect(ids(payments)).toEqual(['per-team:payments']);
    expect(payments[0]?.selector).toEqual({ labels: { team: 'payments' } });
    expect(set.applicable(subject({ consumer: 'dave', labels: { team: 'payments' } }))).toEqual(payments);
    expect(set.applicable(subject({ consumer: 'unlabelled' }))).toEqual([]);
  });

  it('groups by provider and by provider/model', () => {
    const set = new PolicySet([], [template('per-provider', 'provider'), template('per-model', 'model')]);
    expect(ids(set.applicable(subject()))).toEqual(['per-provider:openai', 'per-model:openai/gpt-4o']);
    expect(set.applicable(subject())[1]?.selector).toEqual({ providers: ['openai'], models: ['gpt-4o'] });
    // Without a model there is nothing to group by.
    expect(ids(set.applicable(subject({ model: '' })))).toEqual(['per-provider:openai']);
  });

  it('stays within the instance cache bound and re-derives evicted instances identically', () => {
    const set = new PolicySet([], [template('per-consumer', 'consumer')], { maxInstances: 2 });
    const first = set.applicable(subject({ consumer: 'a' }))[0];
    set.applicable(subject({ consumer: 'b' }));
    set.applicable(subject({ consumer: 'c' }));
    expect(set.instances()).toHaveLength(2);
    expect(set.applicable(subject({ consumer: 'a' }))[0]).toEqual(first);
  });
});

describe('precedence: an explicit budget with an instance id overrides the instance', () => {
  const templates = [template('per-consumer', 'consumer', { providers: ['openai'] })];

  it('replaces that instance only, and applies nowhere else', () => {
    const override = budget('per-consumer:alice', {}, { limits: [{ ...monthly, max: 50_000_000 }] });
    const set = new PolicySet([override], templates);
    expect(set.applicable(subject())).toEqual([override]);
    expect(ids(set.applicable(subject({ consumer: 'bob' })))).toEqual(['per-consumer:bob']);
    // The template's selector still bounds it.
    expect(set.applicable(subject({ provider: 'anthropic' }))).toEqual([]);
    expect(set.instances().map((b) => b.id)).toEqual(['per-consumer:bob']);
  });

  it('can narrow further with its own selector (the rest of the group gets no budget from the template)', () => {
    const set = new PolicySet([budget('per-consumer:alice', { models: ['gpt-4o'] })], templates);
    expect(ids(set.applicable(subject()))).toEqual(['per-consumer:alice']);
    expect(set.applicable(subject({ model: 'gpt-4.1' }))).toEqual([]);
  });

  it('applies to nothing when its template does not exist', () => {
    const set = new PolicySet([budget('gone:alice')], templates);
    expect(ids(set.applicable(subject()))).toEqual(['per-consumer:alice']);
  });
});

describe('lookups', () => {
  const set = new PolicySet([budget('org')], [template('per-consumer', 'consumer'), template('per-model', 'model')]);

  it('finds explicit budgets and instances, even instances this sidecar has not seen', () => {
    expect(set.budget('org')?.source).toBe('config');
    expect(set.budget('per-consumer:zoe')).toMatchObject({ id: 'per-consumer:zoe', source: 'template', template: { id: 'per-consumer', group: 'zoe' } });
    expect(set.instances()).toEqual([]);
    expect(set.budget('per-model:openai/gpt-4o')?.selector).toEqual({ providers: ['openai'], models: ['gpt-4o'] });
  });

  it('finds nothing for unknown ids or malformed groups', () => {
    expect(set.budget('nope')).toBeUndefined();
    expect(set.budget('nope:alice')).toBeUndefined();
    expect(set.budget('per-consumer:')).toBeUndefined();
    expect(set.budget('per-model:gpt-4o')).toBeUndefined();
  });

  it('lists explicit budgets and templates as given', () => {
    expect(ids(set.budgets())).toEqual(['org']);
    expect(set.templates().map((t) => t.id)).toEqual(['per-consumer', 'per-model']);
  });
});

describe('construction', () => {
  it('rejects duplicate ids and template ids with ":"', () => {
    expect(() => new PolicySet([budget('a'), budget('a')], [])).toThrow(/duplicate budget id "a"/);
    expect(() => new PolicySet([], [template('t', 'consumer'), template('t', 'provider')])).toThrow(/duplicate budget template id "t"/);
    expect(() => new PolicySet([], [template('t:x', 'consumer')])).toThrow(/must not contain ":"/);
  });
});

describe('group_by spelling', () => {
  it('round-trips between the YAML/API text and the model', () => {
    for (const text of ['consumer', 'provider', 'model', 'label:team']) {
      const parsed = parseGroupBy(text);
      expect(parsed === undefined ? undefined : formatGroupBy(parsed)).toBe(text);
    }
    expect(parseGroupBy('label:')).toBeUndefined();
    expect(parseGroupBy('team')).toBeUndefined();
  });
});
