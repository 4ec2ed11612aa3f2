/**
 * One simulated HTTP exchange over raw `node:http2`: one gRPC Process stream, the scenario's messages
 * sent in Envoy's order. In the sidecar mode each message waits for its answer (as Envoy does) and a
 * mode_override is honoured; in observability mode everything is sent at once and nothing is awaited.
 * The RPC then ends the way Envoy ends it (spec §1.6, `CloseStyle`): unless the server has already
 * ended it with its trailers, END_STREAM and at once RST_STREAM(CANCEL) (Envoy's default), or
 * END_STREAM and up to 1 s for the trailers before the reset (`ext_proc_graceful_grpc_close`); in
 * observability mode only after up to 5 s for the server to end it (deferred_close_timeout).
 * Messages are encoded and framed once per scenario (`prepare`) so the driver spends its CPU on I/O.
 */
import http2 from 'node:http2';
import {
  BodySendMode,
  decodeResponse,
  encodeRequest,
  HeaderSendMode,
  PROCESS_PATH,
} from '../../src/extproc/protocol.js';
import { frame, FrameReader } from './grpc-frame.js';
import { scenarioSteps, type Phase, type Scenario } from './scenarios.js';

export interface PreparedStep {
  /** The message kind, which is also the answer kind expected for it. */
  phase: Phase;
  frame: Buffer;
}

export interface PreparedScenario {
  scenario: Scenario;
  steps: readonly PreparedStep[];
  /** The request headers message of each consumer (`Scenario.consumers`), taken in turn per exchange. */
  requestHeaderFrames: readonly Buffer[];
  /** Exchanges started with this plan: picks the next consumer. */
  started: number;
}

export function prepare(scenario: Scenario): PreparedScenario {
  const steps = scenarioSteps(scenario).map((s) => ({ phase: s.phase, frame: frame(encodeRequest(s.message)) }));
  const requestHeaderFrames = Array.from({ length: Math.max(1, scenario.consumers) }, (_, i) =>
    i === 0 ? steps[0]!.frame : frame(encodeRequest(scenarioSteps(scenario, i)[0]!.message)),
  );
  return { scenario, steps, requestHeaderFrames, started: 0 };
}

/** Where an exchange reports what it saw; the load loop aggregates it. */
export interface ExchangeSink {
  /** Round trip of one message (send to answer), in ns. */
  phase(phase: Phase, ns: number): void;
  answer(kind: string): void;
  /** The server switched the rest of the exchange off (non-LLM traffic). */
  modeOverride(): void;
}

/**
 * How the driver ends each RPC once it has every answer it needs (spec §1.6):
 * - `envoy`: Envoy's default. If the server has not ended the RPC yet (no trailers with grpc-status),
 *   END_STREAM immediately followed by RST_STREAM(CANCEL).
 * - `graceful`: the runtime key `ext_proc_graceful_grpc_close` (Envoy >= 1.34): END_STREAM, then
 *   wait up to `GRACEFUL_CLOSE_WAIT_MS` for the server's trailers, then RST_STREAM(CANCEL).
 */
export type CloseStyle = 'envoy' | 'graceful';
export const CLOSE_STYLES: readonly CloseStyle[] = ['envoy', 'graceful'];
/** Envoy's `remote_close_timeout_milliseconds` default. */
export const GRACEFUL_CLOSE_WAIT_MS = 1000;
/** Envoy's `deferred_close_timeout` default (observability mode, spec §2.2). */
export const DEFERRED_CLOSE_MS = 5000;

/**
 * How a completed exchange's RPC ended: `server` — the server ended it (OK trailers) before the
 * driver closed anything, so the driver's END_STREAM finished it; `half-close` — the server ended it
 * after the driver's END_STREAM (graceful style only); `reset` — the driver reset it, as Envoy does,
 * after receiving every answer (not an error).
 */
export type RpcEnd = 'server' | 'half-close' | 'reset';

export interface ExchangeResult {
  /** gRPC status name as ghz prints it ("OK", "Unavailable", ...); "Canceled" for an RPC the driver reset. */
  status: string;
  /** Why the exchange failed, null when it completed as expected. */
  error: string | null;
  /** How the RPC ended once every answer had arrived; null when the exchange failed before. */
  end: RpcEnd | null;
  /**
   * The stream never reached the server: refused (REFUSED_STREAM) unsent — Node's HTTP/2 refuses
   * the streams still queued on a connection when its GOAWAY arrives — or not opened because the
   * connection had just gone away. Nothing was processed, so the exchange may be replayed on another
   * connection (RFC 9113 §8.7), as Envoy's pool would.
   */
  refused?: boolean;
}

export interface ExchangeOptions {
  timeoutMs: number;
  close: CloseStyle;
}

const STATUS_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss',
  'Unauthenticated',
];

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `Code(${code})`;
}

const REQUEST_HEADERS = {
  ':method': 'POST',
  ':path': PROCESS_PATH,
  'content-type': 'application/grpc',
  te: 'trailers',
};

interface Answer {
  body: Buffer;
  at: bigint;
}

class ExchangeFailed extends Error {}

/** Plays one exchange on `session`; never rejects (failures come back in the result). */
export async function runExchange(
  session: http2.ClientHttp2Session,
  plan: PreparedScenario,
  sink: ExchangeSink,
  options: ExchangeOptions,
): Promise<ExchangeResult> {
  const { timeoutMs } = options;
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session.request(REQUEST_HEADERS, { endStream: false });
  } catch (e) {
    // The session went away between being picked and used (GOAWAY, close): nothing was sent.
    return { status: 'Unavailable', error: `no stream: ${(e as Error).message}`, end: null, refused: true };
  }
  const reader = new FrameReader();
  const queue: Answer[] = [];
  let waiting: ((a: Answer | null) => void) | null = null;
  let grpcStatus: number | null = null;
  let grpcMessage = '';
  let streamError: string | null = null;
  let closedFlag = false;
  let received = false;

  let onServerEnd = (): void => {};
  const serverEnd = new Promise<void>((resolve) => (onServerEnd = resolve));
  const readStatus = (h: http2.IncomingHttpHeaders): void => {
    received = true;
    const s = h['grpc-status'];
    if (s !== undefined) {
      grpcStatus = Number(s);
      grpcMessage = decodeURIComponent(String(h['grpc-message'] ?? ''));
      onServerEnd();
    }
  };
  stream.on('response', readStatus);
  stream.on('trailers', readStatus);
  stream.on('data', (chunk: Buffer) => {
    const at = process.hrtime.bigint();
    received = true;
    let messages: Buffer[];
    try {
      messages = reader.push(chunk);
    } catch (e) {
      streamError = (e as Error).message;
      stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    for (const body of messages) {
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ body, at });
      } else queue.push({ body, at });
    }
  });
  stream.on('error', (e: Error) => {
    streamError ??= e.message;
  });
  const closed = new Promise<void>((resolve) =>
    stream.on('close', () => {
      closedFlag = true;
      if (waiting) waiting(null);
      waiting = null;
      resolve();
    }),
  );
  const timer = setTimeout(() => {
    streamError ??= `no end after ${timeoutMs} ms`;
    grpcStatus ??= 4;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }, timeoutMs);

  const next = (): Promise<Answer | null> => {
    const a = queue.shift();
    if (a) return Promise.resolve(a);
    if (closedFlag) return Promise.resolve(null);
    return new Promise((resolve) => (waiting = resolve));
  };

  const headers = plan.requestHeaderFrames[plan.started++ % plan.requestHeaderFrames.length]!;
  let protocolError: string | null = null;
  let end: RpcEnd | null = null;
  try {
    if (plan.scenario.observability) await mirror(stream, plan, headers, () => grpcStatus !== null);
    else await converse(stream, plan, headers, sink, next);
    end = await endRpc(stream, options.close, () => grpcStatus !== null, serverEnd, closed, plan.scenario.observability ? DEFERRED_CLOSE_MS : 0);
  } catch (e) {
    protocolError = (e as Error).message;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }
  await closed;
  clearTimeout(timer);
  if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && !received && grpcStatus === null) {
    return { status: 'Unavailable', error: 'stream refused', end: null, refused: true };
  }
  // Answers that arrived after the last expected one (or any in observability mode) break the protocol.
  for (const a of queue) {
    const kind = decodeResponse(a.body).response ?? 'empty';
    sink.answer(kind);
    protocolError ??= `unexpected answer ${kind}`;
  }
  // A reset after the last answer is how Envoy ends the RPC, not a failure: "Canceled", unless the
  // server's trailers still came in (they were already on the way).
  const status = grpcStatus === null ? (end === 'reset' ? 'Canceled' : 'Unavailable') : statusName(grpcStatus);
  if (protocolError) return { status, error: protocolError, end: null };
  if (grpcStatus === null && end !== 'reset') return { status, error: streamError ?? 'stream closed without a gRPC status', end: null };
  if (grpcStatus !== null && grpcStatus !== 0) return { status, error: `rpc error: code = ${status} desc = ${grpcMessage || streamError || ''}`, end: null };
  return { status, error: null, end };
}

/**
 * Ends the RPC once the exchange has every answer it needs (`CloseStyle`). Resolves with how it
 * ended, or null when the stream was already gone without the server's trailers (a failure the
 * caller reports). `deferMs` (observability mode): Envoy keeps the side stream open after the HTTP
 * stream ended, until the server finishes it or `deferred_close_timeout` fires (spec §2.2), and only
 * then closes it in its close style.
 */
async function endRpc(
  stream: http2.ClientHttp2Stream,
  style: CloseStyle,
  serverEnded: () => boolean,
  serverEnd: Promise<void>,
  closed: Promise<void>,
  deferMs: number,
): Promise<RpcEnd | null> {
  if (deferMs > 0 && !serverEnded() && !stream.closed && !stream.destroyed) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([serverEnd, closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, deferMs)))]);
    clearTimeout(timer);
  }
  if (serverEnded()) {
    // The server's trailers came first: Envoy only closes its own side, nothing is reset.
    if (!stream.closed && !stream.destroyed) stream.end();
    return 'server';
  }
  if (stream.closed || stream.destroyed) return null;
  stream.end();
  if (style === 'envoy') {
    // Node writes the END_STREAM DATA frame before the RST_STREAM, as Envoy's codec does.
    stream.close(http2.constants.NGHTTP2_CANCEL);
    return 'reset';
  }
  let reset = false;
  const timer = setTimeout(() => {
    if (serverEnded() || stream.closed || stream.destroyed) return;
    reset = true;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }, GRACEFUL_CLOSE_WAIT_MS);
  await closed;
  clearTimeout(timer);
  return reset ? 'reset' : serverEnded() ? 'half-close' : null;
}

async function converse(
  stream: http2.ClientHttp2Stream,
  plan: PreparedScenario,
  headers: Buffer,
  sink: ExchangeSink,
  next: () => Promise<Answer | null>,
): Promise<void> {
  let requestBody: number = BodySendMode.BUFFERED;
  let responseHeaders: number = HeaderSendMode.SEND;
  let responseBody: number = BodySendMode.STREAMED;
  for (const step of plan.steps) {
    if (step.phase === 'request_body' && requestBody === BodySendMode.NONE) continue;
    if (step.phase === 'response_headers' && responseHeaders === HeaderSendMode.SKIP) continue;
    if (step.phase === 'response_body' && responseBody === BodySendMode.NONE) continue;
    const sent = process.hrtime.bigint();
    stream.write(step === plan.steps[0] ? headers : step.frame);
    const a = await next();
    if (a === null) throw new ExchangeFailed(`stream ended before the answer to ${step.phase}`);
    const answer = decodeResponse(a.body);
    const kind = answer.response ?? 'empty';
    sink.answer(kind);
    sink.phase(step.phase, Number(a.at - sent));
    if (kind === 'immediate_response') break;
    if (kind !== step.phase) throw new ExchangeFailed(`answer ${kind} to ${step.phase}`);
    const o = answer.mode_override;
    if (o != null) {
      // Envoy replaces the body modes wholesale; an unset header mode keeps the current one.
      if (o.response_header_mode) responseHeaders = o.response_header_mode;
      requestBody = o.request_body_mode ?? BodySendMode.NONE;
      responseBody = o.response_body_mode ?? BodySendMode.NONE;
      sink.modeOverride();
    }
  }
}

/**
 * Observability mode: every message written at once, no answer awaited. The server may end the RPC
 * early (it has all it needs): mirroring stops then, like Envoy.
 */
async function mirror(stream: http2.ClientHttp2Stream, plan: PreparedScenario, headers: Buffer, serverEnded: () => boolean): Promise<void> {
  for (const step of plan.steps) {
    if (serverEnded() || stream.closed || stream.destroyed) return;
    if (!stream.write(step === plan.steps[0] ? headers : step.frame)) await drained(stream);
  }
}

function drained(stream: http2.ClientHttp2Stream): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}
