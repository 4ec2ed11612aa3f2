/**
 * Templates attached to a consumer in the catalog (ResolvedConsumer.budgetTemplates, carried as
 * RequestSubject.templates) and catalog labels in budget selection: pure PolicySet behaviour.
 */
import { describe, expect, it } from 'vitest';
import { Catalog, governanceLabels } from '../../src/catalog/catalog.js';
import { PolicySet } from '../../src/governance/policy-set.js';
import type { Budget, BudgetTemplate, Limit, RequestSubject } from '../../src/governance/types.js';

const daily: Limit = { metric: 'requests', max: 10, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } };

const template = (id: string, groupBy: BudgetTemplate['groupBy'], selector: BudgetTemplate['selector']): BudgetTemplate => ({
  id,
  selector,
  groupBy,
  limits: [daily],
  mode: 'enforce',
  onStoreError: 'open',
  stopStreams: false,
  source: 'config',
});

const budget = (id: string, selector: Budget['selector']): Budget => ({
  id,
  selector,
  limits: [daily],
  mode: 'enforce',
  onStoreError: 'open',
  stopStreams: false,
  source: 'config',
});

const subject = (overrides: Partial<RequestSubject> = {}): RequestSubject => ({
  consumer: 'billing-worker',
  labels: {},
  provider: 'openai',
  model: 'gpt-4o',
  api: 'chat_completions',
  ...overrides,
});

const ids = (budgets: Budget[]): string[] => budgets.map((b) => b.id);

describe('templates attached to a consumer', () => {
  const set = new PolicySet(
    [],
    [
      template('per-app', 'consumer', { consumers: ['nobody-*'], labels: { team: 'none' }, providers: ['openai'], models: ['gpt-4o*'] }),
      template('per-team', { label: 'team' }, { consumers: ['nobody-*'] }),
    ],
  );

  it('apply whatever their consumer selection says, with the usual deterministic instance id', () => {
    expect(ids(set.applicable(subject()))).toEqual([]);
    const [instance] = set.applicable(subject({ templates: ['per-app'] }));
    expect(instance).toMatchObject({ id: 'per-app:billing-worker', source: 'template', template: { id: 'per-app', group: 'billing-worker' } });
    // Derivable from its id alone, like any instance (another sidecar, the admin API).
    expect(set.budget('per-app:billing-worker')?.template).toEqual({ id: 'per-app', group: 'billing-worker' });
  });

  it('still narrow by their providers and models', () => {
    expect(ids(set.applicable(subject({ templates: ['per-app'], provider: 'anthropic', model: 'claude-sonnet-4-5' })))).toEqual([]);
    expect(ids(set.applicable(subject({ templates: ['per-app'], model: 'o3' })))).toEqual([]);
  });

  it('group by a label only when the consumer has it', () => {
    expect(ids(set.applicable(subject({ templates: ['per-team'] })))).toEqual([]);
    expect(ids(set.applicable(subject({ templates: ['per-team'], labels: { team: 'billing' } })))).toEqual(['per-team:billing']);
  });

  it('leave out templates not attached and unknown template ids', () => {
    expect(ids(set.applicable(subject({ templates: ['per-team', 'no-such-template'], labels: { team: 'billing' } })))).toEqual(['per-team:billing']);
  });

  it('give way to an explicit override of the instance, as matched templates do', () => {
    const withOverride = new PolicySet(
      [budget('per-app:billing-worker', {})],
      [template('per-app', 'consumer', { consumers: ['nobody-*'] })],
    );
    const [applied] = withOverride.applicable(subject({ templates: ['per-app'] }));
    expect(applied).toMatchObject({ id: 'per-app:billing-worker', source: 'config' });
  });
});

describe('catalog labels in budget selection', () => {
  const catalog = new Catalog({
    owners: [{ id: 'payments', name: 'Payments', source: 'config' }],
    consumers: [{ id: 'ledger-svc', status: 'added', owner: 'payments', labels: { env: 'prod', team: 'core' }, source: 'config' }],
    consumerRules: [],
    resources: [],
    policies: [],
  });
  const set = new PolicySet(
    [budget('payments-prod', { labels: { owner: 'payments', env: 'prod' } })],
    [template('per-owner', { label: 'owner' }, {})],
  );

  it('the owner is a label: selectors and group_by label:owner see it', () => {
    const labels = governanceLabels(catalog.consumer('ledger-svc'));
    expect(ids(set.applicable(subject({ consumer: 'ledger-svc', labels })))).toEqual(['payments-prod', 'per-owner:payments']);
    expect(ids(set.applicable(subject({ consumer: 'unresolved', labels: governanceLabels(catalog.consumer('unresolved')) })))).toEqual([]);
  });
});
