/** Types internal to traffic recognition and decoding (the per-API processor contract). */
import type { ApiKind, ExchangeErrorCode, ProviderName, Usage } from '../domain.js';
import type { SseEvent } from './decode/sse.js';

/** Reports a problem with the exchange's input; the exchange keeps the first one. */
export type Fail = (code: ExchangeErrorCode) => void;

/** How a response body is framed on the wire (after content-encoding is removed). */
export type Framing = 'json' | 'sse' | 'eventstream' | 'ndjson';

/** One decoded unit of a streamed response body. */
export type StreamEvent =
  | { kind: 'sse'; event: string | undefined; data: string }
  | { kind: 'frame'; headers: Record<string, string>; payload: Uint8Array }
  | { kind: 'line'; text: string };

/** What the request body says (all optional; null when absent or unparseable). */
export interface RequestFacts {
  /** The model named in the body (providers whose model is in the path ignore this). */
  model: string | null;
  /** `stream: true` in the body; undefined when the body does not say. */
  stream: boolean | undefined;
  /** max_tokens / max_completion_tokens / max_output_tokens / maxTokens ... when given. */
  maxOutputTokens: number | null;
  /**
   * Text that the provider will tokenise as prompt (message contents, system, tools as JSON), for
   * estimation. Images and binary data are not included; `extraTokens` carries a fixed allowance.
   */
  promptText: string[];
  extraTokens: number;
  /** OpenAI-shaped streams: the client itself asked for `stream_options.include_usage`. */
  includeUsageRequested: boolean;
}

/** What a response yields once it is complete. */
export interface ResponseFacts {
  responseModel: string | null;
  usage: Usage | null;
  /** Generated text seen in the stream (bounded), used to estimate output when usage is missing. */
  outputText: string;
  outputTextTruncated: boolean;
}

/** Accumulates one response: either a whole JSON body or a sequence of stream events. */
export interface ResponseAccumulator {
  onJson(value: unknown): void;
  /**
   * What the Exchange calls: the event's text (SSE data, NDJSON line, frame payload) and name, read
   * now or later (an event that can carry no usage nor a new model may wait until its text is needed).
   */
  onStreamText(text: string, name: string | undefined): void;
  result(): ResponseFacts;
  /** UTF-8 bytes of generated text seen so far (cheap; for stopping a stream mid-way). */
  outputBytes(): number;
}

/**
 * For APIs whose streams report usage only when the request asks for it: tokenwarden asks on the
 * client's behalf and hides the extra event from the client, so the client sees its own stream.
 */
export interface UsageInjection {
  /** Providers (behind this API) whose streams otherwise carry no usage. */
  readonly providers: ReadonlySet<string>;
  /** The request body asking for usage, or null when this body cannot be rewritten. */
  rewrite(body: Buffer, parsed: unknown): Buffer | null;
  /** The event the injection added (never called on streams where nothing was injected). */
  isInjectedEvent(event: SseEvent): boolean;
}

/** Why tokenwarden refuses a request itself: a budget's rate window or quota, or a model not sanctioned. */
export type RefusalKind = 'rate_limit' | 'quota' | 'forbidden';

/** The error format families; chosen by the API (the client's SDK), not by the provider behind it. */
export type ErrorFormatName = 'openai' | 'anthropic' | 'bedrock' | 'google' | 'cohere' | 'ollama';

/** An API's error format, in which tokenwarden's own refusals are written so the client's SDK raises its usual error. */
export interface ErrorFormat {
  readonly name: ErrorFormatName;
  /** The JSON body of a refusal (429 for rate_limit and quota, 403 for forbidden). */
  body(kind: RefusalKind, message: string): unknown;
  /** A header naming the error type, when the format has one (Bedrock's x-amzn-errortype). */
  typeHeader?(kind: RefusalKind): [name: string, value: string];
}

/** One processor per API endpoint (the Envoy AI Gateway habit): a shared interface. */
export interface ApiHandler {
  readonly api: ApiKind;
  /** Framing of a 2xx response body given the exchange's stream flag and response content-type. */
  framing(stream: boolean, contentType: string | undefined): Framing;
  /** Facts from a parsed JSON request body. Must not throw on unexpected shapes. */
  parseRequest(body: unknown): RequestFacts;
  /** A fresh accumulator; generated text is kept up to `maxTextBytes` (default 1 MiB). */
  newResponse(maxTextBytes?: number): ResponseAccumulator;
  /**
   * Top-level keys the accumulator's onJson reads from a whole response body: a body too large to
   * parse whole is scanned for these only (see RESPONSE_KEYS in providers/index.ts).
   */
  readonly responseKeys: readonly string[];
  /** Present when the API's streams report usage only on request (OpenAI chat's include_usage). */
  readonly usageInjection?: UsageInjection;
  /** How tokenwarden's own refusals of requests to this API are written. */
  readonly errors: ErrorFormat;
}

/** Result of recognising a request from its headers alone. */
export interface Route {
  provider: ProviderName;
  api: ApiKind;
  handler: ApiHandler;
  /** Model taken from the path (Azure deployment, Bedrock model id, Gemini/Vertex models/{m}). */
  pathModel: string | null;
  /** Stream decided by the path (converse-stream, streamGenerateContent...) or undefined. */
  pathStream: boolean | undefined;
  /** Ollama /api/chat streams unless the body says stream:false. */
  streamDefault: boolean;
}

/** The request line and headers as recognition sees them. Header names are lower-case. */
export interface RequestHead {
  method: string;
  authority: string;
  path: string;
  headers: ReadonlyMap<string, string>;
}
