/**
 * One HTTP exchange as tokenwarden follows it: recognition at the request headers, request facts
 * from the (buffered) request body, the response body through a ResponseReader, and the final
 * ExchangeRecord with usage, estimates and cost. No gRPC here: the ext_proc stream feeds it.
 * What differs between APIs is the handler's (route.handler), never this file's.
 */
import { performance } from 'node:perf_hooks';
import {
  EMPTY_USAGE,
  type ConsumerIdentity,
  type ExchangeErrorCode,
  type ExchangeLatency,
  type ExchangeRecord,
  type Usage,
  type UsageSource,
} from '../domain.js';
import type { RequestFacts, RequestHead, Route } from './types.js';
import type { AdmissionInput, ExchangeDeps, RequestBodyRewrite, TokenEstimate } from './exchange-types.js';
import { INVALID } from './json-body.js';
import { FULL_PARSE_LIMIT, readRequestJson, RequestBody } from './request-body.js';
import { ResponseReader } from './response-reader.js';
import { estimatedUsage, hostOf, latencyOf } from './record-parts.js';

export type { AdmissionInput, CostCalculator, ExchangeDeps, RequestBodyRewrite, TokenEstimate, TokenEstimator } from './exchange-types.js';
export { FULL_PARSE_LIMIT } from './request-body.js';
export { hostOf } from './record-parts.js';

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
  private reqBody: RequestBody | null = null;
  private requestDone = false;

  private reader: ResponseReader | null = null;
  /** The response body is read: a 2xx that has one. */
  private respParse = false;
  private responseEnded = false;
  private finished: Promise<ExchangeRecord> | null = null;

  /** Message arrival times (clock ms) behind ExchangeRecord.latency; null until seen. */
  private readonly clock: () => number;
  private requestAt: number | null = null;
  private responseHeadersAt: number | null = null;
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

  /** Keeps the first problem found (request before response); made once, handed to the reader. */
  private readonly fail = (code: ExchangeErrorCode): void => {
    if (this.error === null) this.error = code;
  };

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
    this.reqBody = new RequestBody(this.deps.limits.max_request_body_bytes, this.fail);
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
    const req = this.reqBody;
    if (!req || this.requestDone) return null;
    req.push(chunk);
    if (!endOfStream) return null;
    this.requestDone = true;
    if (req.overflow) return null;
    // Only a body that arrived in this one message can be rewritten (earlier chunks already went on).
    return this.parseRequestBody(req.bytesSoFar(true), req.messages === 1, false) ?? null;
  }

  /**
   * With trailers that Envoy does not send (trailer mode SKIP), no body chunk carries end_of_stream:
   * the response headers are then the next sign that the request is complete. The body is taken as
   * complete only if it parses; otherwise it keeps accumulating (an upstream may answer early).
   */
  private parseIfComplete(): void {
    const req = this.reqBody;
    if (this.requestDone || !req || req.overflow || req.length === 0) return;
    if (this.parseRequestBody(req.bytesSoFar(false), false, true) !== undefined) {
      this.requestDone = true;
      req.release();
    }
  }

  /** Trailers end the request body without an end_of_stream chunk. */
  onRequestTrailers(): void {
    if (this.route && !this.requestDone) this.onRequestBody(new Uint8Array(0), true);
  }

  /** Returns undefined only when `tentative` and the body does not parse (nothing recorded then). */
  private parseRequestBody(body: Buffer, canRewrite: boolean, tentative: boolean): RequestBodyRewrite | null | undefined {
    const route = this.route!;
    const parsed = readRequestJson(body, tentative, this.fail);
    if (parsed === undefined) return undefined;
    if (parsed === INVALID) return null;
    const facts = route.handler.parseRequest(parsed);
    this.facts = facts;
    if (route.pathModel === null) this.model = facts.model;
    if (route.pathStream === undefined && facts.stream !== undefined) this.stream = facts.stream;
    return canRewrite ? this.maybeInjectUsage(body, parsed) : null;
  }

  /** Asks the API's streams for usage on the client's behalf (see UsageInjection), when allowed. */
  private maybeInjectUsage(body: Buffer, parsed: unknown): RequestBodyRewrite | null {
    const route = this.route!;
    const injection = route.handler.usageInjection;
    if (
      injection === undefined ||
      // In observability mode Envoy ignores answers: nothing can be rewritten.
      this.observability ||
      // A body with problems (e.g. invalid UTF-8) is passed on byte for byte.
      this.error !== null ||
      !this.deps.metering.inject_stream_usage ||
      !this.stream ||
      !injection.providers.has(route.provider) ||
      this.facts?.includeUsageRequested ||
      body.length > FULL_PARSE_LIMIT
    ) {
      return null;
    }
    const out = injection.rewrite(body, parsed);
    if (out === null) return null;
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
    this.reader = new ResponseReader({
      handler: this.route.handler,
      stream: this.stream,
      contentType: headers.get('content-type'),
      contentEncoding: headers.get('content-encoding'),
      limits: this.deps.limits,
      maxTextBytes: this.deps.metering.max_stream_text_bytes,
      usageInjected: this.usageInjected,
      clock: this.clock,
      fail: this.fail,
    });
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
    return this.reader!.push(chunk, endOfStream);
  }

  /** Trailers end the response (its last body chunk had no end_of_stream). */
  onResponseTrailers(): void {
    this.endResponse();
  }

  get responseComplete(): boolean {
    return this.responseEnded;
  }

  /**
   * Output tokens streamed so far, estimated low (4 bytes per token, the English average) so that a
   * budget never cuts a stream before it really ran past its allowance.
   */
  streamedOutputTokens(): number {
    return this.reader ? Math.floor(this.reader.outputBytes() / 4) : 0;
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
    if (this.reader) await this.reader.end(this.respParse, complete, this.stoppedStream);
    const facts = this.reader?.result() ?? null;
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
    if (this.observability) return null;
    const first = this.stream ? (this.reader?.firstOutputAt ?? null) : null;
    return latencyOf(this.requestAt, this.responseHeadersAt, first, this.responseEndAt, usage.output_tokens);
  }

  private async estimate(prompt: TokenEstimate | null, outputText: string): Promise<Usage> {
    const output = await this.deps.tokens.count(outputText.length > 0 ? [outputText] : [], this.route!.provider, this.model);
    return estimatedUsage(prompt === null ? null : prompt.tokens, output.tokens);
  }
}
