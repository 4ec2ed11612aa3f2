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
      requestId: ex.requestId ?? randomUUID(),
      subject,
      promptTokens: input?.promptTokens ?? 0,
      maxOutputTokens: input?.maxOutputTokens ?? null,
      nowMs: now,
    });
    this.report(admission);
    if (!admission.admitted) {
      const r = rejectionFor(route.api, route.provider, admission.blockedBy, now);
      return { reject: { ...r, budgets: admission.blockedBy.map((b) => b.budget.id) }, responseHeaders: {}, admission } satisfies BudgetDecision;
    }
    return { reject: null, responseHeaders: admittedHeaders(admission, now), admission } satisfies BudgetDecision;
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
