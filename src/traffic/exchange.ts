/**
 * One HTTP exchange as tokenwarden follows it: recognition at the request headers, request facts
 * from the (buffered) request body, incremental decoding of the response body, and the final
 * ExchangeRecord with usage, estimates and cost. No gRPC here: the ext_proc stream feeds it.
 */
import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { MeteringConfig, LimitsConfig } from '../config/types.js';
import {
  EMPTY_USAGE,
  type ConsumerIdentity,
  type ExchangeErrorCode,
  type ExchangeLatency,
  type ExchangeRecord,
  type Usage,
  type UsageSource,
} from '../domain.js';
import type { Framing, RequestFacts, RequestHead, ResponseAccumulator, Route } from './types.js';
import { SseDecoder, type SseEvent } from './decode/sse.js';
import { EventStreamDecoder, type EventStreamFrame } from './decode/eventstream.js';
import { frameText } from './providers/common.js';
import { NdjsonDecoder } from './decode/ndjson.js';
import { createContentDecoder, type ContentDecoder } from './decode/content-encoding.js';
import { scanTopLevel, type ScannedValue } from './decode/json-scan.js';
import { SseEventFilter } from './decode/sse-filter.js';

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

/**
 * Providers whose chat-completions streams report usage only with `stream_options.include_usage`.
 * (Mistral and Groq report it anyway: the finish chunk, `x_groq.usage`.)
 */
const INCLUDE_USAGE_PROVIDERS = new Set(['openai', 'azure_openai', 'vllm', 'openai_compatible']);

/** Request bodies up to this size are fully parsed; larger ones are scanned for top-level keys only. */
export const FULL_PARSE_LIMIT = 8 * 1024 * 1024;
/** Non-streaming response bodies up to this size are parsed whole; larger ones are scanned. */
const RESPONSE_FULL_PARSE_LIMIT = 256 * 1024;
/** Top-level response keys that any handler reads from a non-streaming body. */
const RESPONSE_KEYS = [
  'model',
  'usage',
  'modelVersion',
  'usageMetadata',
  'prompt_eval_count',
  'eval_count',
  'done',
  'object',
  'type',
  'amazon-bedrock-invocationMetrics',
  'prompt_token_count',
  'generation_token_count',
  'inputTextTokenCount',
  'results',
];
const REQUEST_SCAN_KEYS = ['model', 'stream', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'stream_options'];

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

export class Exchange {
  readonly startedAt: number;
  readonly observability: boolean;
  route: Route | null = null;
  consumer: ConsumerIdentity | null = null;
  requestId: string | null = null;
  traceparent: string | null = null;
  serverAddress: string | null = null;
  model: string | null = null;
  stream = false;
  status: number | null = null;
  error: ExchangeErrorCode | null = null;
  usageInjected = false;
  blockedBy: string[] = [];
  /** Set by the governor when a sanction policy flags or blocks the model (see ExchangeRecord). */
  unsanctioned = false;
  stoppedStream = false;

  private hadContentLength = false;
  private facts: RequestFacts | null = null;
  /**
   * Prompt tokens, counted in the tokenizer worker (never on this loop) only when something needs
   * them: budget admission, or a response that reports no usage. Most exchanges need neither.
   */
  private promptEstimate: Promise<TokenEstimate> | null = null;
  private reqChunks: Uint8Array[] = [];
  private reqBytes = 0;
  private reqOverflow = false;
  private reqMessages = 0;
  private requestDone = false;

  private acc: ResponseAccumulator | null = null;
  private framing: Framing | null = null;
  private respParse = false;
  private respChunks: Uint8Array[] = [];
  private respBytes = 0;
  private respOverflow = false;
  private sse: SseDecoder | null = null;
  private frames: EventStreamDecoder | null = null;
  private ndjson: NdjsonDecoder | null = null;
  private content: ContentDecoder | null = null;
  private filter: SseEventFilter | null = null;
  private responseEnded = false;
  private finished: Promise<ExchangeRecord> | null = null;

  /** Message arrival times (clock ms) behind ExchangeRecord.latency; null until seen. */
  private readonly clock: () => number;
  private requestAt: number | null = null;
  private responseHeadersAt: number | null = null;
  private firstOutputAt: number | null = null;
  private responseEndAt: number | null = null;

  constructor(private readonly deps: ExchangeDeps, opts: { observability: boolean }) {
    this.observability = opts.observability;
    this.startedAt = (deps.now ?? Date.now)();
    this.clock = deps.clock ?? performance.now.bind(performance);
  }

  /** The response is over (its end, trailers, a stopped stream): marks it once, with its time. */
  private endResponse(): void {
    if (this.responseEnded) return;
    this.responseEnded = true;
    this.responseEndAt = this.clock();
  }

  get isLlm(): boolean {
    return this.route !== null;
  }

  private fail(code: ExchangeErrorCode): void {
    if (this.error === null) this.error = code;
  }

  /** Recognises the request; returns false for traffic that is not LLM traffic. */
  onRequestHeaders(headers: ReadonlyMap<string, string>, endOfStream: boolean, attributes: ReadonlyMap<string, string>): boolean {
    const head: RequestHead = {
      method: headers.get(':method') ?? '',
      authority: headers.get(':authority') ?? headers.get('host') ?? '',
      path: headers.get(':path') ?? '',
      headers,
    };
    this.route = this.deps.recognize(head);
    if (!this.route) return false;
    this.requestAt = this.clock();
    this.requestId = headers.get('x-request-id') ?? null;
    this.traceparent = headers.get('traceparent') ?? null;
    this.serverAddress = hostOf(head.authority);
    this.consumer = this.deps.resolveConsumer(headers, attributes);
    this.model = this.route.pathModel;
    this.stream = this.route.pathStream ?? this.route.streamDefault;
    this.hadContentLength = headers.has('content-length');
    if (endOfStream) {
      this.requestDone = true;
      if (head.method === 'POST') this.fail('empty_body');
    }
    return true;
  }

  /**
   * Feeds a request body chunk. At the end of the body, parses it and returns a rewrite when
   * include_usage must be injected (only possible when the whole body is in hand).
   */
  onRequestBody(chunk: Uint8Array, endOfStream: boolean): RequestBodyRewrite | null {
    if (!this.route || this.requestDone) return null;
    this.reqMessages++;
    if (!this.reqOverflow) {
      this.reqBytes += chunk.length;
      if (this.reqBytes > this.deps.limits.max_request_body_bytes) {
        this.reqOverflow = true;
        this.reqChunks = [];
        this.fail('body_too_large');
      } else if (chunk.length > 0) {
        this.reqChunks.push(chunk);
      }
    }
    if (!endOfStream) return null;
    this.requestDone = true;
    if (this.reqOverflow) return null;
    const body = concat(this.reqChunks, this.reqBytes);
    this.reqChunks = [];
    // Only a body that arrived in this one message can be rewritten (earlier chunks already went on).
    return this.parseRequestBody(body, this.reqMessages === 1, false) ?? null;
  }

  /**
   * With trailers that Envoy does not send (trailer mode SKIP), no body chunk carries end_of_stream:
   * the response headers are then the next sign that the request is complete. The body is taken as
   * complete only if it parses; otherwise it keeps accumulating (an upstream may answer early).
   */
  private parseIfComplete(): void {
    if (this.requestDone || this.reqOverflow || this.reqBytes === 0) return;
    const body = concat(this.reqChunks, this.reqBytes);
    if (this.parseRequestBody(body, false, true) !== undefined) {
      this.requestDone = true;
      this.reqChunks = [];
    }
  }

  /** Trailers end the request body without an end_of_stream chunk. */
  onRequestTrailers(): void {
    if (this.route && !this.requestDone) this.onRequestBody(new Uint8Array(0), true);
  }

  /** Returns undefined only when `tentative` and the body does not parse (nothing recorded then). */
  private parseRequestBody(body: Buffer, canRewrite: boolean, tentative: boolean): RequestBodyRewrite | null | undefined {
    const route = this.route!;
    if (body.length === 0) {
      this.fail('empty_body');
      return null;
    }
    const parsed = parseJsonBody(body, REQUEST_SCAN_KEYS, FULL_PARSE_LIMIT);
    if (parsed === INVALID && tentative) return undefined;
    if (!isUtf8(body)) this.fail('invalid_utf8');
    if (parsed === INVALID) {
      this.fail('invalid_json');
      return null;
    }
    const facts = route.handler.parseRequest(parsed);
    this.facts = facts;
    if (route.pathModel === null) this.model = facts.model;
    if (route.pathStream === undefined && facts.stream !== undefined) this.stream = facts.stream;
    return canRewrite ? this.maybeInjectUsage(body, parsed) : null;
  }

  private maybeInjectUsage(body: Buffer, parsed: unknown): RequestBodyRewrite | null {
    const route = this.route!;
    if (
      // In observability mode Envoy ignores answers: nothing can be rewritten.
      this.observability ||
      // A body with problems (e.g. invalid UTF-8) is passed on byte for byte.
      this.error !== null ||
      !this.deps.metering.inject_stream_usage ||
      !this.stream ||
      route.api !== 'chat_completions' ||
      !INCLUDE_USAGE_PROVIDERS.has(route.provider) ||
      this.facts?.includeUsageRequested ||
      parsed === null ||
      typeof parsed !== 'object' ||
      Array.isArray(parsed) ||
      body.length > FULL_PARSE_LIMIT
    ) {
      return null;
    }
    const obj = parsed as Record<string, unknown>;
    let out: Buffer;
    if (!('stream_options' in obj)) {
      // Splice the key in after the opening brace: no re-serialisation of the (possibly large) body.
      const open = body.indexOf(0x7b);
      const rest = body.subarray(open + 1);
      const empty = Object.keys(obj).length === 0;
      out = Buffer.concat([
        body.subarray(0, open + 1),
        Buffer.from(empty ? '"stream_options":{"include_usage":true}' : '"stream_options":{"include_usage":true},'),
        rest,
      ]);
    } else {
      const so = obj.stream_options;
      if (so !== null && typeof so !== 'object') return null;
      out = Buffer.from(JSON.stringify({ ...obj, stream_options: { ...(so ?? {}), include_usage: true } }), 'utf8');
    }
    this.usageInjected = true;
    return {
      body: out,
      contentLength: this.hadContentLength ? out.length : null,
      setHeaders: { 'accept-encoding': 'identity' },
    };
  }

  onResponseHeaders(headers: ReadonlyMap<string, string>, endOfStream: boolean): void {
    const status = Number.parseInt(headers.get(':status') ?? '', 10);
    this.status = Number.isFinite(status) ? status : null;
    if (!this.route) return;
    this.responseHeadersAt = this.clock();
    this.parseIfComplete();
    if (this.status === null || this.status < 200 || this.status > 299) {
      if (endOfStream) this.endResponse();
      return;
    }
    this.respParse = true;
    const contentType = headers.get('content-type');
    this.framing = this.route.handler.framing(this.stream, contentType);
    this.acc = this.route.handler.newResponse(this.deps.metering.max_stream_text_bytes);
    const encoding = headers.get('content-encoding');
    const decoded = (bytes: Uint8Array): void => this.feedDecoded(bytes);
    // A JSON body is held whole, so its decoded size is capped by the body limit; stream decoders hold
    // one event at a time, so only the inflating work of a compressed stream needs a (larger) cap.
    const maxOutputBytes = this.framing === 'json' ? this.deps.limits.max_response_body_bytes + 1 : this.deps.limits.max_decoded_stream_bytes;
    this.content = createContentDecoder(encoding, decoded, { maxOutputBytes });
    switch (this.framing) {
      case 'sse':
        this.sse = new SseDecoder({ maxEventBytes: this.deps.limits.max_stream_event_bytes });
        if (this.usageInjected && this.content === null) this.filter = new SseEventFilter(isInjectedUsageEvent);
        break;
      case 'eventstream':
        this.frames = new EventStreamDecoder({ maxFrameBytes: this.deps.limits.max_stream_frame_bytes });
        break;
      case 'ndjson':
        this.ndjson = new NdjsonDecoder({ maxLineBytes: this.deps.limits.max_stream_event_bytes });
        break;
      case 'json':
        break;
    }
    if (endOfStream) {
      this.endResponse();
      this.fail('empty_body');
      this.respParse = false;
    }
  }

  /**
   * Feeds a response body chunk. Returns the bytes to forward instead of the chunk when the
   * injected usage event has to be hidden from the client, else null (forward unchanged).
   */
  onResponseBody(chunk: Uint8Array, endOfStream: boolean): Uint8Array | null {
    if (this.responseEnded) return null;
    if (endOfStream) this.endResponse();
    if (!this.respParse) return null;
    if (this.content) this.content.push(chunk);
    else this.feedDecoded(chunk);
    if (!this.filter) return null;
    const out = this.filter.push(chunk);
    if (!endOfStream) return out;
    const tail = this.filter.end();
    return tail.length === 0 ? out : Buffer.concat([out, tail]);
  }

  /** Trailers end the response (its last body chunk had no end_of_stream). */
  onResponseTrailers(): void {
    this.endResponse();
  }

  // The decoders' callbacks, made once per exchange rather than once per chunk.
  private readonly onSse = (ev: SseEvent): void => this.acc!.onStreamText(ev.data, ev.event);
  private readonly onFrame = (f: EventStreamFrame): void => this.acc!.onStreamText(frameText(f.payload), f.headers[':event-type']);
  private readonly onLine = (text: string): void => this.acc!.onStreamText(text, undefined);

  private feedDecoded(bytes: Uint8Array): void {
    const acc = this.acc!;
    switch (this.framing) {
      case 'sse':
        this.sse!.push(bytes, this.onSse);
        this.noteOutput(acc);
        return;
      case 'eventstream':
        this.frames!.push(bytes, this.onFrame);
        this.noteOutput(acc);
        return;
      case 'ndjson':
        this.ndjson!.push(bytes, this.onLine);
        this.noteOutput(acc);
        return;
      default:
        if (this.respOverflow) return;
        this.respBytes += bytes.length;
        if (this.respBytes > this.deps.limits.max_response_body_bytes) {
          this.respOverflow = true;
          this.respChunks = [];
          this.fail('body_too_large');
          return;
        }
        if (bytes.length > 0) this.respChunks.push(bytes);
    }
  }

  /** The first streamed chunk that carried output text starts the time to first chunk. */
  private noteOutput(acc: ResponseAccumulator): void {
    if (this.firstOutputAt === null && acc.outputBytes() > 0) this.firstOutputAt = this.clock();
  }

  get responseComplete(): boolean {
    return this.responseEnded;
  }

  /**
   * Output tokens streamed so far, estimated low (4 bytes per token, the English average) so that a
   * budget never cuts a stream before it really ran past its allowance.
   */
  streamedOutputTokens(): number {
    return this.acc ? Math.floor(this.acc.outputBytes() / 4) : 0;
  }

  /**
   * A budget stopped the stream: the exchange ends here and its output so far is counted as
   * estimated usage (what the client received was spent).
   */
  stopStream(budgets: string[]): void {
    this.blockedBy = budgets;
    this.stoppedStream = true;
    this.endResponse();
  }

  /** Budgets or a policy refused the request: tokenwarden answered it itself and nothing went upstream. */
  rejectLocally(status: number, blockedBy: string[]): void {
    this.status = status;
    this.blockedBy = blockedBy;
    this.responseEnded = true;
  }

  /**
   * What budget admission needs once the request body is read. With a tokenizer in play the prompt
   * is given as a ceiling, and counted (into the record's promptEstimate) only if admission asks.
   */
  async admissionInput(): Promise<AdmissionInput | null> {
    const facts = this.facts;
    if (!this.route || !facts) return null;
    const ceiling = this.deps.tokens.ceiling?.(facts.promptText, this.route.provider, this.model, facts.extraTokens) ?? null;
    if (ceiling !== null) {
      const countPrompt = async (): Promise<number> => (await this.countPrompt())?.tokens ?? 0;
      return { promptTokens: ceiling, countPrompt, maxOutputTokens: facts.maxOutputTokens };
    }
    const prompt = await this.countPrompt();
    return { promptTokens: prompt?.tokens ?? 0, maxOutputTokens: facts.maxOutputTokens };
  }

  /** The prompt estimate, started on first need; null when the request body was not readable. */
  private countPrompt(): Promise<TokenEstimate | null> {
    const facts = this.facts;
    if (!facts || !this.route) return Promise.resolve(null);
    this.promptEstimate ??= this.deps.tokens.count(facts.promptText, this.route.provider, this.model, facts.extraTokens);
    return this.promptEstimate;
  }

  /** Completes the exchange once (idempotent): decodes what is left and prices the usage. */
  finish(): Promise<ExchangeRecord> {
    this.finished ??= this.finalize();
    return this.finished;
  }

  private async finalize(): Promise<ExchangeRecord> {
    const route = this.route!;
    const complete = this.responseEnded;
    if (this.content) {
      const { error } = await this.content.end();
      if (error) this.fail(error === 'too_large' ? 'body_too_large' : 'corrupt_encoding');
    }
    if (this.respParse && this.acc) this.endFraming(this.acc, complete);
    const facts = this.acc?.result() ?? null;
    const ok2xx = this.status !== null && this.status >= 200 && this.status <= 299;
    const reported = ok2xx && facts?.usage ? facts.usage : null;
    let usage: Usage = { ...EMPTY_USAGE };
    let usageSource: UsageSource = 'none';
    if (reported && (reported.input_tokens !== null || reported.output_tokens !== null)) {
      usage = reported;
      usageSource = 'reported';
    } else if (ok2xx && complete && facts) {
      usage = await this.estimate(await this.countPrompt(), facts.outputText);
      usageSource = 'estimated';
    }
    const responseModel = ok2xx ? (facts?.responseModel ?? null) : null;
    const cost = usageSource === 'none' ? null : this.deps.prices.cost(route.provider, [responseModel, this.model], usage);
    return {
      requestId: this.requestId,
      traceparent: this.traceparent,
      serverAddress: this.serverAddress,
      startedAt: this.startedAt,
      endedAt: (this.deps.now ?? Date.now)(),
      mode: this.observability ? 'observability' : 'inline',
      provider: route.provider,
      api: route.api,
      model: this.model,
      responseModel,
      stream: this.stream,
      consumer: this.consumer,
      status: this.status,
      reportedUsage: reported,
      usage,
      usageSource,
      promptEstimate: this.promptEstimate ? await this.promptEstimate : null,
      costMicroUsd: cost?.microUsd ?? null,
      unpriced: usageSource !== 'none' && cost === null,
      error: this.error,
      completion: complete ? 'complete' : 'aborted',
      usageInjected: this.usageInjected,
      blockedBy: this.blockedBy,
      unsanctioned: this.unsanctioned,
      latency: this.latency(usage),
    };
  }

  /** See ExchangeLatency: inline exchanges whose response came from the upstream. */
  private latency(usage: Usage): ExchangeLatency | null {
    const start = this.requestAt;
    if (this.observability || start === null || this.responseHeadersAt === null) return null;
    const since = (t: number | null): number | null => (t === null ? null : (t - start) / 1000);
    const first = this.stream ? this.firstOutputAt : null;
    const end = this.responseEndAt;
    const out = usage.output_tokens;
    return {
      duration: since(end),
      timeToFirstByte: since(this.responseHeadersAt),
      timeToFirstChunk: since(first),
      timePerOutputToken: first !== null && end !== null && out !== null && out >= 2 ? (end - first) / 1000 / (out - 1) : null,
    };
  }

  private endFraming(acc: ResponseAccumulator, complete: boolean): void {
    switch (this.framing) {
      case 'sse': {
        const { truncated } = this.sse!.end();
        if (this.sse!.invalidUtf8) this.fail('invalid_utf8');
        // An event over the decoder's cap was passed through unread: part of the body was too large.
        if (this.sse!.droppedEvents > 0) this.fail('body_too_large');
        if (truncated && complete && !this.stoppedStream) this.fail('stream_truncated');
        return;
      }
      case 'eventstream': {
        const { truncated } = this.frames!.end();
        if (this.frames!.droppedFrames > 0) this.fail('body_too_large');
        if (truncated && complete && !this.stoppedStream) this.fail('stream_truncated');
        return;
      }
      case 'ndjson': {
        const { truncated } = this.ndjson!.end();
        if (this.ndjson!.invalidUtf8) this.fail('invalid_utf8');
        if (this.ndjson!.droppedLines > 0) this.fail('body_too_large');
        if (truncated && complete && !this.stoppedStream) this.fail('stream_truncated');
        return;
      }
      default: {
        if (!complete || this.respOverflow) return;
        const body = concat(this.respChunks, this.respBytes);
        this.respChunks = [];
        if (body.length === 0) {
          this.fail('empty_body');
          return;
        }
        if (!isUtf8(body)) this.fail('invalid_utf8');
        // Large bodies (embeddings, long completions): only the keys that carry usage/model are parsed.
        const parsed = parseJsonBody(body, RESPONSE_KEYS, RESPONSE_FULL_PARSE_LIMIT);
        if (parsed === INVALID) this.fail('invalid_json');
        else acc.onJson(parsed);
      }
    }
  }

  private async estimate(prompt: TokenEstimate | null, outputText: string): Promise<Usage> {
    const output = await this.deps.tokens.count(outputText.length > 0 ? [outputText] : [], this.route!.provider, this.model);
    const inputTokens = prompt === null ? null : prompt.tokens;
    const outputTokens = output.tokens;
    return {
      input_tokens: inputTokens,
      output_tokens: outputTokens,
      total_tokens: inputTokens === null ? null : inputTokens + outputTokens,
      cached_input_tokens: null,
      cache_write_tokens: null,
      reasoning_tokens: null,
    };
  }
}

/**
 * The usage-only chunk that include_usage adds to an OpenAI-shaped stream: `choices: []` and a
 * non-null `usage`. Only ever applied to streams where tokenwarden injected include_usage.
 */
function isInjectedUsageEvent(ev: SseEvent): boolean {
  const d = ev.data;
  if (d.length === 0 || d[0] !== '{' || !d.includes('"usage"')) return false;
  try {
    const obj = JSON.parse(d) as { choices?: unknown; usage?: unknown };
    return Array.isArray(obj.choices) && obj.choices.length === 0 && obj.usage !== null && typeof obj.usage === 'object';
  } catch {
    return false;
  }
}

const INVALID = Symbol('invalid JSON');

/** Full JSON.parse up to `fullLimit` bytes; beyond it, a validating scan for the top-level `keys`. */
function parseJsonBody(body: Buffer, keys: readonly string[], fullLimit: number): unknown {
  if (body.length <= fullLimit) {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      return INVALID;
    }
  }
  const scan = scanTopLevel(body, keys);
  if (!scan.ok) return INVALID;
  if (scan.isObject) return scannedObject(body, scan.values);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    // Valid but nested deeper than JSON.parse's stack allows: nothing can be read from it.
    return INVALID;
  }
}

function concat(chunks: Uint8Array[], total: number): Buffer {
  if (chunks.length === 1) {
    const c = chunks[0]!;
    return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
  }
  return Buffer.concat(chunks, total);
}

/** Rebuilds an object from scanned top-level values, parsing only the nested slices asked for. */
function scannedObject(body: Buffer, values: Map<string, ScannedValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of values) {
    if (v !== null && typeof v === 'object') {
      try {
        out[k] = JSON.parse(body.subarray(v.start, v.end).toString('utf8'));
      } catch {
        // A valid slice can still be nested deeper than JSON.parse's stack allows: skip that key.
      }
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** The host of an :authority value, without its port (IPv6 literals lose their brackets). */
export function hostOf(authority: string): string | null {
  if (authority === '') return null;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end > 1 ? authority.slice(1, end) : null;
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon) || null;
}
