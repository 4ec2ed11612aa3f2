/** The governor decides from plain request facts and answers with data: no exchange, no gRPC. */
import { describe, expect, it, vi } from 'vitest';
import { Catalog, EMPTY_DEFINITIONS } from '../../src/catalog/catalog.js';
import { Admitter } from '../../src/governance/admission.js';
import { BudgetGovernor, type GovernedRequest, type UnsanctionedEvent } from '../../src/governance/governor.js';
import { PolicySet } from '../../src/governance/policy-set.js';
import type { Budget } from '../../src/governance/types.js';
import { counterKey } from '../../src/governance/windows.js';
import { MemoryLedger } from '../../src/ledger/memory.js';
import { EMPTY_USAGE } from '../../src/domain.js';

const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
const DAY = { kind: 'day', timezone: 'UTC', weekStart: 1 } as const;
const COUNTER = { counter: counterKey('team-cap', 0, DAY, T0), max: 1_000 };
const capped: Budget = {
  id: 'team-cap', selector: { consumers: ['app-1'] }, limits: [{ metric: 'total_tokens', max: 1_000, window: DAY }],
  mode: 'enforce', onStoreError: 'open', stopStreams: false, source: 'config',
};

function setup(opts: { budgets?: Budget[]; policy?: 'enforce' | 'monitor' } = {}) {
  const ledger = new MemoryLedger({ now: () => T0 });
  const policies = new PolicySet(opts.budgets ?? [], []);
  const admitter = new Admitter({ policies: () => policies, ledger, price: () => 0, defaultMaxOutputTokens: 100, leaseMs: 60_000, ledgerTimeoutMs: 1_000 });
  const catalog = new Catalog({
    ...EMPTY_DEFINITIONS,
    policies: opts.policy ? [{ id: 'global', mode: opts.policy, allow: [], source: 'config' }] : [],
  });
  const events: UnsanctionedEvent[] = [];
  const governor = new BudgetGovernor({ admitter, catalog: () => catalog, unsanctioned: (e) => events.push(e), now: () => T0 });
  return { governor, ledger, events };
}

function request(estimate = vi.fn(async () => ({ promptTokens: 40, maxOutputTokens: 60 }))): GovernedRequest & { estimate: typeof estimate } {
  return { provider: 'openai', api: 'chat_completions', model: 'gpt-4o', consumerId: 'app-1', requestId: 'r-1', estimate };
}

describe('BudgetGovernor', () => {
  it('answers at once, with nothing, when no policy and no budget applies: the prompt is never estimated', () => {
    const { governor } = setup({ budgets: [capped] });
    const req = { ...request(), consumerId: 'app-2' };
    expect(governor.admit(req)).toBeNull();
    expect(governor.flag(req)).toBe(false);
    expect(req.estimate).not.toHaveBeenCalled();
  });

  it('returns an unsanctioned model as data: flagged with a header in monitor mode, refused with 403 in enforce mode', () => {
    const monitor = setup({ policy: 'monitor' });
    const flagged = monitor.governor.admit(request());
    expect(flagged).toMatchObject({ reject: null, unsanctioned: true });
    expect(Object.keys((flagged as { responseHeaders: object }).responseHeaders)).toHaveLength(1);
    expect(monitor.events).toEqual([{ provider: 'openai', model: 'gpt-4o', policy: 'global', decision: 'flagged' }]);

    const enforce = setup({ policy: 'enforce' });
    const refused = enforce.governor.admit(request());
    expect(refused).toMatchObject({ unsanctioned: true, reject: { status: 403, details: 'tokenwarden_model_not_sanctioned' } });
    expect(enforce.governor.flag(request())).toBe(true);
  });

  it('reserves on the applicable budget with the estimate, and settles or releases once the usage is known', async () => {
    const { governor, ledger } = setup({ budgets: [capped] });
    const req = request();
    const decision = await governor.admit(req);
    expect(req.estimate).toHaveBeenCalledTimes(1);
    expect(decision).toMatchObject({ reject: null, unsanctioned: false });
    expect((await ledger.read([COUNTER]))[0]).toMatchObject({ used: 0, reserved: 100 });
    await governor.finish(decision!, { usage: { ...EMPTY_USAGE, input_tokens: 40, output_tokens: 7 }, costMicroUsd: null });
    expect((await ledger.read([COUNTER]))[0]).toMatchObject({ used: 47, reserved: 0 });

    // A failed upstream call reports nothing: the reservation is given back, nothing is used.
    const failed = await governor.admit(request());
    await governor.finish(failed!, { usage: EMPTY_USAGE, costMicroUsd: null });
    expect((await ledger.read([COUNTER]))[0]).toMatchObject({ used: 47, reserved: 0 });
  });
});
