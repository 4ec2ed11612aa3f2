/**
 * The budget governor of the ext_proc path: when a request is complete it asks the Admitter (one
 * ledger round trip), turns a refusal into a 429 in the provider's format and an admission into
 * response headers, and settles or releases the reservation once the exchange is recorded.
 */
import { randomUUID } from 'node:crypto';
import type { ExchangeRecord } from '../domain.js';
import type { ExchangeGovernor, GovernorDecision } from './stream.js';
import type { Exchange } from '../traffic/exchange.js';
import { ANONYMOUS_CONSUMER } from '../store/aggregate.js';
import type { Admission, Admitter } from '../governance/admission.js';
import { admittedHeaders } from '../governance/headers.js';
import type { PolicySet } from '../governance/policy-set.js';
import { rejectionFor } from '../governance/rejection.js';
import type { RequestSubject } from '../governance/types.js';

export type DecisionKind = 'admitted' | 'blocked' | 'would_block';

interface BudgetDecision extends GovernorDecision {
  admission: Admission;
}

export interface GovernorOptions {
  policies: () => PolicySet;
  admitter: Admitter;
  /** Called once per decision and budget (metrics). */
  decided?(budgetId: string, kind: DecisionKind): void;
  now?: () => number;
}

export class BudgetGovernor implements ExchangeGovernor {
  constructor(private readonly opts: GovernorOptions) {}

  async admit(ex: Exchange): Promise<BudgetDecision | null> {
    const route = ex.route;
    if (!route) return null;
    const subject: RequestSubject = {
      consumer: ex.consumer?.id ?? ANONYMOUS_CONSUMER,
      labels: {},
      provider: route.provider,
      model: ex.model ?? '',
      api: route.api,
    };
    // Most traffic has no budget: no prompt estimate to wait for, no ledger call.
    if (this.opts.policies().applicable(subject).length === 0) return null;
    const input = await ex.admissionInput();
    const now = (this.opts.now ?? Date.now)();
    const admission = await this.opts.admitter.admit({
      // The lease key must be unique per exchange: x-request-id comes from clients and can repeat,
      // and the ledger treats a known key as the same request (idempotent retries).
      requestId: `${ex.requestId ?? 'req'}:${randomUUID()}`,
      subject,
      promptTokens: input?.promptTokens ?? 0,
      maxOutputTokens: input?.maxOutputTokens ?? null,
      nowMs: now,
    });
    this.report(admission);
    if (!admission.admitted) {
      const r = rejectionFor(route.api, route.provider, admission.blockedBy, now);
      const reject = { ...r, budgets: admission.blockedBy.map((b) => b.budget.id) };
      return { reject, responseHeaders: {}, outputCap: null, admission } satisfies BudgetDecision;
    }
    const outputCap = outputCapOf(admission, input?.promptTokens ?? 0);
    return { reject: null, responseHeaders: admittedHeaders(admission, now), outputCap, admission } satisfies BudgetDecision;
  }

  async finish(decision: BudgetDecision, record: ExchangeRecord): Promise<void> {
    const admission = decision.admission;
    if (!admission.admitted) return;
    // Nothing was used (failed upstream call, cancelled before any usage): give the reservation back.
    if (record.usageSource === 'none') return this.opts.admitter.release(admission);
    return this.opts.admitter.settle(admission, { usage: record.usage, costMicroUsd: record.costMicroUsd });
  }

  private report(a: Admission): void {
    const decided = this.opts.decided;
    if (!decided) return;
    const blocked = new Set(a.blockedBy.map((b) => b.budget.id));
    const would = new Set(a.wouldBlock.map((b) => b.budget.id));
    for (const id of a.budgets) decided(id, blocked.has(id) ? 'blocked' : would.has(id) ? 'would_block' : 'admitted');
  }
}

/**
 * The output a stream may reach under its stop_streams budgets: what was reserved for output plus
 * what the budget still had left after the reservation, over every output or total token limit.
 */
export function outputCapOf(a: Admission, promptTokens: number): { tokens: number; budgets: string[] } | null {
  let tokens = Infinity;
  const budgets = new Set<string>();
  for (const state of a.states) {
    if (state.budget.mode !== 'enforce' || !state.budget.stopStreams) continue;
    for (const l of state.limits) {
      if (l.remaining === null || (l.limit.metric !== 'output_tokens' && l.limit.metric !== 'total_tokens')) continue;
      const item = a.items.find((i) => i.counter === l.counter);
      if (!item) continue;
      const reservedOutput = l.limit.metric === 'output_tokens' ? item.amount : Math.max(0, item.amount - promptTokens);
      tokens = Math.min(tokens, reservedOutput + l.remaining);
      budgets.add(state.budget.id);
    }
  }
  return tokens === Infinity ? null : { tokens, budgets: [...budgets] };
}
