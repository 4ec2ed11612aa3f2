/**
 * One Envoy ext_proc filter instance for one HTTP request (spec §11): the state machine that turns
 * HTTP-side events into ProcessingRequests and applies the server's answers. It holds, releases
 * and mutates headers/body/trailers and hands whatever passes the filter to its host (the emulated
 * upstream or downstream). All I/O goes through `FilterHost`.
 */
import {
  BodySendMode as BM,
  HeaderSendMode as HM,
  ResponseStatus,
  responseKind,
  type RequestKind,
  type ResponseKind,
  type WireCommonResponse,
  type WireHeaderMutation,
  type WireImmediateResponse,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';
import { modeFromWire, type Mode, type ResolvedConfig } from './config.js';
import type { HeaderList } from './headers.js';
import { buildLocalReply, replaceWhitespace, type LocalReply } from './local-reply.js';
import { applyBodyMutation, applyHeaderMutation, bodyMutationKind, headerForwarded } from './mutations.js';
import type { SideStream, SideStreamHandler, StreamEnd } from './side-stream.js';
import { fromStruct, structOf, toStruct, toValue, type JsonObject } from './struct.js';

export type Direction = 'request' | 'response';
type Cb = 'IDLE' | 'HEADERS' | 'BUF_BODY' | 'STREAM_BODY' | 'PARTIAL_BODY' | 'TRAILERS';
type Status = { kind: 'ok' } | { kind: 'spurious'; text: string } | { kind: 'error'; text: string };

const OK: Status = { kind: 'ok' };
const spurious = (text = 'spurious message'): Status => ({ kind: 'spurious', text });
const ATTRIBUTES_KEY = 'envoy.filters.http.ext_proc';

export interface Counters {
  streams_started: number;
  stream_msgs_sent: number;
  stream_msgs_received: number;
  spurious_msgs_received: number;
  streams_closed: number;
  streams_failed: number;
  failure_mode_allowed: number;
  message_timeouts: number;
  rejected_header_mutations: number;
  override_message_timeout_received: number;
  override_message_timeout_ignored: number;
  clear_route_cache_ignored: number;
  clear_route_cache_disabled: number;
  immediate_responses_sent: number;
  server_half_closed: number;
}

export function newCounters(): Counters {
  return {
    streams_started: 0,
    stream_msgs_sent: 0,
    stream_msgs_received: 0,
    spurious_msgs_received: 0,
    streams_closed: 0,
    streams_failed: 0,
    failure_mode_allowed: 0,
    message_timeouts: 0,
    rejected_header_mutations: 0,
    override_message_timeout_received: 0,
    override_message_timeout_ignored: 0,
    clear_route_cache_ignored: 0,
    clear_route_cache_disabled: 0,
    immediate_responses_sent: 0,
    server_half_closed: 0,
  };
}

export interface SentMessage {
  kind: RequestKind;
  /** end_of_stream of headers/body messages (trailers: always true) */
  eos: boolean;
  body?: Buffer;
  headers?: Array<[string, string]>;
  message: WireProcessingRequest;
}

export interface ReceivedMessage {
  kind: ResponseKind | 'override_message_timeout' | 'empty';
  /** what the filter did with it */
  outcome: 'applied' | 'ignored' | 'spurious' | 'error';
  message: WireProcessingResponse;
}

export interface FilterHost {
  emitHeaders(d: Direction, headers: HeaderList, eos: boolean): void;
  emitData(d: Direction, data: Buffer, eos: boolean): void;
  emitTrailers(d: Direction, trailers: HeaderList): void;
  /** a local reply made by the filter (immediate_response or an error) */
  localReply(r: LocalReply): void;
  /** buffered body over the stream buffer limit: the filter manager's 413/500 */
  bufferOverflow(d: Direction): void;
  openStream(handler: SideStreamHandler): SideStream;
  /** called after every event the filter handled (lets the host re-check waiters) */
  stateChanged(): void;
}

export interface FilterInputs {
  attributes: Record<string, string | number | boolean>;
  /** the request's dynamic metadata; answers merge into it */
  dynamicMetadata: Record<string, JsonObject>;
  connectionMetadata: Record<string, JsonObject>;
}

class Dir {
  sendHdr = true;
  bodyMode: number = BM.NONE;
  sendTrl = false;
  cb: Cb = 'IDLE';
  headers: HeaderList | null = null;
  /** headers have passed the filter */
  gateOpen = false;
  /** headers may still be mutated (Envoy's headers_ != nullptr) */
  hdrsMutable = false;
  /** processed data that must wait behind held headers */
  heldOut: Array<{ data: Buffer; eos: boolean }> = [];
  trailers: HeaderList | null = null;
  trailersArrived = false;
  trailersHeld = false;
  trlSent = false;
  noBody = false;
  completeBody = false;
  bodySeen = false;
  bodyReplaced = false;
  partialDone = false;
  /** data held by the filter manager and not yet sent to the server */
  pending: Buffer | null = null;
  /** STREAMED / BUFFERED_PARTIAL chunks sent and awaiting their answers, FIFO */
  queue: Array<{ data: Buffer; eos: boolean }> = [];
  attrsSent = false;
  timer: NodeJS.Timeout | undefined;
  overrideUsed = false;

  constructor(readonly name: Direction) {}

  setMode(m: Mode): void {
    const req = this.name === 'request';
    this.sendHdr = (req ? m.request_header_mode : m.response_header_mode) !== HM.SKIP;
    this.sendTrl = (req ? m.request_trailer_mode : m.response_trailer_mode) === HM.SEND;
    this.bodyMode = req ? m.request_body_mode : m.response_body_mode;
  }

  get noExternalProcess(): boolean {
    return !this.sendHdr && !this.sendTrl && this.bodyMode === BM.NONE;
  }

  queueBytes(): number {
    return this.queue.reduce((n, c) => n + c.data.length, 0);
  }

  /** Merge every queued chunk into one (Envoy's consolidateStreamedChunks). */
  consolidate(): { data: Buffer; eos: boolean } {
    const last = this.queue[this.queue.length - 1];
    const merged = { data: Buffer.concat(this.queue.map((c) => c.data)), eos: last?.eos ?? false };
    this.queue = [merged];
    return merged;
  }
}

const concat = (a: Buffer | null, b: Buffer): Buffer => (a ? Buffer.concat([a, b]) : Buffer.from(b));
const isSet = (o: object | null | undefined, k: string): boolean =>
  o != null && Object.prototype.hasOwnProperty.call(o, k) && (o as Record<string, unknown>)[k] != null;

export class ExtProcFilter implements SideStreamHandler {
  readonly counters = newCounters();
  readonly sent: SentMessage[] = [];
  readonly received: ReceivedMessage[] = [];
  /** request-path answers that cleared the route cache */
  routeCacheClears = 0;
  private complete = false;
  private destroyed = false;
  private stream: SideStream | undefined;
  private streamState: 'NONE' | 'OPEN' | 'CLOSED' = 'NONE';
  private protoCfgSent = false;
  private deferredClose: NodeJS.Timeout | undefined;
  private readonly req = new Dir('request');
  private readonly resp = new Dir('response');

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly host: FilterHost,
    private readonly inputs: FilterInputs,
  ) {
    this.req.setMode(cfg.mode);
    this.resp.setMode(cfg.mode);
  }

  /** Nothing is awaited from the server for this direction. */
  isIdle(d: Direction): boolean {
    return this.complete || this.dir(d).cb === 'IDLE';
  }

  /** Resolves when the side stream is over (undefined if none was opened). */
  streamEnded(): Promise<StreamEnd | undefined> {
    return this.stream ? this.stream.ended : Promise.resolve(undefined);
  }

  private dir(d: Direction): Dir {
    return d === 'request' ? this.req : this.resp;
  }

  // ---------------------------------------------------------------- HTTP-side events

  onHeaders(name: Direction, h: HeaderList, eos: boolean): void {
    const d = this.dir(name);
    d.headers = h;
    d.noBody = eos;
    if (eos) d.completeBody = true;
    if (this.cfg.observability && d.sendHdr) {
      this.send(d, 'headers', { headers: h, eos });
      this.release(d);
    } else {
      let held = false;
      if (d.sendHdr && !this.complete) {
        d.hdrsMutable = true;
        this.send(d, 'headers', { headers: h, eos });
        this.startCall(d, 'HEADERS');
        held = true;
      }
      if (!this.complete && this.stripContentLength(d)) h.remove('content-length');
      if (name === 'response' && d.noExternalProcess) this.closeMaybeGraceful();
      if (!held) this.release(d);
    }
    this.host.stateChanged();
  }

  onData(name: Direction, data: Buffer, eos: boolean): void {
    this.handleData(this.dir(name), data, eos);
    this.host.stateChanged();
  }

  private handleData(d: Dir, data: Buffer, eos: boolean): void {
    d.bodySeen = true;
    if (this.cfg.observability) {
      if (d.bodyMode === BM.STREAMED) this.send(d, 'body', { body: data, eos });
      this.passData(d, data, eos);
      return;
    }
    if (eos) d.completeBody = true;
    if (d.bodyReplaced) {
      if (eos) this.passData(d, Buffer.alloc(0), true);
      return;
    }
    if (this.complete) {
      this.passData(d, data, eos);
      return;
    }
    const sendsDuringHeaders = d.bodyMode === BM.FULL_DUPLEX_STREAMED || (d.bodyMode === BM.STREAMED && this.cfg.sbww);
    if (d.cb === 'HEADERS' && !sendsDuringHeaders) {
      d.pending = concat(d.pending, data);
      if (d.bodyMode === BM.BUFFERED && d.pending.length > this.cfg.bufferLimit) this.host.bufferOverflow(d.name);
      return;
    }
    switch (d.bodyMode) {
      case BM.BUFFERED:
        d.pending = concat(d.pending, data);
        if (d.pending.length > this.cfg.bufferLimit) {
          this.host.bufferOverflow(d.name);
          return;
        }
        if (eos) {
          this.send(d, 'body', { body: d.pending, eos: true });
          this.startCall(d, 'BUF_BODY');
        }
        return;
      case BM.STREAMED:
        this.send(d, 'body', { body: data, eos });
        d.queue.push({ data: Buffer.from(data), eos });
        this.startCall(d, d.cb === 'HEADERS' ? 'HEADERS' : 'STREAM_BODY');
        return;
      case BM.FULL_DUPLEX_STREAMED:
        this.send(d, 'body', { body: data, eos });
        this.startCall(d, d.cb === 'HEADERS' ? 'HEADERS' : 'STREAM_BODY');
        return;
      case BM.BUFFERED_PARTIAL: {
        if (d.partialDone) {
          d.hdrsMutable = false;
          this.passData(d, data, eos);
          return;
        }
        d.queue.push({ data: Buffer.from(data), eos });
        if (d.cb === 'PARTIAL_BODY') return;
        if (eos || d.queueBytes() > this.cfg.bufferLimit) {
          const all = d.consolidate();
          this.send(d, 'body', { body: all.data, eos: all.eos });
          this.startCall(d, 'PARTIAL_BODY');
        }
        return;
      }
      default:
        this.passData(d, data, eos);
    }
  }

  onTrailers(name: Direction, t: HeaderList): void {
    this.handleTrailers(this.dir(name), t);
    this.host.stateChanged();
  }

  private handleTrailers(d: Dir, t: HeaderList): void {
    d.trailers = t;
    d.trailersArrived = true;
    d.trailersHeld = true;
    if (this.complete) {
      this.release(d);
      return;
    }
    if (this.cfg.observability && d.sendTrl) {
      this.send(d, 'trailers', { trailers: t });
      this.release(d);
      return;
    }
    const bodyWasComplete = d.completeBody;
    d.completeBody = true;
    if (d.cb !== 'IDLE' && d.bodyMode !== BM.FULL_DUPLEX_STREAMED) return;
    if (!bodyWasComplete) {
      if (d.bodyMode === BM.BUFFERED && d.pending) {
        this.send(d, 'body', { body: d.pending, eos: false });
        this.startCall(d, 'BUF_BODY');
        return;
      }
      if (d.bodyMode === BM.BUFFERED_PARTIAL && d.queue.length > 0) {
        this.send(d, 'body', { body: d.consolidate().data, eos: false });
        this.startCall(d, 'PARTIAL_BODY');
        return;
      }
    }
    if (!d.sendTrl) {
      this.release(d);
      return;
    }
    this.sendTrailers(d);
  }

  /** The HTTP stream is over (completed or reset): stop timers, close or defer-close the stream. */
  onDestroy(): void {
    if (this.destroyed) return;
    this.complete = true;
    this.stopTimer(this.req);
    this.stopTimer(this.resp);
    if (this.streamState === 'OPEN' && this.cfg.observability) {
      // Observability mode keeps the stream so queued messages can still be written (§2.2).
      const stream = this.stream;
      this.deferredClose = setTimeout(() => this.closeStream(false), this.cfg.deferredCloseMs);
      void stream?.ended.then(() => clearTimeout(this.deferredClose));
    } else {
      this.closeMaybeGraceful();
    }
    this.destroyed = true;
  }

  // ---------------------------------------------------------------- passing data on

  /** Let held headers, pending data and held trailers continue, in order. */
  private release(d: Dir, moreFollows = false): void {
    if (!d.headers) return;
    if (!d.gateOpen) {
      d.gateOpen = true;
      d.hdrsMutable = false;
      const more = moreFollows || !d.noBody || d.heldOut.length > 0 || d.pending !== null || d.trailersHeld;
      this.host.emitHeaders(d.name, d.headers, !more);
    }
    for (const c of d.heldOut.splice(0)) {
      if (c.data.length > 0 || c.eos) this.host.emitData(d.name, c.data, c.eos);
    }
    if (d.pending !== null) {
      const data = d.pending;
      d.pending = null;
      const eos = !moreFollows && d.completeBody && !d.trailersArrived;
      if (data.length > 0 || eos) this.host.emitData(d.name, data, eos);
    }
    if (d.trailersHeld && d.trailers) {
      d.trailersHeld = false;
      this.host.emitTrailers(d.name, d.trailers);
    }
  }

  /** Data the filter (re)injects: waits behind held headers. */
  private forward(d: Dir, data: Buffer, eos: boolean): void {
    if (!d.gateOpen) d.heldOut.push({ data, eos });
    else if (data.length > 0 || eos) this.host.emitData(d.name, data, eos);
  }

  /** A data callback returning Continue: the filter manager also continues held headers. */
  private passData(d: Dir, data: Buffer, eos: boolean): void {
    if (!d.gateOpen) this.release(d, true);
    this.forward(d, data, eos);
  }

  private stripContentLength(d: Dir): boolean {
    if (this.cfg.keepContentLength) return false;
    return (
      d.bodyMode === BM.STREAMED ||
      d.bodyMode === BM.FULL_DUPLEX_STREAMED ||
      d.bodyMode === BM.BUFFERED_PARTIAL ||
      (d.bodyMode === BM.BUFFERED && !d.sendHdr)
    );
  }

  // ---------------------------------------------------------------- outbound messages

  private send(
    d: Dir,
    what: 'headers' | 'body' | 'trailers',
    p: { headers?: HeaderList; body?: Buffer; trailers?: HeaderList; eos?: boolean },
  ): void {
    if (this.complete || this.streamState === 'CLOSED') return;
    if (this.streamState === 'NONE') {
      this.stream = this.host.openStream(this);
      this.streamState = 'OPEN';
      this.counters.streams_started++;
    }
    const kind = `${d.name}_${what}` as RequestKind;
    const eos = what === 'trailers' ? true : (p.eos ?? false);
    const msg: WireProcessingRequest = {};
    const headerProto = (h: HeaderList) => ({
      headers: h
        .entries()
        .filter(([k]) => headerForwarded(k, this.cfg.allowedHeaders, this.cfg.disallowedHeaders))
        .map(([key, raw_value]) => ({ key, raw_value })),
    });
    if (what === 'headers') Object.assign(msg, { [kind]: { headers: headerProto(p.headers!), end_of_stream: eos } });
    else if (what === 'body') Object.assign(msg, { [kind]: { body: p.body ?? Buffer.alloc(0), end_of_stream: eos } });
    else Object.assign(msg, { [kind]: { trailers: headerProto(p.trailers!) } });
    msg.metadata_context = { filter_metadata: this.forwardedMetadata() };
    if (this.cfg.observability) msg.observability_mode = true;
    const attrs = d.name === 'request' ? this.cfg.requestAttributes : this.cfg.responseAttributes;
    if (!d.attrsSent && attrs.length > 0) {
      d.attrsSent = true;
      const fields: Record<string, ReturnType<typeof toValue>> = {};
      for (const a of attrs) {
        const v = this.inputs.attributes[a];
        if (v !== undefined) fields[a] = toValue(v);
      }
      msg.attributes = { [ATTRIBUTES_KEY]: { fields } };
    }
    if (!this.protoCfgSent && !this.cfg.observability) {
      this.protoCfgSent = true;
      msg.protocol_config = {
        request_body_mode: this.req.bodyMode,
        response_body_mode: this.resp.bodyMode,
        send_body_without_waiting_for_header_response: this.cfg.sbww,
      };
    }
    this.stream!.write(msg);
    this.counters.stream_msgs_sent++;
    const shown = p.headers ?? p.trailers;
    this.sent.push({
      kind,
      eos,
      ...(p.body !== undefined ? { body: Buffer.from(p.body) } : {}),
      ...(shown ? { headers: shown.toArray() } : {}),
      message: msg,
    });
  }

  private sendTrailers(d: Dir): void {
    if (d.trlSent || !d.trailers) return;
    d.trlSent = true;
    this.send(d, 'trailers', { trailers: d.trailers });
    this.startCall(d, d.cb === 'IDLE' ? 'TRAILERS' : d.cb);
  }

  private forwardedMetadata(): Record<string, ReturnType<typeof toStruct>> {
    const out: Record<string, ReturnType<typeof toStruct>> = {};
    for (const ns of this.cfg.forwardingNamespaces) {
      const v = this.inputs.dynamicMetadata[ns] ?? this.inputs.connectionMetadata[ns];
      if (v) out[ns] = toStruct(v);
    }
    return out;
  }

  private startCall(d: Dir, cb: Cb): void {
    d.cb = cb;
    d.overrideUsed = false;
    if (d.bodyMode !== BM.FULL_DUPLEX_STREAMED && !this.cfg.observability) {
      this.stopTimer(d);
      d.timer = setTimeout(() => this.onTimer(d), this.cfg.messageTimeoutMs);
    }
  }

  private finishCall(d: Dir, next: Cb = 'IDLE'): void {
    this.stopTimer(d);
    d.cb = next;
    d.overrideUsed = false;
  }

  private stopTimer(d: Dir): void {
    if (d.timer) clearTimeout(d.timer);
    d.timer = undefined;
  }

  // ---------------------------------------------------------------- server messages

  onMessage(m: WireProcessingResponse): void {
    if (this.destroyed) return;
    const kind = responseKind(m);
    const rec: ReceivedMessage = { kind: kind ?? 'empty', outcome: 'applied', message: m };
    this.received.push(rec);
    if (this.cfg.observability || this.complete) {
      rec.outcome = 'ignored';
      return;
    }
    if (m.override_message_timeout != null) {
      rec.kind = 'override_message_timeout';
      this.handleOverride(m.override_message_timeout);
      this.host.stateChanged();
      return;
    }
    this.maybeOverrideMode(m);
    let eosSeen = false;
    let st: Status;
    switch (kind) {
      case 'request_headers':
      case 'response_headers': {
        const d = this.dir(kind === 'request_headers' ? 'request' : 'response');
        this.applyDynamicMetadata(m);
        st = this.onHeadersAnswer(d, (kind === 'request_headers' ? m.request_headers : m.response_headers)?.response);
        break;
      }
      case 'request_body':
      case 'response_body': {
        const d = this.dir(kind === 'request_body' ? 'request' : 'response');
        const c = (kind === 'request_body' ? m.request_body : m.response_body)?.response;
        eosSeen = this.isLastBodyResponse(d, c);
        this.applyDynamicMetadata(m);
        st = this.onBodyAnswer(d, c ?? {});
        break;
      }
      case 'request_trailers':
      case 'response_trailers': {
        const d = this.dir(kind === 'request_trailers' ? 'request' : 'response');
        this.applyDynamicMetadata(m);
        st = this.onTrailersAnswer(d, (kind === 'request_trailers' ? m.request_trailers : m.response_trailers)?.header_mutation);
        break;
      }
      case 'immediate_response':
        if (this.cfg.disableImmediate) st = spurious('unhandled immediate response due to config disabled it');
        else {
          this.applyDynamicMetadata(m);
          this.complete = true;
          this.finishCall(this.req);
          this.finishCall(this.resp);
          this.closeMaybeGraceful();
          this.sendLocalReply(this.renderImmediate(m.immediate_response ?? {}));
          st = OK;
        }
        break;
      default:
        // Empty messages and streamed_immediate_response (not modelled) are unhandled.
        st = spurious('unhandled message');
    }
    if (st.kind === 'ok') {
      this.counters.stream_msgs_received++;
    } else if (st.kind === 'spurious') {
      rec.outcome = 'spurious';
      this.counters.spurious_msgs_received++;
      if (this.effectiveFma() || !this.cfg.failCloseSpurious) this.failOpen();
      else this.errorReply(this.cfg.statusOnError, st.text);
    } else {
      rec.outcome = 'error';
      this.counters.stream_msgs_received++;
      this.errorReply(this.cfg.statusOnError, st.text);
    }
    if (kind) this.closeIfLast(kind, eosSeen);
    this.host.stateChanged();
  }

  onServerClose(code: number, details: string): void {
    if (this.destroyed) return;
    this.streamState = 'CLOSED';
    if (code === 0) {
      if (!this.complete) {
        this.complete = true;
        this.counters.streams_closed++;
        this.counters.server_half_closed++;
        this.clearAsyncState(this.req);
        this.clearAsyncState(this.resp);
      }
    } else {
      this.counters.streams_failed++;
      if (!this.complete) {
        this.counters.server_half_closed++;
        if (this.effectiveFma()) {
          this.complete = true;
          this.counters.streams_closed++;
          this.counters.failure_mode_allowed++;
          this.clearAsyncState(this.req);
          this.clearAsyncState(this.resp);
        } else {
          this.errorReply(this.cfg.statusOnError, `ext_proc_error_gRPC_error_${code}{${details}}`);
        }
      }
    }
    this.host.stateChanged();
  }

  private onTimer(d: Dir): void {
    d.timer = undefined;
    if (this.complete) return;
    this.counters.message_timeouts++;
    if (this.effectiveFma()) {
      this.failOpen();
    } else {
      this.errorReply(504, 'ext_proc_error_per-message_timeout_exceeded');
    }
    this.host.stateChanged();
  }

  private handleOverride(dur: NonNullable<WireProcessingResponse['override_message_timeout']>): void {
    const s = dur.seconds;
    const seconds = typeof s === 'number' ? s : s ? s.toNumber() : 0;
    const ms = seconds * 1000 + Math.trunc((dur.nanos ?? 0) / 1e6);
    if (!Number.isFinite(ms) || ms < 1 || ms > this.cfg.maxMessageTimeoutMs) {
      this.counters.override_message_timeout_ignored++;
      return;
    }
    let restarted = false;
    for (const d of [this.req, this.resp]) {
      if (d.timer && !d.overrideUsed) {
        this.stopTimer(d);
        d.timer = setTimeout(() => this.onTimer(d), ms);
        d.overrideUsed = true;
        restarted = true;
      }
    }
    if (restarted) this.counters.override_message_timeout_received++;
    else this.counters.override_message_timeout_ignored++;
  }

  /** §3.1: honoured only while a headers answer is awaited, never with sbww or a static FULL_DUPLEX. */
  private maybeOverrideMode(m: WireProcessingResponse): void {
    const s = this.cfg.mode;
    if (
      !this.cfg.allowModeOverride ||
      this.cfg.sbww ||
      s.request_body_mode === BM.FULL_DUPLEX_STREAMED ||
      s.response_body_mode === BM.FULL_DUPLEX_STREAMED ||
      (this.req.cb !== 'HEADERS' && this.resp.cb !== 'HEADERS') ||
      m.mode_override == null
    ) {
      return;
    }
    const o = modeFromWire(m.mode_override);
    const keep = (ov: number, st: number): number => (ov === HM.DEFAULT ? st : ov);
    const eff: Mode = {
      request_header_mode: keep(o.request_header_mode, s.request_header_mode),
      response_header_mode: keep(o.response_header_mode, s.response_header_mode),
      request_trailer_mode: keep(o.request_trailer_mode, s.request_trailer_mode),
      response_trailer_mode: keep(o.response_trailer_mode, s.response_trailer_mode),
      request_body_mode: o.request_body_mode,
      response_body_mode: o.response_body_mode,
    };
    const allowed =
      this.cfg.allowedModes.length === 0 ||
      this.cfg.allowedModes.some(
        (a) =>
          a.request_body_mode === eff.request_body_mode &&
          a.request_trailer_mode === eff.request_trailer_mode &&
          a.response_header_mode === eff.response_header_mode &&
          a.response_body_mode === eff.response_body_mode &&
          a.response_trailer_mode === eff.response_trailer_mode,
      );
    if (!allowed) return;
    this.req.setMode(eff);
    this.resp.setMode(eff);
  }

  private onHeadersAnswer(d: Dir, c: WireCommonResponse | null | undefined): Status {
    if (d.cb !== 'HEADERS') return spurious();
    const common = c ?? {};
    const replacing = common.status === ResponseStatus.CONTINUE_AND_REPLACE;
    if (isSet(common, 'header_mutation')) {
      const err = this.mutate(d.headers!, common.header_mutation!, replacing, this.stripContentLength(d));
      if (err) return { kind: 'error', text: err };
    }
    this.routeCache(d, common);
    if (replacing) {
      this.finishCall(d);
      if (isSet(common, 'body_mutation')) {
        d.headers!.remove('content-length');
        d.bodyReplaced = true;
        d.pending = applyBodyMutation(common.body_mutation!, d.pending ?? Buffer.alloc(0));
      }
      d.queue = [];
      d.bodyMode = BM.NONE;
      d.sendTrl = false;
      this.release(d);
      return OK;
    }
    this.finishCall(d, this.cbAfterHeaders(d));
    this.continueAfterHeaders(d);
    return OK;
  }

  private cbAfterHeaders(d: Dir): Cb {
    if (d.bodyMode === BM.STREAMED && this.cfg.sbww && d.queue.length > 0) return 'STREAM_BODY';
    if (d.bodyMode === BM.FULL_DUPLEX_STREAMED) {
      if (d.bodySeen) return 'STREAM_BODY';
      if (d.trailersArrived) return 'TRAILERS';
    }
    return 'IDLE';
  }

  /** ProcessorState::handleHeaderContinue. */
  private continueAfterHeaders(d: Dir): void {
    if (d.noBody) {
      this.trailersOrRelease(d);
    } else if (d.completeBody && d.bodyMode !== BM.NONE) {
      if (d.cb === 'IDLE') {
        if (d.pending) {
          // The whole body arrived while the headers were out: one message, handled like BUFFERED.
          this.send(d, 'body', { body: d.pending, eos: !d.trailersArrived });
          this.startCall(d, 'BUF_BODY');
        } else {
          this.trailersOrRelease(d);
        }
      } else {
        this.sendPendingStreamed(d, !d.trailersArrived);
      }
    } else if (d.bodyMode === BM.BUFFERED) {
      // Headers stay held until the body answer so that it can still change them.
    } else if (d.bodyMode === BM.STREAMED || d.bodyMode === BM.FULL_DUPLEX_STREAMED) {
      this.sendPendingStreamed(d, false);
      this.release(d);
    } else if (d.bodyMode === BM.BUFFERED_PARTIAL) {
      if (d.pending && d.pending.length > 0) d.queue.push({ data: d.pending, eos: false });
      d.pending = null;
      if (d.queueBytes() > this.cfg.bufferLimit) {
        this.send(d, 'body', { body: d.consolidate().data, eos: false });
        this.startCall(d, 'PARTIAL_BODY');
      }
    } else {
      this.trailersOrRelease(d);
    }
  }

  private sendPendingStreamed(d: Dir, eos: boolean): void {
    if (!d.pending || d.pending.length === 0) return;
    const data = d.pending;
    d.pending = null;
    this.send(d, 'body', { body: data, eos });
    if (d.bodyMode === BM.STREAMED) d.queue.push({ data, eos });
    this.startCall(d, 'STREAM_BODY');
  }

  /** ProcessorState::handleTrailersAndCleanup. */
  private trailersOrRelease(d: Dir): void {
    if (d.sendTrl && d.trailersHeld) this.sendTrailers(d);
    else this.release(d);
  }

  private isLastBodyResponse(d: Dir, c: WireCommonResponse | null | undefined): boolean {
    if (d.bodyMode === BM.STREAMED) return d.queue[0]?.eos ?? false;
    if (d.bodyMode === BM.FULL_DUPLEX_STREAMED) return c?.body_mutation?.streamed_response?.end_of_stream === true;
    return false;
  }

  private onBodyAnswer(d: Dir, c: WireCommonResponse): Status {
    if (d.cb !== 'BUF_BODY' && d.cb !== 'STREAM_BODY' && d.cb !== 'PARTIAL_BODY') return spurious();
    const bm = isSet(c, 'body_mutation') ? c.body_mutation! : undefined;
    const hm = isSet(c, 'header_mutation') ? c.header_mutation! : undefined;
    let cont: boolean;
    if (d.cb === 'BUF_BODY') {
      if (hm && d.hdrsMutable) {
        const err = this.mutate(d.headers!, hm, c.status === ResponseStatus.CONTINUE_AND_REPLACE, this.stripContentLength(d));
        if (err) return { kind: 'error', text: err };
      }
      if (bm) {
        const cl = d.hdrsMutable ? d.headers!.get('content-length')?.trim() : undefined;
        const newLength = bodyMutationKind(bm) === 'body' ? (bm.body?.length ?? 0) : 0;
        if (cl !== undefined && /^\d+$/.test(cl) && Number(cl) !== newLength) {
          return { kind: 'error', text: 'mismatch between content length and the length of the mutated body' };
        }
        d.pending = applyBodyMutation(bm, d.pending ?? Buffer.alloc(0));
      }
      this.finishCall(d);
      cont = true;
    } else if (d.cb === 'STREAM_BODY') {
      if (bm && bodyMutationKind(bm) === 'streamed_response') {
        if (d.bodyMode !== BM.FULL_DUPLEX_STREAMED) {
          return spurious('spurious message: streamed_response is received while body_mode_ is not FULL_DUPLEX_STREAMED');
        }
        const sr = bm.streamed_response!;
        const eos = sr.end_of_stream === true;
        this.forward(d, Buffer.from(sr.body ?? []), eos);
        this.finishCall(d, eos ? 'IDLE' : 'STREAM_BODY');
        cont = eos;
      } else if (d.bodyMode === BM.FULL_DUPLEX_STREAMED) {
        return spurious('spurious message: Normal body mutation response is received while body_mode_ is FULL_DUPLEX_STREAMED');
      } else {
        const chunk = d.queue.shift();
        if (!chunk) return spurious();
        this.forward(d, bm ? applyBodyMutation(bm, chunk.data) : chunk.data, chunk.eos);
        this.finishCall(d, d.queue.length === 0 ? 'IDLE' : 'STREAM_BODY');
        cont = chunk.eos;
      }
    } else {
      const chunk = d.queue.shift();
      if (!chunk) return spurious();
      if (hm && d.hdrsMutable) {
        const err = this.mutate(d.headers!, hm, c.status === ResponseStatus.CONTINUE_AND_REPLACE, this.stripContentLength(d));
        if (err) return { kind: 'error', text: err };
      }
      this.forward(d, bm ? applyBodyMutation(bm, chunk.data) : chunk.data, chunk.eos);
      this.finishCall(d);
      if (d.queue.length > 0) {
        const rest = d.consolidate();
        d.queue = [];
        this.forward(d, rest.data, rest.eos);
      }
      d.partialDone = true;
      cont = true;
    }
    this.routeCache(d, c);
    d.hdrsMutable = false;
    if (d.sendTrl && d.trailersHeld && d.queue.length === 0) this.sendTrailers(d);
    else if (cont || (d.trailersHeld && d.queue.length === 0)) this.release(d);
    return OK;
  }

  private onTrailersAnswer(d: Dir, hm: WireHeaderMutation | null | undefined): Status {
    if (d.cb !== 'TRAILERS' && d.bodyMode !== BM.FULL_DUPLEX_STREAMED) return spurious();
    d.cb = 'TRAILERS';
    if (hm && d.trailersHeld && d.trailers) {
      const err = this.mutate(d.trailers, hm, false, false);
      if (err) return { kind: 'error', text: err };
    }
    this.finishCall(d);
    this.release(d);
    return OK;
  }

  private mutate(h: HeaderList, m: WireHeaderMutation, replacing: boolean, dropContentLength: boolean): string | undefined {
    const r = applyHeaderMutation(h, m, {
      rules: this.cfg.rules,
      replacing,
      dropContentLength,
      maxHeadersCount: this.cfg.maxHeadersCount,
      maxHeadersKb: this.cfg.maxHeadersKb,
    });
    this.counters.rejected_header_mutations += r.rejected;
    return r.error;
  }

  /** §4.7: only request-path answers of a downstream filter, and only with a header_mutation. */
  private routeCache(d: Dir, c: WireCommonResponse): void {
    if (d.name !== 'request') return;
    const requested = c.clear_route_cache === true;
    if (!isSet(c, 'header_mutation')) {
      if (requested) this.counters.clear_route_cache_ignored++;
      return;
    }
    if (this.cfg.disableClearRouteCache || this.cfg.routeCacheAction === 'RETAIN') {
      if (requested) this.counters.clear_route_cache_disabled++;
      return;
    }
    if (this.cfg.routeCacheAction === 'CLEAR' || requested) this.routeCacheClears++;
  }

  /** §5.1: only receiving namespaces, merged per top-level key. */
  private applyDynamicMetadata(m: WireProcessingResponse): void {
    if (m.dynamic_metadata == null || this.cfg.receivingNamespaces.length === 0) return;
    for (const [ns, v] of Object.entries(m.dynamic_metadata.fields ?? {})) {
      if (!this.cfg.receivingNamespaces.includes(ns)) continue;
      const target = (this.inputs.dynamicMetadata[ns] ??= {});
      Object.assign(target, fromStruct(structOf(v)));
    }
  }

  /** §1.6-1: close right after the last answer the filter can need. */
  private closeIfLast(kind: ResponseKind, eosSeen: boolean): void {
    if (!this.cfg.closeOptimization || this.streamState !== 'OPEN') return;
    const respUnconfigured = this.resp.noExternalProcess;
    let last: boolean;
    switch (kind) {
      case 'request_headers':
        last = this.lastAfterHeaders(this.req) && respUnconfigured;
        break;
      case 'request_body':
        last = this.lastAfterBody(this.req, eosSeen) && respUnconfigured;
        break;
      case 'request_trailers':
        last = respUnconfigured;
        break;
      case 'response_headers':
        last = this.lastAfterHeaders(this.resp);
        break;
      case 'response_body':
        last = this.lastAfterBody(this.resp, eosSeen);
        break;
      case 'response_trailers':
        last = true;
        break;
      default:
        last = false;
    }
    if (last) this.closeMaybeGraceful();
  }

  private lastAfterHeaders(d: Dir): boolean {
    if (d.cb !== 'IDLE') return false;
    if (d.noBody) return true;
    if (d.bodyMode === BM.NONE) return !d.sendTrl || (d.completeBody && !d.trailersArrived);
    return !d.sendTrl && d.trailersArrived;
  }

  private lastAfterBody(d: Dir, eosSeen: boolean): boolean {
    if (d.cb !== 'IDLE') return false;
    return eosSeen || (!d.sendTrl && d.trailersArrived);
  }

  // ---------------------------------------------------------------- endings

  private effectiveFma(): boolean {
    const fdWithBody = (d: Dir): boolean => d.bodyMode === BM.FULL_DUPLEX_STREAMED && d.bodySeen;
    return this.cfg.fma && !fdWithBody(this.req) && !fdWithBody(this.resp);
  }

  /** Release everything held, unmodified, and ignore the processor from now on. */
  private clearAsyncState(d: Dir): void {
    this.finishCall(d);
    if (d.queue.length > 0) {
      const rest = d.consolidate();
      d.queue = [];
      this.forward(d, rest.data, rest.eos);
    }
    this.release(d);
  }

  private failOpen(): void {
    this.counters.failure_mode_allowed++;
    this.complete = true;
    this.closeStream(false);
    this.clearAsyncState(this.req);
    this.clearAsyncState(this.resp);
  }

  private errorReply(status: number, text: string): void {
    this.complete = true;
    this.finishCall(this.req);
    this.finishCall(this.resp);
    this.closeStream(false);
    this.sendLocalReply(buildLocalReply({ status, details: text, grpcRequest: this.isGrpcRequest() }));
  }

  private renderImmediate(ir: WireImmediateResponse): LocalReply {
    const code = ir.status?.code ?? 200;
    return buildLocalReply({
      status: code >= 200 ? code : 200,
      body: ir.body ?? Buffer.alloc(0),
      details: ir.details ?? '',
      ...(ir.grpc_status != null ? { grpcStatus: ir.grpc_status.status ?? 0 } : {}),
      grpcRequest: this.isGrpcRequest(),
      // Rejected entries are skipped; errors are only logged by Envoy, the reply still goes out.
      mutate: (h) => {
        if (isSet(ir, 'headers')) this.mutate(h, ir.headers!, false, false);
      },
    });
  }

  private sendLocalReply(r: LocalReply): void {
    this.counters.immediate_responses_sent++;
    this.host.localReply({ ...r, details: replaceWhitespace(r.details) });
  }

  private isGrpcRequest(): boolean {
    return this.req.headers?.get('content-type')?.startsWith('application/grpc') ?? false;
  }

  private closeMaybeGraceful(): void {
    this.closeStream(this.cfg.graceful);
  }

  /** Closing always ends processing (Envoy sets processing_complete_). */
  private closeStream(graceful: boolean): void {
    this.complete = true;
    if (this.streamState !== 'OPEN' || !this.stream) return;
    this.streamState = 'CLOSED';
    if (!this.stream.isFinished) this.counters.streams_closed++;
    if (graceful) this.stream.closeGraceful(this.cfg.remoteCloseMs);
    else this.stream.closeHard();
  }
}
