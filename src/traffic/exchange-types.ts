/** The contracts of an Exchange: what it is given (recognition, tokenizer, prices, config) and what it answers. */
import type { LimitsConfig, MeteringConfig } from '../config/types.js';
import type { ConsumerIdentity, Usage } from '../domain.js';
import type { RequestHead, Route } from './types.js';

export interface TokenEstimate {
  tokens: number;
  method: 'exact' | 'bound';
}

/** Counts tokens of text (tiktoken in a worker, or a cheap bound). */
export interface TokenEstimator {
  /** Never rejects; adds `extraTokens` (fixed allowances such as images) to the count. */
  count(texts: string[], provider: string, model: string | null, extraTokens?: number): Promise<TokenEstimate>;
  /**
   * At once: a number never below what `count` answers for the same call, or null when `count`
   * answers without tokenising anyway. Without it, admission waits for `count`.
   */
  ceiling?(texts: string[], provider: string, model: string | null, extraTokens?: number): number | null;
}

/** Prices usage; null means unpriced (unknown price), never a silent 0. */
export interface CostCalculator {
  cost(provider: string, models: (string | null)[], usage: Usage): { microUsd: number } | null;
}

export interface ExchangeDeps {
  recognize(head: RequestHead): Route | null;
  resolveConsumer(headers: ReadonlyMap<string, string>, attributes: ReadonlyMap<string, string>): ConsumerIdentity | null;
  tokens: TokenEstimator;
  prices: CostCalculator;
  metering: MeteringConfig;
  limits: LimitsConfig;
  now?: () => number;
  /** Monotonic milliseconds for latencies (performance.now by default). */
  clock?: () => number;
}

/** The request as budget admission sees it (see AdmissionRequest). */
export interface AdmissionInput {
  promptTokens: number;
  /** Present when promptTokens is a ceiling: the count. */
  countPrompt?: () => Promise<number>;
  maxOutputTokens: number | null;
}

/** What the ext_proc layer should do with the request body. */
export interface RequestBodyRewrite {
  body: Buffer;
  /** Set content-length to this value (only when the request carried one). */
  contentLength: number | null;
  /** Extra request headers to set (e.g. accept-encoding: identity so the usage chunk can be hidden). */
  setHeaders: Record<string, string>;
}
