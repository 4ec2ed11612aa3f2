/**
 * The governor of the ext_proc path. When a request is complete it first applies the catalog's
 * unsanctioned-model policy (an enforce policy answers 403 in the provider's format before any
 * budget is asked; a monitor policy flags), then asks the Admitter (one ledger round trip, rarely
 * two) with the consumer's catalog labels and attached templates, turns a refusal into a 429 in the
 * provider's format and an admission into response headers, and settles or releases the reservation
 * once the exchange is recorded.
 */
import { randomUUID } from 'node:crypto';
import type { ExchangeRecord } from '../domain.js';
import type { ExchangeGovernor, GovernorDecision } from './stream.js';
import type { Exchange } from '../traffic/exchange.js';
import { ANONYMOUS_CONSUMER } from '../domain.js';
import { Catalog, EMPTY_DEFINITIONS, governanceLabels } from '../catalog/catalog.js';
import type { CatalogView } from '../catalog/types.js';
import type { Admission, Admitter } from '../governance/admission.js';
import { admittedHeaders, headerText } from '../governance/headers.js';
import type { PolicySet } from '../governance/policy-set.js';
import { rejectionFor, sanctionRejection } from '../governance/rejection.js';
import { policyBlocker, SanctionCheck, UNSANCTIONED_HEADER, type Unsanctioned } from '../governance/sanction.js';
import type { RequestSubject } from '../governance/types.js';

export type DecisionKind = 'admitted' | 'blocked' | 'would_block';
export type SanctionDecisionKind = 'flagged' | 'blocked';

interface BudgetDecision extends GovernorDecision {
  /** Null when no budget was asked (none applies, or a policy refused first). */
  admission: Admission | null;
}

export interface UnsanctionedEvent {
  provider: string;
  model: string;
  policy: string;
  decision: SanctionDecisionKind;
}

export interface GovernorOptions {
  policies: () => PolicySet;
  admitter: Admitter;
  /** The catalog in force, read per request (owners, labels, attached templates, sanction policies). */
  catalog?: () => CatalogView;
  /** Called once per decision and budget (metrics). */
  decided?(budgetId: string, kind: DecisionKind): void;
  /** Called once per request a sanction policy flags or blocks (metrics). */
  unsanctioned?(event: UnsanctionedEvent): void;
  now?: () => number;
}

const EMPTY_CATALOG = new Catalog(EMPTY_DEFINITIONS);

export class BudgetGovernor implements ExchangeGovernor {
  private readonly catalog: () => CatalogView;
  private readonly sanction: SanctionCheck;

  constructor(private readonly opts: GovernorOptions) {
    this.catalog = opts.catalog ?? (() => EMPTY_CATALOG);
    this.sanction = new SanctionCheck(this.catalog);
  }

  flag(ex: Exchange): void {
    const route = ex.route;
    if (!route) return;
    const found = this.sanction.check(ex.consumer?.id ?? '', route.provider, ex.model ?? '');
    if (found) this.note(ex, route.provider, found, 'flagged');
  }

  /** Synchronous when no budget applies (most traffic): no promise, no microtask, for the answer. */
  admit(ex: Exchange): BudgetDecision | null | Promise<BudgetDecision | null> {
    const route = ex.route;
    if (!route) return null;
    const model = ex.model ?? '';
    const consumerId = ex.consumer?.id;
    const unsanctioned = this.sanction.check(consumerId ?? '', route.provider, model);
    if (unsanctioned?.mode === 'enforce') {
      this.note(ex, route.provider, unsanctioned, 'blocked');
      // Refused before any budget is asked: nothing is reserved for a request that never goes upstream.
      const r = sanctionRejection(route.api, route.provider, model, unsanctioned.policy);
      const reject = { ...r, blockedBy: [policyBlocker(unsanctioned.policy)], details: 'tokenwarden_model_not_sanctioned' };
      return { reject, responseHeaders: {}, outputCap: null, admission: null } satisfies BudgetDecision;
    }
    const flagged: Record<string, string> = {};
    if (unsanctioned) {
      this.note(ex, route.provider, unsanctioned, 'flagged');
      flagged[UNSANCTIONED_HEADER] = headerText(unsanctioned.resource);
    }

    const resolved = consumerId === undefined ? null : this.catalog().consumer(consumerId);
    const subject: RequestSubject = {
      consumer: consumerId ?? ANONYMOUS_CONSUMER,
      labels: resolved === null ? {} : governanceLabels(resolved),
      provider: route.provider,
      model,
      api: route.api,
    };
    if (resolved !== null && resolved.budgetTemplates.length > 0) subject.templates = resolved.budgetTemplates;
    // Most traffic has no budget: no prompt estimate to wait for, no ledger call.
    if (this.opts.policies().applicable(subject).length === 0) {
      return unsanctioned ? { reject: null, responseHeaders: flagged, outputCap: null, admission: null } : null;
    }
    return this.decide(ex, route, model, subject, flagged);
  }

  private async decide(ex: Exchange, route: NonNullable<Exchange['route']>, model: string, subject: RequestSubject, flagged: Record<string, string>): Promise<BudgetDecision> {
    const input = await ex.admissionInput();
    const now = (this.opts.now ?? Date.now)();
    const admission = await this.opts.admitter.admit({
      // The lease key must be unique per exchange: x-request-id comes from clients and can repeat,
      // and the ledger treats a known key as the same request (idempotent retries).
      requestId: `${ex.requestId ?? 'req'}:${randomUUID()}`,
      subject,
      promptTokens: input?.promptTokens ?? 0,
      countPrompt: input?.countPrompt,
      maxOutputTokens: input?.maxOutputTokens ?? null,
      nowMs: now,
    });
    this.report(admission);
    if (!admission.admitted) {
      const r = rejectionFor(route.api, route.provider, admission.blockedBy, now);
      const reject = { ...r, blockedBy: admission.blockedBy.map((b) => b.budget.id), details: 'tokenwarden_budget_exceeded' };
      return { reject, responseHeaders: {}, outputCap: null, admission } satisfies BudgetDecision;
    }
    const outputCap = outputCapOf(admission, admission.promptTokens);
    const responseHeaders = { ...admittedHeaders(admission, now), ...flagged };
    return { reject: null, responseHeaders, outputCap, admission } satisfies BudgetDecision;
  }

  async finish(decision: BudgetDecision, record: ExchangeRecord): Promise<void> {
    const admission = decision.admission;
    if (admission === null || !admission.admitted) return;
    // Nothing was used (failed upstream call, cancelled before any usage): give the reservation back.
    if (record.usageSource === 'none') return this.opts.admitter.release(admission);
    return this.opts.admitter.settle(admission, { usage: record.usage, costMicroUsd: record.costMicroUsd });
  }

  private note(ex: Exchange, provider: string, u: Unsanctioned, decision: SanctionDecisionKind): void {
    ex.unsanctioned = true;
    this.opts.unsanctioned?.({ provider, model: ex.model ?? '', policy: u.policy, decision });
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
 * The output a stream may reach under its stop_streams budgets: what was reserved for output (a
 * total less `promptTokens`, the prompt's part of the reservation) plus what the budget still had
 * left after the reservation, over every output or total token limit.
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
