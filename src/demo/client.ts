/**
 * A minimal ext_proc client that plays Envoy's part for one HTTP exchange, with the sidecar
 * processing mode (request headers SEND + body BUFFERED, response headers SEND + body STREAMED):
 * one gRPC stream per exchange, one message at a time, each answer awaited, then a half-close.
 * It honours a mode_override and an immediate_response like Envoy; it ignores header and body
 * mutations (there is no real client or provider behind it).
 */
import * as grpc from '@grpc/grpc-js';
import { fromStruct } from '../extproc/messages.js';
import type { MetadataValue } from '../extproc/struct.js';
import {
  BodySendMode,
  decodeResponse,
  encodeRequest,
  HeaderSendMode,
  PROCESS_PATH,
  type ResponseKind,
  type WireHttpHeaders,
  type WireProcessingMode,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../extproc/protocol.js';
import type { DemoSample, HeaderList } from './samples.js';

export interface ExchangeOutcome {
  /** Dynamic metadata Envoy would hold after the exchange, merged per namespace and key. */
  metadata: Record<string, Record<string, MetadataValue>>;
  /** tokenwarden switched the rest of the exchange off at the request headers (not LLM traffic). */
  skippedRest: boolean;
  /** tokenwarden rewrote the request body (e.g. added stream_options.include_usage). */
  requestBodyRewritten: boolean;
  /** HTTP status of an immediate_response (the request was answered locally), else null. */
  immediateStatus: number | null;
}

/** The stream ended or failed before tokenwarden answered a message. */
export class SideStreamError extends Error {
  constructor(
    message: string,
    readonly code: grpc.status | null,
  ) {
    super(message);
  }
}

// Answers may carry a rewritten request body as large as the request itself.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class ExtProcClient {
  private readonly client: grpc.Client;

  constructor(
    target: string,
    private readonly timeoutMs: number,
  ) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
  }

  close(): void {
    this.client.close();
  }

  async exchange(sample: DemoSample, requestId: string): Promise<ExchangeOutcome> {
    const call = this.client.makeBidiStreamRequest<WireProcessingRequest, WireProcessingResponse>(
      PROCESS_PATH,
      encodeRequest,
      decodeResponse,
      new grpc.Metadata(),
      { deadline: Date.now() + this.timeoutMs },
    );
    const stream = new SideStream(call);
    try {
      return await play(stream, sample, requestId);
    } finally {
      await stream.halfClose();
    }
  }
}

async function play(stream: SideStream, sample: DemoSample, requestId: string): Promise<ExchangeOutcome> {
  const outcome: ExchangeOutcome = { metadata: {}, skippedRest: false, requestBodyRewritten: false, immediateStatus: null };
  const mode = { responseHeaders: HeaderSendMode.SEND as number, requestBody: BodySendMode.BUFFERED as number, responseBody: BodySendMode.STREAMED as number };
  const body = sample.request.body === undefined ? null : Buffer.from(sample.request.body, 'utf8');

  /** Sends one message and applies its answer; false when the exchange ended (immediate response). */
  const step = async (msg: WireProcessingRequest, expected: ResponseKind): Promise<boolean> => {
    const answer = await stream.send(msg);
    mergeMetadata(outcome.metadata, answer);
    const kind = answer.response;
    if (kind === 'immediate_response') {
      outcome.immediateStatus = answer.immediate_response?.status?.code ?? 0;
      return false;
    }
    if (kind !== expected) throw new SideStreamError(`expected an answer to ${expected}, got ${kind ?? 'an empty message'}`, null);
    if (answer.mode_override != null) applyOverride(mode, answer.mode_override, outcome);
    if (kind === 'request_body' && answer.request_body?.response?.body_mutation != null) outcome.requestBodyRewritten = true;
    return true;
  };

  const requestHeaders: Array<readonly [string, string]> = [...sample.request.headers, ['x-request-id', requestId]];
  if (body !== null) requestHeaders.push(['content-length', String(body.length)]);
  if (!(await step({ request_headers: headers(requestHeaders, body === null) }, 'request_headers'))) return outcome;

  if (body !== null && mode.requestBody !== BodySendMode.NONE) {
    if (!(await step({ request_body: { body, end_of_stream: true } }, 'request_body'))) return outcome;
  }

  const chunks = sample.response.chunks;
  if (mode.responseHeaders !== HeaderSendMode.SKIP) {
    if (!(await step({ response_headers: headers(sample.response.headers, chunks.length === 0) }, 'response_headers'))) return outcome;
  }
  if (mode.responseBody !== BodySendMode.NONE) {
    for (const [i, text] of chunks.entries()) {
      const last = i === chunks.length - 1;
      if (!(await step({ response_body: { body: Buffer.from(text, 'utf8'), end_of_stream: last } }, 'response_body'))) return outcome;
    }
  }
  return outcome;
}

function headers(list: HeaderList, endOfStream: boolean): WireHttpHeaders {
  return {
    headers: { headers: list.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'utf8') })) },
    end_of_stream: endOfStream,
  };
}

/** As Envoy: DEFAULT header modes keep the configured mode; body modes are taken as sent. */
function applyOverride(
  mode: { responseHeaders: number; requestBody: number; responseBody: number },
  override: WireProcessingMode,
  outcome: ExchangeOutcome,
): void {
  if (override.response_header_mode) mode.responseHeaders = override.response_header_mode;
  mode.requestBody = override.request_body_mode ?? BodySendMode.NONE;
  mode.responseBody = override.response_body_mode ?? BodySendMode.NONE;
  outcome.skippedRest =
    mode.responseHeaders === HeaderSendMode.SKIP && mode.requestBody === BodySendMode.NONE && mode.responseBody === BodySendMode.NONE;
}

/** Envoy merges returned metadata per namespace, key by key. */
function mergeMetadata(into: ExchangeOutcome['metadata'], answer: WireProcessingResponse): void {
  if (answer.dynamic_metadata == null) return;
  for (const [namespace, value] of Object.entries(fromStruct(answer.dynamic_metadata))) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    into[namespace] = { ...into[namespace], ...value };
  }
}

/** One gRPC stream: sends a message, resolves with the next answer, fails if the stream fails. */
class SideStream {
  private readonly answers: WireProcessingResponse[] = [];
  private waiter: { resolve(a: WireProcessingResponse): void; reject(e: Error): void } | null = null;
  private failure: SideStreamError | null = null;
  private readonly finished: Promise<void>;

  constructor(private readonly call: grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse>) {
    call.on('data', (answer: WireProcessingResponse) => {
      if (this.waiter) {
        this.waiter.resolve(answer);
        this.waiter = null;
      } else {
        this.answers.push(answer);
      }
    });
    call.on('error', (err: grpc.ServiceError) => this.fail(new SideStreamError(err.details || err.message, err.code)));
    call.on('end', () => this.fail(new SideStreamError('tokenwarden ended the stream before answering', null)));
    this.finished = new Promise((resolve) => call.on('status', () => resolve()));
  }

  send(msg: WireProcessingRequest): Promise<WireProcessingResponse> {
    if (this.failure) return Promise.reject(this.failure);
    this.call.write(msg);
    const queued = this.answers.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Envoy half-closes when the exchange is over; the server then ends the stream. */
  async halfClose(): Promise<void> {
    if (!this.failure) this.call.end();
    await this.finished;
  }

  private fail(err: SideStreamError): void {
    this.failure ??= err;
    this.waiter?.reject(this.failure);
    this.waiter = null;
  }
}
