/** The 429 answers: each API's own error format, retry-after at the window reset, budget headers. */
import { describe, expect, it } from 'vitest';
import type { ApiKind } from '../../src/domain.js';
import type { BudgetState, LimitState } from '../../src/governance/admission.js';
import { admittedHeaders, usd } from '../../src/governance/headers.js';
import { rejectionFor } from '../../src/governance/rejection.js';
import type { Budget, Limit } from '../../src/governance/types.js';

const T0 = Date.UTC(2025, 0, 31, 22, 0, 0);
const DAY_PARIS: Limit['window'] = { kind: 'day', timezone: 'Europe/Paris', weekStart: 1 };

function budget(id: string, limits: Limit[], mode: Budget['mode'] = 'enforce'): Budget {
  return { id, selector: {}, limits, mode, onStoreError: 'open', stopStreams: false, source: 'config' };
}

function limitState(limit: Limit, index: number, used: number, resetAtMs: number, exceeded = true): LimitState {
  return { index, limit, counter: `c${index}`, used, reserved: 0, remaining: Math.max(0, limit.max - used), exceeded, resetAtMs };
}

const tokensPerDay: Limit = { metric: 'total_tokens', max: 1000, window: DAY_PARIS };
const dailyTokens: BudgetState = {
  budget: budget('team-a', [tokensPerDay]),
  limits: [limitState(tokensPerDay, 0, 990, T0 + 3_600_000)],
  known: true,
};

/** Every API kind, with the body it must produce (message checked apart). */
const FORMATS: [ApiKind, (b: any) => void][] = [
  ...(['chat_completions', 'responses', 'embeddings'] as const).map((api): [ApiKind, (b: any) => void] => [
    api,
    (b) => {
      expect(Object.keys(b)).toEqual(['error']);
      expect(b.error).toEqual({ message: expect.any(String), type: 'insufficient_quota', param: null, code: 'budget_exceeded' });
    },
  ]),
  ['messages', (b) => expect(b).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: expect.any(String) } })],
  ...(['converse', 'converse_stream', 'invoke', 'invoke_with_response_stream'] as const).map((api): [ApiKind, (b: any) => void] => [
    api,
    (b) => expect(b).toEqual({ message: expect.any(String) }),
  ]),
  ...(['generate_content', 'stream_generate_content'] as const).map((api): [ApiKind, (b: any) => void] => [
    api,
    (b) => expect(b).toEqual({ error: { code: 429, message: expect.any(String), status: 'RESOURCE_EXHAUSTED' } }),
  ]),
  ['cohere_chat', (b) => expect(b).toEqual({ message: expect.any(String) })],
  ['ollama_chat', (b) => expect(b).toEqual({ error: expect.any(String) })],
];

function messageOf(body: any): string {
  return typeof body.error === 'string' ? body.error : (body.error?.message ?? body.message);
}

describe('rejectionFor', () => {
  it.each(FORMATS)('answers %s in its provider format', (api, check) => {
    const r = rejectionFor(api, 'openai', [dailyTokens], T0);
    expect(r.status).toBe(429);
    expect(r.headers['content-type']).toBe('application/json');
    const body = JSON.parse(r.body);
    check(body);
    const message = messageOf(body);
    expect(message).toContain('"team-a"');
    expect(message).toContain('1000 tokens per day (Europe/Paris)');
    expect(message).toContain(new Date(T0 + 3_600_000).toISOString());
  });

  it('marks Bedrock answers as throttling for the AWS SDKs', () => {
    expect(rejectionFor('converse', 'aws_bedrock', [dailyTokens], T0).headers['x-amzn-errortype']).toBe('ThrottlingException');
    expect(rejectionFor('chat_completions', 'openai', [dailyTokens], T0).headers['x-amzn-errortype']).toBeUndefined();
  });

  it('says which budget, what remains and when it resets', () => {
    const r = rejectionFor('chat_completions', 'openai', [dailyTokens], T0 + 400);
    expect(r.headers).toMatchObject({
      'retry-after': '3600',
      'x-tokenwarden-budget': 'team-a',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '10',
      'x-ratelimit-reset-tokens': '3600',
    });
  });

  it('retries after the latest reset when several nested budgets refuse', () => {
    const dollars: Limit = { metric: 'cost_micro_usd', max: 500_000_000, window: { kind: 'month', timezone: 'UTC', weekStart: 1 } };
    const org: BudgetState = {
      budget: budget('org', [dollars, tokensPerDay]),
      // Only the exceeded limit (money, month end) keeps the budget closed.
      limits: [limitState(dollars, 0, 499_999_999, T0 + 7_200_000), limitState(tokensPerDay, 1, 10, T0 + 3_600_000, false)],
      known: true,
    };
    const r = rejectionFor('messages', 'anthropic', [dailyTokens, org], T0);
    expect(r.headers['retry-after']).toBe('7200');
    expect(r.headers['x-tokenwarden-budget']).toBe('team-a,org');
    expect(r.headers['x-ratelimit-limit-usd']).toBe('500');
    expect(r.headers['x-ratelimit-remaining-usd']).toBe('0.000001');
    // The tokens header shows the exceeded team limit, not org's roomy one.
    expect(r.headers['x-ratelimit-remaining-tokens']).toBe('10');
    const message = messageOf(JSON.parse(r.body));
    expect(message).toContain('"team-a"');
    expect(message).toContain('"org" is exhausted: $500 per month (UTC)');
  });

  it('reads per-minute and rolling limits as rate limits, longer windows as quota', () => {
    const tpm: Limit = { metric: 'total_tokens', max: 100, window: { kind: 'rolling', seconds: 60 } };
    const rpm: Limit = { metric: 'requests', max: 10, window: { kind: 'minute', timezone: 'UTC', weekStart: 1 } };
    const rate: BudgetState = { budget: budget('tpm', [tpm, rpm]), limits: [limitState(tpm, 0, 100, T0 + 70_000), limitState(rpm, 1, 10, T0 + 60_000)], known: true };
    const type = (states: BudgetState[]): string => JSON.parse(rejectionFor('chat_completions', 'openai', states, T0).body).error.type;
    expect(type([rate])).toBe('rate_limit_exceeded');
    expect(type([rate, dailyTokens])).toBe('insufficient_quota');
    expect(rejectionFor('chat_completions', 'openai', [rate], T0).headers['retry-after']).toBe('70');
  });

  it('asks for a quick retry when a fail-closed budget could not be checked', () => {
    const unknown: BudgetState = {
      budget: { ...budget('strict', [tokensPerDay]), onStoreError: 'closed' },
      limits: [{ ...limitState(tokensPerDay, 0, 0, T0 + 3_600_000, false), used: null, reserved: null, remaining: null }],
      known: false,
    };
    const r = rejectionFor('generate_content', 'gcp_gemini', [unknown], T0);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.headers['x-tokenwarden-budget']).toBe('strict');
    expect(Object.keys(r.headers).filter((h) => h.startsWith('x-ratelimit-'))).toEqual([]);
    expect(JSON.parse(r.body).error.message).toContain('"strict" could not be checked (budget store unavailable');
  });

  it('keeps header values printable whatever the budget id', () => {
    const odd: BudgetState = { ...dailyTokens, budget: budget('team a\r\nx-injected: 1', [tokensPerDay]) };
    const r = rejectionFor('chat_completions', 'openai', [odd], T0);
    expect(r.headers['x-tokenwarden-budget']).toBe('team_a__x-injected:_1');
    expect(JSON.parse(r.body).error.message).toContain('"team a\\r\\nx-injected: 1"');
  });
});

describe('admitted response headers', () => {
  const cost: Limit = { metric: 'cost_micro_usd', max: 2_500_000, window: DAY_PARIS };
  const admission = (wouldBlock: BudgetState[]) => ({
    requestId: 'r1',
    promptTokens: 0,
    admitted: true,
    blockedBy: [],
    wouldBlock,
    tightest: { budget: budget('app', [tokensPerDay, cost]), limits: [limitState(tokensPerDay, 0, 400, T0 + 3_600_000, false), limitState(cost, 1, 1_250_000, T0 + 3_600_000, false)], known: true },
    budgets: ['app'],
    states: [],
    items: [],
    metrics: [],
    unpriced: false,
    storeError: false,
  });

  it('shows the remaining tokens and dollars of the tightest budget without touching x-ratelimit-*', () => {
    const h = admittedHeaders(admission([]), T0);
    expect(h).toEqual({
      'x-tokenwarden-budget': 'app',
      'x-tokenwarden-limit-tokens': '1000',
      'x-tokenwarden-remaining-tokens': '600',
      'x-tokenwarden-reset-tokens': '3600',
      'x-tokenwarden-limit-usd': '2.5',
      'x-tokenwarden-remaining-usd': '1.25',
      'x-tokenwarden-reset-usd': '3600',
    });
  });

  it('names the monitor budgets that would have refused', () => {
    const monitor: BudgetState = { ...dailyTokens, budget: budget('org-watch', [tokensPerDay], 'monitor') };
    expect(admittedHeaders(admission([monitor, { ...monitor, budget: budget('m2', [], 'monitor') }]), T0)['x-tokenwarden-would-block']).toBe('org-watch,m2');
    expect(admittedHeaders(admission([]), T0)['x-tokenwarden-would-block']).toBeUndefined();
  });

  it('formats micro-dollars as exact decimals', () => {
    expect([usd(0), usd(1), usd(1_000_000), usd(12_345_678), usd(500_000)]).toEqual(['0', '0.000001', '1', '12.345678', '0.5']);
  });
});
