/**
 * One ext_proc gRPC stream = one HTTP exchange. Answers every message exactly once, in the order
 * received (so FIFO per direction), with the oneof that matches; writes nothing in observability mode;
 * ends the RPC itself (OK) right after the last answer Envoy can need; treats Envoy's half-close +
 * cancel as a normal end. Recognition and metering live in Exchange.
 *
 * Per-stream state lives until the stream ends. Envoy ends every stream it opens; in observability
 * mode it may keep the side stream for deferred_close_timeout after the HTTP stream ended, and it
 * never waits for us, so a mirrored stream silent for `observabilityIdleMs` is ended from here (OK:
 * Envoy stops mirroring that request) and recorded with what was seen.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { MetadataConfig } from '../config/types.js';
import type { Exchange, RequestBodyRewrite } from '../traffic/exchange.js';
import type { ExchangeRecord } from '../domain.js';
import type { ExchangeGovernor, GovernedRequest, GovernorDecision } from '../governance/governor.js';
import { BodySendMode, constantAnswer } from './protocol.js';
import type {
  RequestKind,
  WireCommonResponse,
  WireHttpBody,
  WireProcessingRequest,
  WireProcessingResponse,
} from './protocol.js';
import { attributeMap, emptyAnswer, endsResponse, headerMap, headerMutation, SKIP_REST_OVERRIDE } from './messages.js';
import { exchangeMetadata, requestMetadata } from './metadata.js';

export type ProcessCall = ServerDuplexStream<WireProcessingRequest, WireProcessingResponse>;

/** What a stream reports to the rest of the server (metrics, records). */
export interface StreamObserver {
  messageHandled(kind: RequestKind, seconds: number): void;
  protocolError(reason: string): void;
  nonLlmRequest(): void;
  record(record: ExchangeRecord): void;
  streamOpened(): void;
  streamClosed(): void;
  /** The server ended the RPC right after the last answer Envoy could need. */
  streamEndedByServer(): void;
  /** A move the stream's lifecycle does not allow was refused (see StreamPhase). */
  transitionRefused(from: StreamPhase, to: StreamPhase): void;
  internalError(err: unknown): void;
}

export interface StreamOptions {
  newExchange(observability: boolean): Exchange;
  metadata: MetadataConfig;
  skipNonLlm: boolean;
  observer: StreamObserver;
  governor?: ExchangeGovernor | undefined;
  /** Observability mode: end a stream that received nothing for this long (default OBSERVABILITY_IDLE_MS). */
  observabilityIdleMs?: number | undefined;
}

/**
 * Longer than Envoy can legitimately keep a mirrored side stream silent: its default HCM
 * stream_idle_timeout (5 min) plus deferred_close_timeout (default 5 s), with room to spare.
 */
export const OBSERVABILITY_IDLE_MS = 360_000;

/**
 * Where a Process stream is in its life: `idle` until Envoy's first message, `open` while the
 * exchange runs, `ending` once its end is decided (by the server, or by Envoy's half-close) while
 * the answers already owed are written, `ended` when the RPC is over. Only the moves listed here
 * happen; any other is refused and counted (a message that raced the server's end of the RPC).
 */
export type StreamPhase = 'idle' | 'open' | 'ending' | 'ended';

const PHASE_MOVES: Readonly<Record<StreamPhase, readonly StreamPhase[]>> = {
  idle: ['open', 'ending', 'ended'],
  open: ['ending', 'ended'],
  ending: ['ended'],
  ended: [],
};

/** Why a stream ends (see end()). */
type Ending =
  /** The last answer Envoy can need was written: the server ends the RPC with OK. */
  | 'last_answer'
  /** The server stops early (shutdown, observability idle or done, an empty message), after what is owed. */
  | 'server'
  /** Envoy half-closed its side: the server ends its own after what is owed. */
  | 'half_close'
  /** Cancelled, reset or failed: nothing can be written any more. */
  | 'cancelled';

export class ProcessStream {
  private phase: StreamPhase = 'idle';
  private exchange: Exchange | null = null;
  private observability = false;
  private requestDuplex = false;
  private responseDuplex = false;
  /** Envoy's response body mode from protocol_config (Envoy >= 1.34); undefined when not sent. */
  private responseBodyMode: number | undefined;
  private llm = false;
  /** The exchange's record, asked for once. */
  private recording: Promise<ExchangeRecord | null> | null = null;
  /** Set once the exchange is recorded. */
  private recorded: ExchangeRecord | null = null;
  private decision: GovernorDecision | null = null;
  private settled = false;
  private idle: NodeJS.Timeout | null = null;
  /** performance.now() of the last message dispatched (observability mode's idle check). */
  private lastMessageAt = 0;
  private tail: Promise<void> | null = null;

  constructor(
    private readonly call: ProcessCall,
    private readonly opts: StreamOptions,
  ) {
    opts.observer.streamOpened();
    call.on('data', (msg: WireProcessingRequest) => this.enqueue(msg));
    // Envoy half-closes and then cancels: both are a normal end of the exchange.
    call.on('end', () => this.finish('half_close'));
    call.on('cancelled', () => this.end('cancelled'));
    call.on('error', () => this.end('cancelled'));
    call.on('close', () => this.end('cancelled'));
  }

  /** Ends the stream from the server side (graceful shutdown); Envoy continues unprocessed. */
  finishFromServer(): void {
    this.finish('server');
  }

  /** The move to `to`, when PHASE_MOVES allows it; otherwise refused and counted. */
  private move(to: StreamPhase): boolean {
    if (!PHASE_MOVES[this.phase].includes(to)) {
      this.opts.observer.transitionRefused(this.phase, to);
      return false;
    }
    this.phase = to;
    return true;
  }

  /** Ends the stream once the answers already owed are written; asking again changes nothing. */
  private finish(why: 'server' | 'half_close'): void {
    if (this.phase === 'ending' || this.phase === 'ended') return;
    this.move('ending');
    this.afterPending(() => this.end(why));
  }

  /**
   * The one way a stream ends: the RPC is ended with OK when that is still possible, the exchange
   * is recorded (once, with what was seen, even when Envoy went away early) and then settled (once,
   * see settle()), and the stream is reported closed. Only the first call does anything.
   */
  private end(why: Ending): void {
    if (this.phase === 'ended') return;
    this.move('ended');
    if (this.idle) clearTimeout(this.idle);
    if (why !== 'cancelled' && !this.call.cancelled && !this.call.writableEnded) {
      this.call.end();
      if (why === 'last_answer') this.opts.observer.streamEndedByServer();
    }
    void this.complete().catch((err: unknown) => this.opts.observer.internalError(err));
    this.opts.observer.streamClosed();
  }

  private enqueue(msg: WireProcessingRequest): void {
    // After the end, a message (one that raced the server's end of the RPC) is refused.
    if (this.phase === 'ended') {
      this.move('open');
      return;
    }
    if (this.tail !== null) {
      const next: Promise<void> = this.tail.then(() => this.dispatch(msg));
      this.track(next);
      return;
    }
    const r = this.dispatch(msg);
    if (r) this.track(r);
  }

  private track(p: Promise<void>): void {
    this.tail = p;
    void p.then(() => {
      if (this.tail === p) this.tail = null;
    });
  }

  private afterPending(fn: () => void): void {
    if (this.tail) void this.tail.then(fn);
    else fn();
  }

  private dispatch(msg: WireProcessingRequest): void | Promise<void> {
    const kind = msg.request;
    const start = performance.now();
    this.lastMessageAt = start;
    if (!kind) {
      // Envoy never sends an empty message; finishing OK lets the request continue unprocessed.
      this.opts.observer.protocolError('empty_message');
      this.finishFromServer();
      return;
    }
    if (this.phase === 'idle') this.onFirst(msg);
    let answer: WireProcessingResponse | Promise<WireProcessingResponse>;
    try {
      answer = this.handle(kind, msg);
    } catch (err) {
      this.opts.observer.internalError(err);
      answer = this.fallbackAnswer(kind, msg);
    }
    if (answer instanceof Promise) {
      return answer.then(
        (a) => this.write(kind, msg, a, start),
        (err: unknown) => {
          this.opts.observer.internalError(err);
          this.write(kind, msg, this.fallbackAnswer(kind, msg), start);
        },
      );
    }
    this.write(kind, msg, answer, start);
  }

  private onFirst(msg: WireProcessingRequest): void {
    this.move('open');
    this.observability = msg.observability_mode === true;
    const pc = msg.protocol_config;
    this.requestDuplex = pc?.request_body_mode === BodySendMode.FULL_DUPLEX_STREAMED;
    this.responseDuplex = pc?.response_body_mode === BodySendMode.FULL_DUPLEX_STREAMED;
    this.responseBodyMode = pc?.response_body_mode;
    this.exchange = this.opts.newExchange(this.observability);
    if (this.observability) this.armIdle(this.opts.observabilityIdleMs ?? OBSERVABILITY_IDLE_MS);
  }

  private armIdle(ms: number): void {
    this.idle = setTimeout(() => this.onIdle(), ms);
    this.idle.unref();
  }

  /** No timer work per message: a message only notes its time, and the timer waits out the rest. */
  private onIdle(): void {
    const rest = this.lastMessageAt + (this.opts.observabilityIdleMs ?? OBSERVABILITY_IDLE_MS) - performance.now();
    if (rest > 0) return this.armIdle(rest);
    this.opts.observer.protocolError('observability_idle_timeout');
    this.finishFromServer();
  }

  private write(kind: RequestKind, msg: WireProcessingRequest, answer: WireProcessingResponse, start: number): void {
    this.opts.observer.messageHandled(kind, (performance.now() - start) / 1000);
    if (this.observability || this.phase === 'ended' || this.call.cancelled || this.call.writableEnded) return;
    this.call.write(answer);
    if (this.lastAnswer(kind, msg, answer)) this.end('last_answer');
  }

  /**
   * Whether Envoy can need no further answer on this stream (spec §1.6 rule 1). Ending the RPC with
   * OK then frees the stream without a reset wherever our trailers reach Envoy before it closes
   * (graceful close; non-LLM traffic, whose HTTP stream outlives the side stream); the resets that
   * still come are kept within Node's limit by connection rotation (sessions.ts). Whatever Envoy
   * sends afterwards passes unprocessed, so no ending below loses anything tokenwarden needs. Not
   * with FULL_DUPLEX_STREAMED bodies before the response ended: chunks Envoy sent and we did not
   * echo yet would be lost (§1.7).
   */
  private lastAnswer(kind: RequestKind, msg: WireProcessingRequest, answer: WireProcessingResponse): boolean {
    if (answer.immediate_response) return true;
    if (kind === 'request_headers') return !this.llm && !this.requestDuplex && !this.responseDuplex;
    return endsResponse(msg, this.responseBodyMode);
  }

  /** An answer that never blocks traffic: unchanged, or the chunk echoed in FULL_DUPLEX mode. */
  private fallbackAnswer(kind: RequestKind, msg: WireProcessingRequest): WireProcessingResponse {
    if (kind === 'request_body' && this.requestDuplex) return echo('request_body', msg.request_body);
    if (kind === 'response_body' && this.responseDuplex) return echo('response_body', msg.response_body);
    return emptyAnswer(kind);
  }

  private handle(kind: RequestKind, msg: WireProcessingRequest): WireProcessingResponse | Promise<WireProcessingResponse> {
    const ex = this.exchange!;
    switch (kind) {
      case 'request_headers': {
        const h = msg.request_headers!;
        const eos = h.end_of_stream === true;
        this.llm = ex.onRequestHeaders(headerMap(h.headers), eos, attributeMap(msg.attributes));
        if (!this.llm) {
          this.opts.observer.nonLlmRequest();
          // Mirrored non-LLM traffic: finishing the RPC stops Envoy from sending the rest.
          if (this.observability) this.finishFromServer();
          return this.opts.skipNonLlm ? SKIP_REST : CONTINUE.request_headers;
        }
        if (!eos) return CONTINUE.request_headers;
        return { request_headers: {}, dynamic_metadata: requestMetadata(ex, this.opts.metadata) };
      }
      case 'request_body':
        return this.onRequestBody(ex, msg.request_body ?? {});
      case 'request_trailers':
        if (this.llm) {
          ex.onRequestTrailers();
          return { request_trailers: {}, dynamic_metadata: requestMetadata(ex, this.opts.metadata) };
        }
        return CONTINUE.request_trailers;
      case 'response_headers': {
        if (!this.llm) return CONTINUE.response_headers;
        const h = msg.response_headers!;
        ex.onResponseHeaders(headerMap(h.headers), h.end_of_stream === true);
        const budgetHeaders = this.decision?.responseHeaders;
        const answer: WireProcessingResponse =
          budgetHeaders && Object.keys(budgetHeaders).length > 0
            ? { response_headers: { response: { header_mutation: headerMutation(budgetHeaders) } } }
            : { response_headers: {} };
        return endsResponse(msg, this.responseBodyMode) ? this.final(answer) : answer;
      }
      case 'response_body':
        return this.onResponseBody(ex, msg.response_body ?? {}, endsResponse(msg, this.responseBodyMode));
      case 'response_trailers':
        if (!this.llm) return CONTINUE.response_trailers;
        ex.onResponseTrailers();
        return this.final({ response_trailers: {} });
    }
  }

  private onRequestBody(ex: Exchange, body: WireHttpBody): WireProcessingResponse | Promise<WireProcessingResponse> {
    const eos = body.end_of_stream === true;
    const governor = this.opts.governor;
    if (this.requestDuplex) {
      if (this.llm) {
        ex.onRequestBody(body.body ?? EMPTY, eos);
        // Earlier chunks already went upstream: too late to refuse, not to flag.
        if (eos) this.flagOnly(ex);
      }
      return echo('request_body', body);
    }
    if (!this.llm) return CONTINUE.request_body;
    const rewrite = ex.onRequestBody(body.body ?? EMPTY, eos);
    if (!eos || !governor) return this.requestBodyAnswer(ex, eos, rewrite);
    if (this.observability) {
      this.flagOnly(ex);
      return this.requestBodyAnswer(ex, eos, rewrite);
    }
    // Policies and budgets decide before anything reaches the upstream, then the answer.
    const decision = governor.admit(governed(ex));
    if (decision instanceof Promise) return decision.then((d) => this.decided(ex, eos, rewrite, d));
    return this.decided(ex, eos, rewrite, decision);
  }

  /** A request that cannot be refused (mirrored, or partly upstream already) is only flagged. */
  private flagOnly(ex: Exchange): void {
    if (this.opts.governor?.flag(governed(ex))) ex.unsanctioned = true;
  }

  private decided(ex: Exchange, eos: boolean, rewrite: RequestBodyRewrite | null, decision: GovernorDecision | null): WireProcessingResponse {
    this.decision = decision;
    if (decision?.unsanctioned) ex.unsanctioned = true;
    // When Envoy went away while the ledger was deciding, the exchange is recorded: settle now.
    this.settle();
    if (!decision?.reject) return this.requestBodyAnswer(ex, eos, rewrite);
    const r = decision.reject;
    ex.rejectLocally(r.status, r.blockedBy);
    return {
      immediate_response: {
        status: { code: r.status },
        headers: headerMutation(r.headers),
        body: Buffer.from(r.body, 'utf8'),
        details: r.details,
      },
      dynamic_metadata: requestMetadata(ex, this.opts.metadata),
    };
  }

  private requestBodyAnswer(ex: Exchange, eos: boolean, rewrite: RequestBodyRewrite | null): WireProcessingResponse {
    const set: Record<string, string> = {};
    const common: WireCommonResponse = {};
    if (rewrite) {
      common.body_mutation = { body: rewrite.body };
      Object.assign(set, rewrite.setHeaders);
      if (rewrite.contentLength !== null) set['content-length'] = String(rewrite.contentLength);
    }
    const modelHeader = this.opts.metadata.model_header;
    if (modelHeader && eos && ex.model) {
      set[modelHeader] = ex.model;
      common.clear_route_cache = true;
    }
    if (Object.keys(set).length > 0) common.header_mutation = headerMutation(set);
    const answer: WireProcessingResponse = { request_body: Object.keys(common).length > 0 ? { response: common } : {} };
    if (eos) answer.dynamic_metadata = requestMetadata(ex, this.opts.metadata);
    return answer;
  }

  private onResponseBody(ex: Exchange, body: WireHttpBody, last: boolean): WireProcessingResponse | Promise<WireProcessingResponse> {
    const chunk = body.body ?? EMPTY;
    const eos = body.end_of_stream === true;
    if (!this.llm) return this.responseDuplex ? echo('response_body', body) : CONTINUE.response_body;
    const replacement = ex.onResponseBody(chunk, eos);
    const cap = this.decision?.outputCap;
    if (cap && !eos && ex.streamedOutputTokens() > cap.tokens) {
      // The response headers already went downstream: Envoy can only reset the client's stream.
      ex.stopStream(cap.budgets);
      return this.complete().then(() => ({
        immediate_response: {
          status: { code: 429 },
          body: Buffer.from('{"error":{"message":"budget exhausted during the response","code":"budget_exceeded"}}'),
          details: 'tokenwarden_budget_exhausted_mid_stream',
        },
      }));
    }
    let answer: WireProcessingResponse;
    if (this.responseDuplex) {
      answer = { response_body: { response: { body_mutation: { streamed_response: { body: replacement ?? chunk, end_of_stream: eos } } } } };
    } else if (replacement) {
      answer = { response_body: { response: { body_mutation: { body: replacement } } } };
    } else {
      // Most chunks: the answer every stream sends, encoded once.
      if (!last) return CONTINUE.response_body;
      answer = { response_body: {} };
    }
    return last ? this.final(answer) : answer;
  }

  /** The last answer of the exchange carries the full dynamic metadata. */
  private final(answer: WireProcessingResponse): Promise<WireProcessingResponse> {
    return this.complete().then((record) => {
      if (record) answer.dynamic_metadata = exchangeMetadata(record, this.opts.metadata);
      // Mirrored traffic: nothing more is needed, so release Envoy's side stream now instead of
      // holding it for its deferred_close_timeout.
      if (this.observability) this.finishFromServer();
      return answer;
    });
  }

  /** The exchange's record, made once (the last answer's metadata, a stopped stream, the end). */
  private complete(): Promise<ExchangeRecord | null> {
    const ex = this.exchange;
    if (!ex || !this.llm) return Promise.resolve(null);
    this.recording ??= ex.finish().then((record) => {
      this.recorded = record;
      this.opts.observer.record(record);
      this.settle();
      return record;
    });
    return this.recording;
  }

  /** Once per stream, when both the record and the decision exist. Never holds up an answer to Envoy. */
  private settle(): void {
    if (this.settled || !this.decision || !this.recorded || !this.opts.governor) return;
    this.settled = true;
    const { usage, costMicroUsd } = this.recorded;
    void this.opts.governor.finish(this.decision, { usage, costMicroUsd });
  }

}

const EMPTY = new Uint8Array(0);

/** The request as governance sees it (called only for LLM traffic, once the request is complete). */
function governed(ex: Exchange): GovernedRequest {
  const route = ex.route!;
  return {
    provider: route.provider,
    api: route.api,
    model: ex.model ?? '',
    consumerId: ex.consumer?.id ?? null,
    requestId: ex.requestId,
    estimate: () => ex.admissionInput(),
  };
}

/** The unchanged answers sent as they are (never given metadata or mutations afterwards). */
const CONTINUE = {
  request_headers: constantAnswer({ request_headers: {} }),
  request_body: constantAnswer({ request_body: {} }),
  request_trailers: constantAnswer({ request_trailers: {} }),
  response_headers: constantAnswer({ response_headers: {} }),
  response_body: constantAnswer({ response_body: {} }),
  response_trailers: constantAnswer({ response_trailers: {} }),
};
const SKIP_REST = constantAnswer({ request_headers: {}, mode_override: SKIP_REST_OVERRIDE });

function echo(kind: 'request_body' | 'response_body', body: WireHttpBody | undefined): WireProcessingResponse {
  const streamed = { body: body?.body ?? EMPTY, end_of_stream: body?.end_of_stream === true };
  return { [kind]: { response: { body_mutation: { streamed_response: streamed } } } };
}
