/**
 * Budget admission and settlement: estimate a request, reserve it on every applicable counter in one
 * ledger call, decide, and later replace the reservation with the actual usage. The arithmetic
 * (estimates, items, states) is pure and exported; `Admitter` only adds the ledger I/O and deadline.
 */
import { withDeadline } from '../deadline.js';
import type { Usage } from '../domain.js';
import type { BudgetLedger, CounterWindow, ItemState, LedgerItem, ReserveResult } from './ledger.js';
import type { PolicySet } from './policy-set.js';
import type { Budget, Limit, LimitMetric, RequestSubject } from './types.js';
import { counterKey, ROLLING_SUB_BUCKETS, rollingBucket, windowBounds } from './windows.js';

export interface AdmissionRequest {
  /** Unique per HTTP request: the lease key. */
  requestId: string;
  subject: RequestSubject;
  /** Prompt tokens to reserve: the count, or a ceiling on it (never below it) when `countPrompt` is given. */
  promptTokens: number;
  /**
   * The prompt count, when `promptTokens` is only a ceiling. Asked only when the ceiling does not fit
   * every applicable limit with room to spare, or when the ledger refused it: never refuses a request
   * that fits with its count.
   */
  countPrompt?: () => Promise<number>;
  /** max_tokens / max_completion_tokens / maxTokens when the request gives one. */
  maxOutputTokens: number | null;
  nowMs: number;
}

/** One limit of a budget as the decision saw it. */
export interface LimitState {
  /** Index in `budget.limits` (part of the counter key). */
  index: number;
  limit: Limit;
  counter: string;
  /** Null when the ledger could not be asked (store error). */
  used: number | null;
  reserved: number | null;
  /** max - used - reserved, never below 0; includes this request's reservation when admitted. */
  remaining: number | null;
  /** This limit alone would have refused the request. */
  exceeded: boolean;
  /**
   * When the counter resets: the end of a calendar window; for a rolling window, the time by which
   * everything counted now has rolled out of the ledger's sub-buckets (room may free up earlier).
   */
  resetAtMs: number;
}

export interface BudgetState {
  budget: Budget;
  limits: LimitState[];
  /** False when the ledger could not be asked: figures are unknown. */
  known: boolean;
}

/** The decision and what settlement needs later. */
export interface Admission {
  /** The lease key of the reservation (the request's, with a suffix when retried with the prompt count). */
  requestId: string;
  /** Prompt tokens in the reservation: the count, or the ceiling on it. */
  promptTokens: number;
  admitted: boolean;
  /** Enforce budgets that refused (empty when admitted). */
  blockedBy: BudgetState[];
  /** Monitor budgets that would have refused. */
  wouldBlock: BudgetState[];
  /** Tightest applicable budget (least remaining share), for response headers; null when unknown. */
  tightest: BudgetState | null;
  /** Every applicable budget as the decision saw it (figures unknown after a store error). */
  states: BudgetState[];
  /** Ids of the applicable budgets. */
  budgets: string[];
  /** The items of the reservation (held only when admitted). */
  items: LedgerItem[];
  /** What each item counts (same order as `items`): settlement takes these amounts of the usage. */
  metrics: LimitMetric[];
  /** A cost limit applies but the model has no price: it counted 0 towards cost limits. */
  unpriced: boolean;
  /** The ledger was unreachable or too slow: decided by each budget's on_store_error. */
  storeError: boolean;
}

export type PriceFn = (provider: string, model: string, usage: Usage) => number | null;

export interface StoreErrorEvent {
  op: 'reserve' | 'settle' | 'release';
  requestId: string;
  error: unknown;
  /** For reserve: what on_store_error decided. */
  admitted?: boolean;
}

export interface AdmitterDeps {
  /** Read per decision, so a hot reload applies to the next request. */
  policies: () => PolicySet;
  ledger: BudgetLedger;
  /** Micro-dollars, null when unpriced. */
  price: PriceFn;
  /** Expected output when the request sets no maximum. */
  defaultMaxOutputTokens: number | ((provider: string, model: string) => number);
  leaseMs: number;
  /** Deadline for one ledger call; keep it well under Envoy's ext_proc message timeout. */
  ledgerTimeoutMs: number;
  /** Called for every failed or timed-out ledger call (count and log it). */
  onStoreError?: (event: StoreErrorEvent) => void;
}

/** Per-metric amounts of one request (integers >= 0). */
export type Amounts = Record<LimitMetric, number>;

const FAILED_STORE_CALL = Symbol('failed');

function whole(n: number | null | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}

/** Usage counted before the call: the prompt, and the most output the request allows. */
export function estimatedUsage(promptTokens: number, outputTokens: number): Usage {
  const input = whole(promptTokens);
  const output = whole(outputTokens);
  return {
    input_tokens: input,
    output_tokens: output,
    total_tokens: input + output,
    cached_input_tokens: null,
    cache_write_tokens: null,
    reasoning_tokens: null,
  };
}

/** Amounts of a usage; an unknown cost counts 0 (the caller flags it). */
export function amountsOf(usage: Usage, costMicroUsd: number | null): Amounts {
  const input = whole(usage.input_tokens);
  const output = whole(usage.output_tokens);
  return {
    input_tokens: input,
    output_tokens: output,
    total_tokens: usage.total_tokens == null ? input + output : whole(usage.total_tokens),
    cost_micro_usd: whole(costMicroUsd),
    requests: 1,
  };
}

/** A failed upstream call that reported and produced nothing: release, do not settle. */
function hasUsage(usage: Usage): boolean {
  return usage.input_tokens != null || usage.output_tokens != null || usage.total_tokens != null;
}

/** One applicable limit: where its counter is and when it resets. */
interface Slot {
  budget: Budget;
  index: number;
  item: LedgerItem;
  resetAtMs: number;
}

/** One ledger item per (budget, limit), windows in the counter key. */
export function slotsFor(budgets: readonly Budget[], amounts: Amounts, nowMs: number): Slot[] {
  return budgets.flatMap((budget) =>
    budget.limits.map((limit, index): Slot => {
      const item: LedgerItem = {
        counter: counterKey(budget.id, index, limit.window, nowMs),
        budgetId: budget.id,
        max: limit.max,
        amount: amounts[limit.metric],
        enforce: budget.mode === 'enforce',
      };
      let resetAtMs: number;
      if (limit.window.kind === 'rolling') {
        item.rollingMs = limit.window.seconds * 1000;
        // Amounts counted now sit in sub-buckets up to the current one, which counts until the
        // ROLLING_SUB_BUCKETS sub-buckets after it have passed: then the whole window is free again.
        const bucket = rollingBucket(item.rollingMs, nowMs);
        resetAtMs = bucket.end + ROLLING_SUB_BUCKETS * bucket.sizeMs;
      } else {
        item.windowEndMs = windowBounds(limit.window, nowMs).end;
        resetAtMs = item.windowEndMs;
      }
      return { budget, index, item, resetAtMs };
    }),
  );
}

/** Budget states from the ledger's answer (null answer = store error: figures unknown). */
export function statesOf(slots: readonly Slot[], result: ReserveResult | null): BudgetState[] {
  const byCounter = new Map<string, ItemState>((result?.items ?? []).map((s) => [s.counter, s]));
  const states = new Map<Budget, BudgetState>();
  for (const slot of slots) {
    let state = states.get(slot.budget);
    if (state === undefined) {
      state = { budget: slot.budget, limits: [], known: result !== null };
      states.set(slot.budget, state);
    }
    const seen = byCounter.get(slot.item.counter);
    state.limits.push({
      index: slot.index,
      limit: slot.budget.limits[slot.index]!,
      counter: slot.item.counter,
      used: seen?.used ?? null,
      reserved: seen?.reserved ?? null,
      remaining: seen === undefined ? null : Math.max(0, seen.max - seen.used - seen.reserved),
      exceeded: seen?.exceeded ?? false,
      resetAtMs: slot.resetAtMs,
    });
  }
  return [...states.values()];
}

/** Share of the limit still available (0..1); unknown figures rank last. */
export function remainingShare(state: BudgetState): number {
  let share = Infinity;
  for (const l of state.limits) {
    if (l.remaining === null) continue;
    share = Math.min(share, l.limit.max > 0 ? l.remaining / l.limit.max : 0);
  }
  return share;
}

/** The budget with the least remaining share (the first one on ties), or null when none is known. */
export function tightestOf(states: readonly BudgetState[]): BudgetState | null {
  let best: BudgetState | null = null;
  let bestShare = Infinity;
  for (const state of states) {
    const share = remainingShare(state);
    if (share < bestShare) {
      best = state;
      bestShare = share;
    }
  }
  return best;
}

const anyExceeded = (s: BudgetState): boolean => s.limits.some((l) => l.exceeded);

const raisedByPrompt = (slot: Slot): boolean => PROMPT_METRICS.has(slot.budget.limits[slot.index]!.metric) && slot.item.amount > 0;

/** The ledger's rule: an amount fits when used + reserved + amount <= max. */
const exceeds = (state: ItemState, item: LedgerItem): boolean => state.used + state.reserved + item.amount > item.max;

/** Resolves to the call's value, or FAILED_STORE_CALL (after reporting) on error, a throw or the deadline. */
async function ledgerCall<T>(call: () => Promise<T>, ms: number, report: (error: unknown) => void): Promise<T | typeof FAILED_STORE_CALL> {
  try {
    return await withDeadline(call(), ms, 'budget ledger did not answer');
  } catch (error) {
    report(error);
    return FAILED_STORE_CALL;
  }
}

/** The items of one reservation and what they count. */
interface Plan {
  /** Ids of the applicable budgets. */
  budgets: string[];
  promptTokens: number;
  slots: Slot[];
  items: LedgerItem[];
  metrics: LimitMetric[];
  unpriced: boolean;
}

/** Metrics whose amount grows with the prompt (cost through the input price). */
const PROMPT_METRICS: ReadonlySet<LimitMetric> = new Set(['input_tokens', 'total_tokens', 'cost_micro_usd']);

/** A counter as the ledger last answered for it. */
interface SeenCounter {
  used: number;
  reserved: number;
  atMs: number;
}

/** How long a ledger answer is trusted to show room for a ceiling reservation. */
export const SEEN_FRESH_MS = 1000;
/** Counters remembered; the memory is cleared when full (it only saves prompt counts). */
const SEEN_MAX = 10_000;

export class Admitter {
  private readonly seen = new Map<string, SeenCounter>();

  constructor(private readonly deps: AdmitterDeps) {}

  /** The budgets in force that apply to `subject`: what admit reserves on, when not given them. */
  applicable(subject: RequestSubject): Budget[] {
    return this.deps.policies().applicable(subject);
  }

  /**
   * Never rejects on ledger failures: an error or a missed deadline decides by each enforce
   * budget's on_store_error (reported through onStoreError). Policies and prices are pure lookups.
   *
   * With a prompt ceiling (`countPrompt` given), the ceiling is reserved when every counter it
   * raises was seen within SEEN_FRESH_MS and stays at most half full with it; otherwise the prompt
   * is counted first. A refused ceiling is counted and, when the count fits what the ledger
   * answered, reserved once more under a fresh lease key.
   */
  async admit(req: AdmissionRequest, budgets: readonly Budget[] = this.applicable(req.subject)): Promise<Admission> {
    const { subject, nowMs } = req;
    if (budgets.length === 0) {
      return {
        requestId: req.requestId, promptTokens: req.promptTokens, budgets: [], unpriced: false, storeError: false,
        admitted: true, blockedBy: [], wouldBlock: [], tightest: null, states: [], items: [], metrics: [],
      };
    }
    const output = req.maxOutputTokens ?? this.defaultOutput(subject);
    let plan = this.plan(budgets, subject, req.promptTokens, output, nowMs);
    const countPrompt = plan.slots.some(raisedByPrompt) ? req.countPrompt : undefined;
    if (countPrompt === undefined || this.needsCount(plan, nowMs)) {
      if (countPrompt !== undefined) plan = this.plan(budgets, subject, await countPrompt(), output, nowMs);
      return (await this.reserve(req, req.requestId, plan)).admission;
    }
    const first = await this.reserve(req, req.requestId, plan);
    if (first.admission.admitted || first.result === null) return first.admission;
    const counted = this.plan(budgets, subject, await countPrompt(), output, nowMs);
    if (counted.promptTokens >= plan.promptTokens) return first.admission;
    // The ledger's answer shows whether the count fits: only then is a second call worth making.
    const answered = new Map(first.result.items.map((s) => [s.counter, s]));
    const stillExceeds = (item: LedgerItem): boolean => {
      const state = answered.get(item.counter);
      return state !== undefined && exceeds(state, item);
    };
    if (!counted.items.some((item) => item.enforce && stillExceeds(item))) {
      return (await this.reserve(req, `${req.requestId}:counted`, counted)).admission;
    }
    const items = counted.items.flatMap((item) => {
      const state = answered.get(item.counter);
      return state === undefined ? [] : [{ ...state, exceeded: exceeds(state, item) }];
    });
    return this.decided(req.requestId, counted, { admitted: false, items });
  }

  private plan(budgets: readonly Budget[], subject: RequestSubject, promptTokens: number, output: number, nowMs: number): Plan {
    const usage = estimatedUsage(promptTokens, output);
    const needsCost = budgets.some((b) => b.limits.some((l) => l.metric === 'cost_micro_usd'));
    const cost = needsCost ? this.price(subject, usage) : null;
    const slots = slotsFor(budgets, amountsOf(usage, cost), nowMs);
    return {
      budgets: budgets.map((b) => b.id),
      promptTokens: usage.input_tokens ?? 0,
      slots,
      items: slots.map((s) => s.item),
      metrics: slots.map((s) => s.budget.limits[s.index]!.metric),
      unpriced: needsCost && cost === null,
    };
  }

  /**
   * Whether the ceiling is too close to a limit to reserve without the count. A counter past half
   * its limit is counted for, as before ceilings: near a limit, ceilings in flight on several
   * sidecars would take room that requests fitting with their count need. An enforce counter not
   * seen lately is counted for too (a refused ceiling costs a second ledger call); a monitor counter
   * only when seen past half (no refusal depends on it, but its would-block report should not count
   * requests that fit).
   */
  private needsCount(plan: Plan, nowMs: number): boolean {
    return plan.slots.some((slot) => {
      if (!raisedByPrompt(slot)) return false;
      const { item } = slot;
      const seen = this.seen.get(item.counter);
      if (seen === undefined || nowMs - seen.atMs >= SEEN_FRESH_MS || nowMs < seen.atMs) return item.enforce;
      return 2 * (seen.used + seen.reserved + item.amount) > item.max;
    });
  }

  /** One ledger call for `plan`, decided; `result` is null after a store error. */
  private async reserve(req: AdmissionRequest, leaseId: string, plan: Plan): Promise<{ admission: Admission; result: ReserveResult | null }> {
    const { items } = plan;
    // Concurrent decisions of this process see the reservation before the ledger answers.
    for (const item of items) {
      const seen = this.seen.get(item.counter);
      if (seen !== undefined) seen.reserved += item.amount;
    }
    const reserve = Promise.resolve().then(() =>
      this.deps.ledger.reserve({ requestId: leaseId, leaseMs: this.deps.leaseMs, items, consumer: req.subject.consumer, nowMs: req.nowMs }),
    );
    let failure: unknown;
    const result = await ledgerCall(() => reserve, this.deps.ledgerTimeoutMs, (e) => (failure = e));

    if (result === FAILED_STORE_CALL) {
      const states = statesOf(plan.slots, null);
      const blockedBy = states.filter((s) => s.budget.mode === 'enforce' && s.budget.onStoreError === 'closed');
      const admitted = blockedBy.length === 0;
      this.deps.onStoreError?.({ op: 'reserve', requestId: leaseId, error: failure, admitted });
      // A reservation that lands after the deadline must not hold budget for a refused request. A
      // failed call may have run all the same (the reply was lost or too late): release it too.
      if (!admitted) {
        void reserve
          .then((r) => r.admitted, () => true)
          .then((held) => (held ? this.deps.ledger.release(leaseId) : undefined))
          .catch(() => {});
      }
      const admission: Admission = {
        requestId: leaseId, promptTokens: plan.promptTokens, budgets: plan.budgets, unpriced: plan.unpriced, storeError: true,
        admitted, blockedBy, wouldBlock: [], tightest: null, states, items, metrics: plan.metrics,
      };
      return { admission, result: null };
    }
    this.remember(result, req.nowMs);
    return { admission: this.decided(leaseId, plan, result), result };
  }

  private decided(leaseId: string, plan: Plan, result: ReserveResult): Admission {
    const states = statesOf(plan.slots, result);
    return {
      requestId: leaseId,
      promptTokens: plan.promptTokens,
      budgets: plan.budgets,
      unpriced: plan.unpriced,
      storeError: false,
      admitted: result.admitted,
      blockedBy: result.admitted ? [] : states.filter((s) => s.budget.mode === 'enforce' && anyExceeded(s)),
      wouldBlock: states.filter((s) => s.budget.mode === 'monitor' && anyExceeded(s)),
      tightest: tightestOf(states),
      states,
      items: plan.items,
      metrics: plan.metrics,
    };
  }

  private remember(result: ReserveResult, atMs: number): void {
    if (this.seen.size + result.items.length > SEEN_MAX) this.seen.clear();
    for (const s of result.items) this.seen.set(s.counter, { used: s.used, reserved: s.reserved, atMs });
  }

  /**
   * The one place that decides between settling and releasing, once the exchange is recorded:
   * usage reported or estimated settles it; none at all (failed upstream call, cancelled before
   * any usage) gives the reservation back.
   */
  finish(admission: Admission, actual: { usage: Usage; costMicroUsd: number | null }): Promise<void> {
    return hasUsage(actual.usage) ? this.settle(admission, actual) : this.release(admission);
  }

  /**
   * Replaces the reservation with the actual amounts (reported usage, or estimated by the caller;
   * an unknown cost counts 0). Also settles after a store error: a reservation that landed late is
   * then settled, not leaked.
   */
  async settle(admission: Admission, actual: { usage: Usage; costMicroUsd: number | null }): Promise<void> {
    if (!admission.admitted || admission.items.length === 0) return;
    const amounts = amountsOf(actual.usage, actual.costMicroUsd);
    const perCounter: Record<string, number> = {};
    const windows: Record<string, CounterWindow> = {};
    admission.items.forEach((item, i) => {
      perCounter[item.counter] = amounts[admission.metrics[i]!];
      windows[item.counter] = { windowEndMs: item.windowEndMs, rollingMs: item.rollingMs };
    });
    await this.call('settle', admission.requestId, () =>
      this.deps.ledger.settle({ requestId: admission.requestId, actual: perCounter, windows }),
    );
  }

  /** Drops the reservation without usage (failed upstream call, request cancelled before sending). */
  async release(admission: Admission): Promise<void> {
    if (!admission.admitted || admission.items.length === 0) return;
    await this.call('release', admission.requestId, () => this.deps.ledger.release(admission.requestId));
  }

  private async call(op: 'settle' | 'release', requestId: string, fn: () => Promise<void>): Promise<void> {
    await ledgerCall(fn, this.deps.ledgerTimeoutMs, (error) => this.deps.onStoreError?.({ op, requestId, error }));
  }

  private defaultOutput(subject: RequestSubject): number {
    const d = this.deps.defaultMaxOutputTokens;
    return typeof d === 'function' ? d(subject.provider, subject.model) : d;
  }

  private price(subject: RequestSubject, usage: Usage): number | null {
    try {
      const micro = this.deps.price(subject.provider, subject.model, usage);
      return typeof micro === 'number' && Number.isFinite(micro) ? micro : null;
    } catch {
      return null;
    }
  }
}
