/**
 * One HTTP exchange around one ext_proc filter: a downstream client delivering the request in the
 * given chunks, the fake upstream (contacted when the filter releases the request headers, answering
 * once the request is complete), and Envoy's local-reply delivery (spec §3.2: through the response
 * path / directly to the client / stream reset).
 */
import type * as grpc from '@grpc/grpc-js';
import { ExtProcFilter, type Counters, type Direction, type FilterHost, type ReceivedMessage, type SentMessage } from './filter.js';
import { HeaderList, type HeaderInput } from './headers.js';
import { buildLocalReply, type LocalReply } from './local-reply.js';
import { SideStream, type SideStreamHandler, type StreamEnd } from './side-stream.js';
import type { JsonObject } from './struct.js';
import type { ResolvedConfig } from './config.js';

/**
 * When an HTTP event is delivered, relative to the previous one:
 * 'none' = in the same tick (one network read), 'idle' = once the filter awaits no answer in that
 * direction (or processing ended), a number = after that many milliseconds.
 */
export type Wait = 'none' | 'idle' | number;
export type ChunkInput = string | Uint8Array | { data: string | Uint8Array; wait?: Wait };

export interface MessageInput {
  headers: HeaderInput;
  /** each chunk is one data callback; the last one carries end_of_stream unless trailers follow */
  body_chunks?: ChunkInput[];
  trailers?: HeaderInput;
  /** default wait before each chunk and before the trailers; default 'none' */
  pacing?: Wait;
  trailers_wait?: Wait;
}

export interface UpstreamRequest {
  headers: HeaderList;
  body: Buffer;
  trailers?: HeaderList;
}

export interface UpstreamResponse extends MessageInput {
  /** time the upstream takes before its response headers */
  delay_ms?: number;
}

export type UpstreamSpec = UpstreamResponse | ((req: UpstreamRequest) => UpstreamResponse | Promise<UpstreamResponse>);

export interface ExchangeInput {
  request: MessageInput;
  /** default: 200 with no body */
  upstream?: UpstreamSpec;
  /** values of the configured request/response attributes, e.g. {'source.address': '10.0.0.1:5555'} */
  attributes?: Record<string, string | number | boolean>;
  /** the request's dynamic metadata before ext_proc runs (forwarding_namespaces read it) */
  dynamic_metadata?: Record<string, JsonObject>;
  connection_metadata?: Record<string, JsonObject>;
}

export interface LocalReplyInfo {
  status: number;
  details: string;
  source: 'ext_proc' | 'envoy';
  /** local: sent through the response path; direct: straight to the client; reset: stream reset */
  delivery: 'local' | 'direct' | 'reset';
}

export interface DownstreamView {
  status?: number;
  headers?: HeaderList;
  body: Buffer;
  trailers?: HeaderList;
  complete: boolean;
  reset: boolean;
  localReply?: LocalReplyInfo;
}

export interface UpstreamView {
  contacted: boolean;
  headers?: HeaderList;
  body: Buffer;
  /** data callbacks as the upstream received them */
  chunks: Buffer[];
  trailers?: HeaderList;
  complete: boolean;
  /** the upstream request was reset (a local reply ended the stream) */
  reset: boolean;
  responded: boolean;
}

export interface ExchangeResult {
  downstream: DownstreamView;
  upstream: UpstreamView;
  /** the request's dynamic metadata after the exchange, per namespace */
  dynamicMetadata: Record<string, JsonObject>;
  sent: SentMessage[];
  answers: ReceivedMessage[];
  counters: Counters;
  streamEnd?: StreamEnd;
  routeCacheClears: number;
  /** inconsistencies detected by the emulator itself (should stay empty) */
  errors: string[];
}

interface Chunk {
  data: Buffer;
  wait: Wait;
}

const toBuf = (d: string | Uint8Array): Buffer => (typeof d === 'string' ? Buffer.from(d) : Buffer.from(d));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Side {
  headers?: HeaderList;
  chunks: Buffer[];
  trailers?: HeaderList;
  complete: boolean;
}

export class Exchange implements FilterHost {
  private readonly filter: ExtProcFilter;
  private readonly down: Side & { reset: boolean; localReply?: LocalReplyInfo } = { chunks: [], complete: false, reset: false };
  private readonly up: Side & { contacted: boolean; reset: boolean; responded: boolean } = {
    chunks: [],
    complete: false,
    contacted: false,
    reset: false,
    responded: false,
  };
  private readonly errors: string[] = [];
  private readonly dynamicMetadata: Record<string, JsonObject>;
  /** the decoder chain ended (local reply): no more request events, upstream gets nothing more */
  private requestStopped = false;
  /** response headers reached the filter (upstream response or local reply) */
  private responseStarted = false;
  /** the upstream will not (or no longer) deliver its response */
  private upstreamCut = false;
  private finished = false;
  private finish!: () => void;
  private readonly done = new Promise<void>((r) => (this.finish = r));
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];
  private idleTimer: NodeJS.Timeout | undefined;
  /** the client speaks gRPC: Envoy renders its own local replies as gRPC errors */
  private readonly grpcRequest: boolean;

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly client: grpc.Client,
    private readonly input: ExchangeInput,
    private readonly initialMetadata?: Record<string, string>,
  ) {
    this.dynamicMetadata = structuredClone(input.dynamic_metadata ?? {});
    this.grpcRequest = HeaderList.request(input.request.headers).get('content-type')?.startsWith('application/grpc') ?? false;
    this.filter = new ExtProcFilter(cfg, this, {
      attributes: input.attributes ?? {},
      dynamicMetadata: this.dynamicMetadata,
      connectionMetadata: input.connection_metadata ?? {},
    });
  }

  async run(): Promise<ExchangeResult> {
    this.touch();
    this.deliver('request', this.input.request).catch((e: unknown) => this.abort(e));
    await this.done;
    clearTimeout(this.idleTimer);
    this.filter.onDestroy();
    const streamEnd = await this.filter.streamEnded();
    return {
      downstream: {
        ...(this.down.headers ? { headers: this.down.headers, status: Number(this.down.headers.get(':status')) } : {}),
        body: Buffer.concat(this.down.chunks),
        ...(this.down.trailers ? { trailers: this.down.trailers } : {}),
        complete: this.down.complete,
        reset: this.down.reset,
        ...(this.down.localReply ? { localReply: this.down.localReply } : {}),
      },
      upstream: {
        contacted: this.up.contacted,
        ...(this.up.headers ? { headers: this.up.headers } : {}),
        body: Buffer.concat(this.up.chunks),
        chunks: this.up.chunks,
        ...(this.up.trailers ? { trailers: this.up.trailers } : {}),
        complete: this.up.complete,
        reset: this.up.reset,
        responded: this.up.responded,
      },
      dynamicMetadata: this.dynamicMetadata,
      sent: this.filter.sent,
      answers: this.filter.received,
      counters: this.filter.counters,
      ...(streamEnd ? { streamEnd } : {}),
      routeCacheClears: this.filter.routeCacheClears,
      errors: this.errors,
    };
  }

  // ---------------------------------------------------------------- driving the filter

  private stopped(d: Direction): boolean {
    return this.finished || (d === 'request' ? this.requestStopped : this.upstreamCut);
  }

  private async deliver(d: Direction, m: MessageInput): Promise<void> {
    const chunks: Chunk[] = (m.body_chunks ?? []).map((c) =>
      typeof c === 'object' && !(c instanceof Uint8Array)
        ? { data: toBuf(c.data), wait: c.wait ?? m.pacing ?? 'none' }
        : { data: toBuf(c), wait: m.pacing ?? 'none' },
    );
    const trailers = m.trailers ? new HeaderList(m.trailers) : undefined;
    const headers = d === 'request' ? HeaderList.request(m.headers) : new HeaderList(m.headers);
    if (this.stopped(d)) return;
    if (d === 'response') this.responseStarted = true;
    this.touch();
    this.filter.onHeaders(d, headers, chunks.length === 0 && !trailers);
    for (const [i, c] of chunks.entries()) {
      if (c.wait !== 'none') await this.pause(d, c.wait);
      if (this.stopped(d)) return;
      this.touch();
      this.filter.onData(d, c.data, i === chunks.length - 1 && !trailers);
    }
    if (trailers) {
      const wait = m.trailers_wait ?? m.pacing ?? 'none';
      if (wait !== 'none') await this.pause(d, wait);
      if (this.stopped(d)) return;
      this.touch();
      this.filter.onTrailers(d, trailers);
    }
  }

  private pause(d: Direction, wait: Exclude<Wait, 'none'>): Promise<void> {
    if (typeof wait === 'number') return sleep(wait);
    return new Promise((resolve) => {
      const check = (): boolean => this.stopped(d) || this.filter.isIdle(d);
      if (check()) resolve();
      else this.waiters.push({ check, resolve });
    });
  }

  stateChanged(): void {
    const ready = this.waiters.filter((w) => w.check());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  /** HCM stream_idle_timeout: restarted by every HTTP-side event. */
  private touch(): void {
    clearTimeout(this.idleTimer);
    if (this.finished || this.cfg.streamIdleTimeoutMs <= 0) return;
    this.idleTimer = setTimeout(() => {
      this.envoyLocalReply(504, 'stream_idle_timeout');
    }, this.cfg.streamIdleTimeoutMs);
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.stateChanged();
    this.finish();
  }

  private async respond(): Promise<void> {
    const spec = this.input.upstream ?? { headers: [[':status', '200']] };
    let res: UpstreamResponse;
    try {
      const view: UpstreamRequest = {
        headers: this.up.headers!.clone(),
        body: Buffer.concat(this.up.chunks),
        ...(this.up.trailers ? { trailers: this.up.trailers.clone() } : {}),
      };
      res = typeof spec === 'function' ? await spec(view) : spec;
    } catch (e) {
      this.errors.push(`upstream fixture threw: ${(e as Error).message}`);
      this.envoyLocalReply(503, 'upstream_reset_before_response_started');
      return;
    }
    if (res.delay_ms) await sleep(res.delay_ms);
    if (this.upstreamCut || this.finished || this.responseStarted) return;
    this.up.responded = true;
    await this.deliver('response', res);
  }

  /** An exception inside the emulator: record it and end the exchange as a reset. */
  private abort(e: unknown): void {
    this.errors.push(`emulator failure: ${e instanceof Error ? e.stack : String(e)}`);
    this.down.reset = true;
    this.end();
  }

  // ---------------------------------------------------------------- FilterHost

  openStream(handler: SideStreamHandler): SideStream {
    return new SideStream(this.client, handler, this.initialMetadata);
  }

  emitHeaders(d: Direction, h: HeaderList, eos: boolean): void {
    this.touch();
    const side = this.sink(d);
    if (!side) return;
    if (side.headers) this.errors.push(`${d} headers emitted twice`);
    side.headers = h.clone();
    if (d === 'request') this.up.contacted = true;
    if (eos) this.completed(d);
  }

  emitData(d: Direction, data: Buffer, eos: boolean): void {
    this.touch();
    const side = this.sink(d);
    if (!side) return;
    if (!side.headers) this.errors.push(`${d} data emitted before headers`);
    if (side.complete) this.errors.push(`${d} data emitted after end of stream`);
    if (data.length > 0) side.chunks.push(Buffer.from(data));
    if (eos) this.completed(d);
  }

  emitTrailers(d: Direction, t: HeaderList): void {
    this.touch();
    const side = this.sink(d);
    if (!side) return;
    if (!side.headers) this.errors.push(`${d} trailers emitted before headers`);
    if (side.complete) this.errors.push(`${d} trailers emitted after end of stream`);
    side.trailers = t.clone();
    this.completed(d);
  }

  /** Where what passes the filter goes, or undefined once that side was cut off. */
  private sink(d: Direction): Side | undefined {
    if (d === 'request') return this.requestStopped ? undefined : this.up;
    return this.finished ? undefined : this.down;
  }

  private completed(d: Direction): void {
    if (d === 'request') {
      this.up.complete = true;
      setImmediate(() => this.respond().catch((e: unknown) => this.abort(e)));
    } else {
      this.down.complete = true;
      this.end();
    }
  }

  localReply(r: LocalReply): void {
    this.deliverLocalReply(r, 'ext_proc');
  }

  bufferOverflow(d: Direction): void {
    if (d === 'request') this.envoyLocalReply(413, 'request_payload_too_large', 'Payload Too Large');
    else this.envoyLocalReply(500, 'response_payload_too_large', 'Internal Server Error');
  }

  private envoyLocalReply(status: number, details: string, body = ''): void {
    this.deliverLocalReply(buildLocalReply({ status, details, body: Buffer.from(body), grpcRequest: this.grpcRequest }), 'envoy');
  }

  /** Envoy's filter manager sendLocalReply (spec §3.2). */
  private deliverLocalReply(r: LocalReply, source: LocalReplyInfo['source']): void {
    if (this.finished) return;
    const info = (delivery: LocalReplyInfo['delivery']): LocalReplyInfo => ({ status: r.status, details: r.details, source, delivery });
    if (!this.responseStarted) {
      // No response yet: the reply runs through the encoder path (and so through this filter).
      this.down.localReply = info('local');
      this.requestStopped = true;
      this.responseStarted = true;
      if (this.up.contacted) this.up.reset = true;
      this.upstreamCut = true;
      this.stateChanged();
      queueMicrotask(() => {
        if (this.finished) return;
        this.touch();
        this.filter.onHeaders('response', r.headers, r.body.length === 0);
        if (r.body.length > 0 && !this.finished) this.filter.onData('response', r.body, true);
      });
      return;
    }
    this.requestStopped = true;
    this.upstreamCut = true;
    if (!this.down.headers) {
      // Response headers exist but were not sent: straight to the codec, bypassing the filters.
      this.down.localReply = info('direct');
      this.down.headers = r.headers;
      this.down.chunks = r.body.length > 0 ? [r.body] : [];
      this.down.complete = true;
    } else {
      this.down.localReply = info('reset');
      this.down.reset = true;
    }
    this.end();
  }
}
