/**
 * Budget headers. Admitted responses carry `x-tokenwarden-*` headers for the tightest applicable
 * budget (never `x-ratelimit-*`: the provider's own rate-limit headers on the same response must
 * reach the client untouched). tokenwarden's own 429 answers use the `x-ratelimit-*` names clients
 * already read. All figures are as of the admission decision.
 */
import type { Admission, BudgetState, LimitState } from './admission.js';
import type { LimitMetric } from './types.js';

export const BUDGET_HEADER = 'x-tokenwarden-budget';
export const WOULD_BLOCK_HEADER = 'x-tokenwarden-would-block';
export const ADMITTED_PREFIX = 'x-tokenwarden-';
export const REJECTED_PREFIX = 'x-ratelimit-';

/** Header name suffix per metric: `tokens` is total tokens, `usd` is dollars (decimal). */
const SUFFIX: Record<LimitMetric, string> = {
  input_tokens: 'input-tokens',
  output_tokens: 'output-tokens',
  total_tokens: 'tokens',
  cost_micro_usd: 'usd',
  requests: 'requests',
};

/** Header-safe text: visible ASCII only (budget ids come from configuration and the admin API). */
export function headerText(value: string): string {
  return value.replace(/[^\x21-\x7e]/g, '_');
}

/** Whole seconds until `atMs`, at least 1 (a client retrying sooner would be refused again). */
export function secondsUntil(atMs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((atMs - nowMs) / 1000));
}

/** Micro-dollars as a USD decimal without trailing zeros ("12.5", "0.000001"). */
export function usd(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(micro));
  const fraction = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '');
  return `${sign}${Math.floor(abs / 1_000_000)}${fraction === '' ? '' : `.${fraction}`}`;
}

function figure(metric: LimitMetric, n: number): string {
  return metric === 'cost_micro_usd' ? usd(n) : String(n);
}

/** Least remaining share first (unknown last), then the later reset: the limit a client hits. */
function tighter(a: LimitState, b: LimitState): boolean {
  const share = (l: LimitState): number => (l.remaining === null ? Infinity : l.limit.max > 0 ? l.remaining / l.limit.max : 0);
  return share(a) < share(b) || (share(a) === share(b) && a.resetAtMs > b.resetAtMs);
}

/**
 * `<prefix>limit-<metric>`, `<prefix>remaining-<metric>` (when known) and `<prefix>reset-<metric>`
 * (seconds) per metric; when several limits count one metric (tokens per minute and per day), the
 * tightest one is shown.
 */
export function limitHeaders(prefix: string, limits: readonly LimitState[], nowMs: number): Record<string, string> {
  const shown = new Map<string, LimitState>();
  for (const l of limits) {
    const suffix = SUFFIX[l.limit.metric];
    const current = shown.get(suffix);
    if (current === undefined || tighter(l, current)) shown.set(suffix, l);
  }
  const headers: Record<string, string> = {};
  for (const [suffix, l] of shown) {
    headers[`${prefix}limit-${suffix}`] = figure(l.limit.metric, l.limit.max);
    if (l.remaining !== null) headers[`${prefix}remaining-${suffix}`] = figure(l.limit.metric, l.remaining);
    headers[`${prefix}reset-${suffix}`] = String(secondsUntil(l.resetAtMs, nowMs));
  }
  return headers;
}

/** Headers of one budget's state (the budget id and its limits). */
export function budgetHeaders(prefix: string, state: BudgetState, nowMs: number): Record<string, string> {
  return { [BUDGET_HEADER]: headerText(state.budget.id), ...limitHeaders(prefix, state.limits, nowMs) };
}

/**
 * Headers for an admitted response: the remaining budget of the tightest applicable budget, and
 * the monitor budgets that would have refused the request. Empty when no budget applies.
 */
export function admittedHeaders(admission: Admission, nowMs: number): Record<string, string> {
  const headers = admission.tightest === null ? {} : budgetHeaders(ADMITTED_PREFIX, admission.tightest, nowMs);
  if (admission.wouldBlock.length > 0) {
    headers[WOULD_BLOCK_HEADER] = admission.wouldBlock.map((s) => headerText(s.budget.id)).join(',');
  }
  return headers;
}
