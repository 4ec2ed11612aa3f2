/**
 * One simulated HTTP exchange over raw `node:http2`: one gRPC Process stream, the scenario's messages
 * sent in Envoy's order. In the sidecar mode each message waits for its answer (as Envoy does) and a
 * mode_override is honoured; in observability mode everything is sent at once and nothing is awaited.
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

export interface ExchangeResult {
  /** gRPC status name as ghz prints it ("OK", "Unavailable", ...). */
  status: string;
  /** Why the exchange failed, null when it completed as expected. */
  error: string | null;
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
  timeoutMs: number,
): Promise<ExchangeResult> {
  const stream = session.request(REQUEST_HEADERS, { endStream: false });
  const reader = new FrameReader();
  const queue: Answer[] = [];
  let waiting: ((a: Answer | null) => void) | null = null;
  let grpcStatus: number | null = null;
  let grpcMessage = '';
  let streamError: string | null = null;
  let closedFlag = false;

  const readStatus = (h: http2.IncomingHttpHeaders): void => {
    const s = h['grpc-status'];
    if (s !== undefined) {
      grpcStatus = Number(s);
      grpcMessage = decodeURIComponent(String(h['grpc-message'] ?? ''));
    }
  };
  stream.on('response', readStatus);
  stream.on('trailers', readStatus);
  stream.on('data', (chunk: Buffer) => {
    const at = process.hrtime.bigint();
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
  try {
    if (plan.scenario.observability) await mirror(stream, plan, headers);
    else await converse(stream, plan, headers, sink, next);
  } catch (e) {
    protocolError = (e as Error).message;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }
  await closed;
  clearTimeout(timer);
  // Answers that arrived after the last expected one (or any in observability mode) break the protocol.
  for (const a of queue) {
    const kind = decodeResponse(a.body).response ?? 'empty';
    sink.answer(kind);
    protocolError ??= `unexpected answer ${kind}`;
  }
  const status = grpcStatus === null ? 'Unavailable' : statusName(grpcStatus);
  if (protocolError) return { status, error: protocolError };
  if (grpcStatus === null) return { status, error: streamError ?? 'stream closed without a gRPC status' };
  if (grpcStatus !== 0) return { status, error: `rpc error: code = ${status} desc = ${grpcMessage || streamError || ''}` };
  return { status, error: null };
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
  stream.end();
}

async function mirror(stream: http2.ClientHttp2Stream, plan: PreparedScenario, headers: Buffer): Promise<void> {
  for (const step of plan.steps) {
    // The server may end the RPC early (it has all it needs): stop mirroring then, like Envoy.
    if (stream.closed || stream.destroyed) return;
    if (!stream.write(step === plan.steps[0] ? headers : step.frame)) await new Promise<void>((resolve) => {
      stream.once('drain', resolve);
      stream.once('close', resolve);
    });
  }
  if (!stream.closed && !stream.destroyed) stream.end();
}
