/**
 * The domain vocabulary every layer shares (types only, no imports): providers, APIs, usage and the
 * record of one exchange. See the fixtures README for the meanings of the usage fields.
 */
export type ProviderName =
  | 'openai'
  | 'azure_openai'
  | 'anthropic'
  | 'aws_bedrock'
  | 'gcp_gemini'
  | 'gcp_vertex'
  | 'ollama'
  | 'vllm'
  | 'mistral'
  | 'groq'
  | 'cohere'
  | 'openai_compatible'
  | 'unknown';

export type ApiKind =
  | 'chat_completions'
  | 'responses'
  | 'embeddings'
  | 'messages'
  | 'converse'
  | 'converse_stream'
  | 'invoke'
  | 'invoke_with_response_stream'
  | 'generate_content'
  | 'stream_generate_content'
  | 'ollama_chat'
  | 'cohere_chat';

/**
 * Bad-input codes carried by an exchange (first problem found, request before response). The first
 * four are the fixtures' codes; the others are tokenwarden's for what the fixtures do not cover.
 */
export type ExchangeErrorCode =
  | 'invalid_json'
  | 'invalid_utf8'
  | 'empty_body'
  | 'stream_truncated'
  | 'corrupt_encoding'
  | 'body_too_large';

/** Normalised token usage; null = not reported. See the fixtures README normalisation table. */
export interface Usage {
  input_tokens: number | null;
  output_tokens: number | null;
  total_tokens: number | null;
  cached_input_tokens: number | null;
  cache_write_tokens: number | null;
  reasoning_tokens: number | null;
}

export const EMPTY_USAGE: Readonly<Usage> = Object.freeze({
  input_tokens: null,
  output_tokens: null,
  total_tokens: null,
  cached_input_tokens: null,
  cache_write_tokens: null,
  reasoning_tokens: null,
});

/** The outcome of one observed exchange: what every consumer of tokenwarden's data sees. */
export type ConsumerResolverKind = 'header' | 'xfcc' | 'attribute' | 'api_key';

/** The consumer id of exchanges no resolver could identify (inventory key, budget subject). */
export const ANONYMOUS_CONSUMER = 'anonymous';

export interface ConsumerIdentity {
  id: string;
  resolver: ConsumerResolverKind;
}

/** reported: the provider's own numbers; estimated: counted by tokenwarden; none: nothing known. */
export type UsageSource = 'reported' | 'estimated' | 'none';

/** complete: the response ended normally; aborted: the stream ended before the response did. */
export type ExchangeCompletion = 'complete' | 'aborted';

/**
 * Envoy's view of an exchange's timing, in seconds, from when its ext_proc messages reached
 * tokenwarden. It includes the upstream and Envoy; it is not what the client saw. Inline exchanges
 * that reached the upstream only; a part that was not seen is null.
 */
export interface ExchangeLatency {
  /** Request headers → end of the response (last body chunk, or trailers). */
  duration: number | null;
  /** Request headers → response headers. */
  timeToFirstByte: number | null;
  /** Streams: request headers → the first response body chunk that carries output. */
  timeToFirstChunk: number | null;
  /** Streams: (end of the response − first output chunk) ÷ (output tokens − 1), with 2+ output tokens. */
  timePerOutputToken: number | null;
}

export interface ExchangeRecord {
  requestId: string | null;
  /** The request's W3C traceparent header, when it had one (spans are parented to it). */
  traceparent: string | null;
  /** The request's :authority host without the port (the conventions' server.address). */
  serverAddress: string | null;
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
   * Prompt tokens estimated from the request (tiktoken for OpenAI families, else a cheap bound), when
   * something needed them: budget admission before the call, or a response without usage. Null
   * otherwise (the provider's own count is then the truth, and tokenising would be wasted work).
   */
  promptEstimate: { tokens: number; method: 'exact' | 'bound' } | null;
  /** Integer micro-dollars; null when unpriced (unknown price) or nothing to price. */
  costMicroUsd: number | null;
  unpriced: boolean;
  error: ExchangeErrorCode | null;
  completion: ExchangeCompletion;
  /** The client's stream got stream_options.include_usage added by tokenwarden. */
  usageInjected: boolean;
  /**
   * What refused the request (tokenwarden answered it, nothing went upstream): enforce-mode budget
   * ids (429), or `policy:<id>` for an enforce sanction policy (403). Budgets with stop_streams that
   * stopped the streamed response are listed too.
   */
  blockedBy: string[];
  /** The model is not sanctioned for this consumer under a monitor or enforce policy (flagged or blocked). */
  unsanctioned: boolean;
  latency: ExchangeLatency | null;
}
