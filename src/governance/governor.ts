/**
 * Governance of one request, from plain facts (GovernedRequest), with decisions returned as data
 * (GovernorDecision). Once the request is complete it first applies the catalog's
 * unsanctioned-model policy (an enforce policy answers 403 in the provider's format before any
 * budget is asked; a monitor policy flags), then asks the Admitter (one ledger round trip, rarely
 * two) with the consumer's catalog labels and attached templates, turns a refusal into a 429 in the
 * provider's format and an admission into response headers; once the exchange is recorded, the
 * Admitter settles or releases the reservation.
 */
import { randomUUID } from 'node:crypto';
import type { ApiKind, ProviderName, Usage } from '../domain.js';
import type { AdmissionInput } from '../traffic/exchange-types.js';
import { ANONYMOUS_CONSUMER } from '../domain.js';
import { Catalog, EMPTY_DEFINITIONS, governanceLabels } from '../catalog/catalog.js';
import type { CatalogView } from '../catalog/types.js';
import type { Admission, Admitter } from './admission.js';
import { admittedHeaders, headerText } from './headers.js';
import { rejectionFor, sanctionRejection } from './rejection.js';
import { policyBlocker, SanctionCheck, UNSANCTIONED_HEADER, type Unsanctioned } from './sanction.js';
import type { Budget, RequestSubject } from './types.js';

/** A complete request as governance sees it: plain facts, whatever protocol carried them. */
export interface GovernedRequest {
  provider: ProviderName;
  api: ApiKind;
  /** Empty when the request names none. */
  model: string;
  /** The resolved consumer's id; null when no resolver matched. */
  consumerId: string | null;
  /** The client's request id (x-request-id), for the lease key; null when absent. */
  requestId: string | null;
  /** What admission reserves for the prompt and the output; asked only when a budget applies. */
  estimate(): Promise<AdmissionInput | null>;
}

/** What sanction policies and budgets decided for one request. */
export interface GovernorDecision {
  /**
   * Set when an enforce policy or budget refuses: answered as an immediate response (Envoy's
   * `details` names why); nothing goes upstream. `blockedBy` becomes the record's.
   */
  reject: { status: number; headers: Record<string, string>; body: string; blockedBy: string[]; details: string } | null;
  /** Headers added to the response of an admitted request (remaining budget, would-block, unsanctioned). */
  responseHeaders: Record<string, string>;
  /**
   * Budgets with stop_streams: the output (tokens) a streamed response may reach before it is
   * stopped (Envoy resets the client's stream); null when no such budget applies.
   */
  outputCap: { tokens: number; budgets: string[] } | null;
  /** A sanction policy flagged or blocked the model (the record says so). */
  unsanctioned: boolean;
}

/** What was used, once the exchange is recorded. */
export interface ActualUsage {
  usage: Usage;
  /** Null when unpriced (counts 0 against cost limits). */
  costMicroUsd: number | null;
}

/** Sanction policies, budget admission and settlement, as the ext_proc stream uses them. */
export interface ExchangeGovernor {
  /** Decides once the request is complete (inline mode only); null when nothing applies. A promise only when it must wait (a ledger call). */
  admit(req: GovernedRequest): GovernorDecision | null | Promise<GovernorDecision | null>;
  /**
   * Once the request is complete when it cannot be held (observability mode, streamed request
   * body): policies only flag it. True when the model is unsanctioned.
   */
  flag(req: GovernedRequest): boolean;
  /** Settles (or releases) what admit reserved, once the exchange is recorded. Never rejects. */
  finish(decision: GovernorDecision, actual: ActualUsage): Promise<void>;
}

export type DecisionKind = 'admitted' | 'blocked' | 'would_block';
export type SanctionDecisionKind = 'flagged' | 'blocked';

interface BudgetDecision extends GovernorDecision {
  /** Null when no budget was asked (none applies, or a policy refused first). */
  admission: Admission | null;
}

/** No policy and no budget applies: the request goes on unchanged. */
const NOTHING_APPLIES = null;

export interface UnsanctionedEvent {
  provider: string;
  model: string;
  policy: string;
  decision: SanctionDecisionKind;
}

export interface GovernorOptions {
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

  flag(req: GovernedRequest): boolean {
    const found = this.sanction.check(req.consumerId ?? '', req.provider, req.model);
    if (found) this.note(req, found, 'flagged');
    return found !== null;
  }

  /** Synchronous when no budget applies (most traffic): no promise, no microtask, for the answer. */
  admit(req: GovernedRequest): BudgetDecision | null | Promise<BudgetDecision | null> {
    const { provider, model, consumerId } = req;
    const unsanctioned = this.sanction.check(consumerId ?? '', provider, model);
    if (unsanctioned?.mode === 'enforce') {
      this.note(req, unsanctioned, 'blocked');
      // Refused before any budget is asked: nothing is reserved for a request that never goes upstream.
      const r = sanctionRejection(req.api, provider, model, unsanctioned.policy);
      const reject = { ...r, blockedBy: [policyBlocker(unsanctioned.policy)], details: 'tokenwarden_model_not_sanctioned' };
      return { reject, responseHeaders: {}, outputCap: null, unsanctioned: true, admission: null } satisfies BudgetDecision;
    }
    const flagged: Record<string, string> = {};
    if (unsanctioned) {
      this.note(req, unsanctioned, 'flagged');
      flagged[UNSANCTIONED_HEADER] = headerText(unsanctioned.resource);
    }

    const resolved = consumerId === null ? null : this.catalog().consumer(consumerId);
    const subject: RequestSubject = {
      consumer: consumerId ?? ANONYMOUS_CONSUMER,
      labels: resolved === null ? {} : governanceLabels(resolved),
      provider,
      model,
      api: req.api,
    };
    if (resolved !== null && resolved.budgetTemplates.length > 0) subject.templates = resolved.budgetTemplates;
    // Most traffic has no budget: no prompt estimate to wait for, no ledger call.
    const budgets = this.opts.admitter.applicable(subject);
    if (budgets.length === 0) {
      if (!unsanctioned) return NOTHING_APPLIES;
      return { reject: null, responseHeaders: flagged, outputCap: null, unsanctioned: true, admission: null } satisfies BudgetDecision;
    }
    return this.decide(req, subject, budgets, flagged, unsanctioned !== null);
  }

  private async decide(req: GovernedRequest, subject: RequestSubject, budgets: Budget[], flagged: Record<string, string>, unsanctioned: boolean): Promise<BudgetDecision> {
    const input = await req.estimate();
    const now = (this.opts.now ?? Date.now)();
    const admission = await this.opts.admitter.admit(
      {
        // The lease key must be unique per exchange: x-request-id comes from clients and can repeat,
        // and the ledger treats a known key as the same request (idempotent retries).
        requestId: `${req.requestId ?? 'req'}:${randomUUID()}`,
        subject,
        promptTokens: input?.promptTokens ?? 0,
        countPrompt: input?.countPrompt,
        maxOutputTokens: input?.maxOutputTokens ?? null,
        nowMs: now,
      },
      budgets,
    );
    this.report(admission);
    if (!admission.admitted) {
      const r = rejectionFor(req.api, req.provider, admission.blockedBy, now);
      const reject = { ...r, blockedBy: admission.blockedBy.map((b) => b.budget.id), details: 'tokenwarden_budget_exceeded' };
      return { reject, responseHeaders: {}, outputCap: null, unsanctioned, admission } satisfies BudgetDecision;
    }
    const outputCap = outputCapOf(admission, admission.promptTokens);
    const responseHeaders = { ...admittedHeaders(admission, now), ...flagged };
    return { reject: null, responseHeaders, outputCap, unsanctioned, admission } satisfies BudgetDecision;
  }

  finish(decision: BudgetDecision, actual: ActualUsage): Promise<void> {
    return decision.admission === null ? Promise.resolve() : this.opts.admitter.finish(decision.admission, actual);
  }

  private note(req: GovernedRequest, u: Unsanctioned, decision: SanctionDecisionKind): void {
    this.opts.unsanctioned?.({ provider: req.provider, model: req.model, policy: u.policy, decision });
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
