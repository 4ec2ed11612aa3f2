/** The outcome of one observed exchange: what every consumer of tokenwarden's data sees. */
import type { ApiKind, ExchangeErrorCode, ProviderName, Usage } from './types.js';

export type ConsumerResolverKind = 'header' | 'xfcc' | 'attribute' | 'api_key';

export interface ConsumerIdentity {
  id: string;
  resolver: ConsumerResolverKind;
}

/** reported: the provider's own numbers; estimated: counted by tokenwarden; none: nothing known. */
export type UsageSource = 'reported' | 'estimated' | 'none';

/** complete: the response ended normally; aborted: the stream ended before the response did. */
export type ExchangeCompletion = 'complete' | 'aborted';

export interface ExchangeRecord {
  requestId: string | null;
  startedAt: number;
  endedAt: number;
  /** inline: Envoy waits for answers; observability: Envoy mirrors traffic (never waits). */
  mode: 'inline' | 'observability';
  provider: ProviderName;
  api: ApiKind;
  model: string | null;
  responseModel: string | null;
  stream: boolean;
  consumer: ConsumerIdentity | null;
  status: number | null;
  /** The provider-reported usage, exactly as normalised (nulls where not reported). */
  reportedUsage: Usage | null;
  /** What tokenwarden counts for the exchange: reported, else estimated, else all null. */
  usage: Usage;
  usageSource: UsageSource;
  /**
   * Prompt tokens estimated before the call (tiktoken for OpenAI families, else a cheap bound),
   * null when the request body was not readable.
   */
  promptEstimate: { tokens: number; method: 'exact' | 'bound' } | null;
  /** Integer micro-dollars; null when unpriced (unknown price) or nothing to price. */
  costMicroUsd: number | null;
  unpriced: boolean;
  error: ExchangeErrorCode | null;
  completion: ExchangeCompletion;
  /** The client's stream got stream_options.include_usage added by tokenwarden. */
  usageInjected: boolean;
}
