/**
 * tokenwarden's own answers to requests it refuses, in the error format of the API the client called
 * so its SDK raises its usual error: 429 for an enforce budget (rate-limit error, honouring
 * `retry-after`; the message names the budgets, their limits and when they reset), 403 for a model an
 * enforce sanction policy does not allow (permission error naming the model and the policy). Never
 * prompt text or keys. This file decides what to say; how the error looks is the API handler's
 * (`errors`, from traffic/providers/errors.ts).
 */
import type { ApiKind } from '../domain.js';
import { HANDLERS } from '../traffic/providers/index.js';
import { NOT_SANCTIONED_CODE, OPENAI_ERRORS } from '../traffic/providers/errors.js';
import type { ErrorFormat as ApiErrorFormat, ErrorFormatName, RefusalKind } from '../traffic/types.js';
import type { BudgetState, LimitState } from './admission.js';
import { BUDGET_HEADER, headerText, limitHeaders, REJECTED_PREFIX, secondsUntil, usd } from './headers.js';
import { POLICY_HEADER, UNSANCTIONED_HEADER } from './sanction.js';
import type { Limit } from './types.js';

export interface Rejection {
  status: 429 | 403;
  headers: Record<string, string>;
  body: string;
}

/** The error format families; chosen by the API (the client's SDK), not by the provider behind it. */
export type { ErrorFormatName as ErrorFormat } from '../traffic/types.js';

/** The error format of `api`'s handler (OpenAI's for an API without one). */
function formatOf(api: ApiKind): ApiErrorFormat {
  return (HANDLERS[api] as (typeof HANDLERS)[ApiKind] | undefined)?.errors ?? OPENAI_ERRORS;
}

export function errorFormatFor(api: ApiKind): ErrorFormatName {
  return formatOf(api).name;
}

/** Adds the format's error-type header, if it has one. */
function addTypeHeader(headers: Record<string, string>, format: ApiErrorFormat, kind: RefusalKind): void {
  const typeHeader = format.typeHeader?.(kind);
  if (typeHeader) headers[typeHeader[0]] = typeHeader[1];
}

/** When the store could not be asked, nothing says when it comes back: retry soon. */
const STORE_ERROR_RETRY_MS = 1000;

const METRIC_TEXT: Record<Limit['metric'], string> = {
  input_tokens: 'input tokens',
  output_tokens: 'output tokens',
  total_tokens: 'tokens',
  cost_micro_usd: 'USD',
  requests: 'requests',
};

function limitText(l: Limit): string {
  const amount = l.metric === 'cost_micro_usd' ? `$${usd(l.max)}` : `${l.max} ${METRIC_TEXT[l.metric]}`;
  const w = l.window;
  return w.kind === 'rolling' ? `${amount} per rolling ${w.seconds} s` : `${amount} per ${w.kind} (${w.timezone})`;
}

/** The limits that refused: the exceeded ones, or all of them when the store could not say. */
function blockingLimits(state: BudgetState): LimitState[] {
  return state.known ? state.limits.filter((l) => l.exceeded) : state.limits;
}

function resetAt(state: BudgetState, nowMs: number): number {
  if (!state.known) return nowMs + STORE_ERROR_RETRY_MS;
  // Every exceeded limit must have room again before this budget admits.
  return Math.max(nowMs, ...blockingLimits(state).map((l) => l.resetAtMs));
}

function budgetText(state: BudgetState, nowMs: number): string {
  const id = JSON.stringify(state.budget.id);
  if (!state.known) return `budget ${id} could not be checked (budget store unavailable; the budget fails closed)`;
  const limits = blockingLimits(state).map(
    (l) => `${limitText(l.limit)}, resets at ${new Date(l.resetAtMs).toISOString()} (in ${secondsUntil(l.resetAtMs, nowMs)} s)`,
  );
  return `budget ${id} is exhausted: ${limits.join('; ')}`;
}

/** Rate windows (per minute, rolling) read as rate limits; longer windows and money as quota. */
function isRateLimit(blocked: readonly BudgetState[]): boolean {
  return blocked.every(
    (s) => !s.known || blockingLimits(s).every((l) => l.limit.window.kind === 'rolling' || l.limit.window.kind === 'minute'),
  );
}

/**
 * The 429 for `blocked` (the enforce budgets that refused). `retry-after` is the time until every
 * blocking budget has room again: the latest reset of their exceeded windows (for a rolling window,
 * when everything counted now has rolled out).
 */
export function rejectionFor(api: ApiKind, provider: string, blocked: readonly BudgetState[], nowMs: number): Rejection {
  const format = formatOf(api);
  const retryAtMs = blocked.length === 0 ? nowMs : Math.max(...blocked.map((s) => resetAt(s, nowMs)));
  const reasons = blocked.length === 0 ? 'a budget is exhausted' : blocked.map((s) => budgetText(s, nowMs)).join('; ');
  const message = `tokenwarden refused this request to ${provider}: ${reasons}.`;

  const headers: Record<string, string> = {
    'content-type': 'application/json',
    ...limitHeaders(REJECTED_PREFIX, blocked.filter((s) => s.known).flatMap(blockingLimits), nowMs),
    'retry-after': String(secondsUntil(retryAtMs, nowMs)),
  };
  if (blocked.length > 0) headers[BUDGET_HEADER] = blocked.map((s) => headerText(s.budget.id)).join(',');
  const kind: RefusalKind = isRateLimit(blocked) ? 'rate_limit' : 'quota';
  addTypeHeader(headers, format, kind);
  return { status: 429, headers, body: JSON.stringify(format.body(kind, message)) };
}

export { NOT_SANCTIONED_CODE };

/** The 403 for a request an enforce sanction policy refused: `model` at `provider` is not sanctioned. */
export function sanctionRejection(api: ApiKind, provider: string, model: string, policy: string): Rejection {
  const format = formatOf(api);
  const resource = `${provider}/${model}`;
  const message =
    `tokenwarden refused this request: model ${JSON.stringify(model)} at ${provider} is not sanctioned ` +
    `(${NOT_SANCTIONED_CODE}, policy ${JSON.stringify(policy)}); ask your platform team to sanction ${JSON.stringify(resource)} or allow it in the policy.`;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    [UNSANCTIONED_HEADER]: headerText(resource),
    [POLICY_HEADER]: headerText(policy),
  };
  addTypeHeader(headers, format, 'forbidden');
  return { status: 403, headers, body: JSON.stringify(format.body('forbidden', message)) };
}
