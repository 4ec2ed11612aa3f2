/**
 * The Process stream's lifecycle (src/extproc/stream.ts, StreamPhase), driven message by message
 * through a stand-in for grpc-js's call: for each (message sequence, how Envoy closes) the answers
 * written, the records made, the settlements asked for and who ended the RPC. The whole path with
 * real gRPC and the Envoy emulator is in extproc-lifecycle.test.ts; this table pins the ending logic.
 */
import { EventEmitter } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import type { ExchangeRecord } from '../src/domain.js';
import type { ExchangeGovernor, GovernorDecision } from '../src/governance/governor.js';
import { PriceBook } from '../src/metering/prices.js';
import { TokenCounter } from '../src/metering/tokens.js';
import { BodySendMode, type WireProcessingRequest, type WireProcessingResponse } from '../src/extproc/protocol.js';
import { ProcessStream, type ProcessCall, type StreamPhase } from '../src/extproc/stream.js';
import { createConsumerResolver } from '../src/traffic/consumer.js';
import { Exchange } from '../src/traffic/exchange.js';
import { recognize } from '../src/traffic/recognize.js';
import { testObserver } from './support/observer.js';

const config = defaultConfig();
const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
afterAll(() => tokens.close());

/** grpc-js's server duplex stream, as far as ProcessStream uses it. */
class FakeCall extends EventEmitter {
  readonly written: WireProcessingResponse[] = [];
  cancelled = false;
  writableEnded = false;
  write(answer: WireProcessingResponse): boolean {
    if (this.writableEnded) throw new Error('write after end');
    this.written.push(answer);
    return true;
  }
  end(): void {
    if (this.writableEnded) throw new Error('end twice');
    this.writableEnded = true;
  }
  /** Envoy's RST_STREAM(CANCEL): grpc-js emits 'cancelled', then 'close'. */
  cancel(): void {
    this.cancelled = true;
    this.emit('cancelled');
    this.emit('close');
  }
}

const header = (key: string, value: string) => ({ key, raw_value: Buffer.from(value) });
const requestHeaders = (eos = false): WireProcessingRequest => ({
  request: 'request_headers',
  request_headers: {
    headers: { headers: [header(':method', 'POST'), header(':authority', 'api.openai.com'), header(':path', '/v1/chat/completions'), header('content-type', 'application/json')] },
    end_of_stream: eos,
  },
});
const nonLlmHeaders: WireProcessingRequest = {
  request: 'request_headers',
  request_headers: { headers: { headers: [header(':method', 'GET'), header(':authority', 'example.com'), header(':path', '/index.html')] }, end_of_stream: true },
};
const requestBody: WireProcessingRequest = {
  request: 'request_body',
  request_body: { body: Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] })), end_of_stream: true },
};
const responseHeaders = (eos = false, status = '200'): WireProcessingRequest => ({
  request: 'response_headers',
  response_headers: { headers: { headers: [header(':status', status), header('content-type', 'application/json')] }, end_of_stream: eos },
});
const responseBody: WireProcessingRequest = {
  request: 'response_body',
  response_body: {
    body: Buffer.from(JSON.stringify({ model: 'gpt-4o-mini-2024-07-18', choices: [], usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 } })),
    end_of_stream: true,
  },
};
const responseTrailers: WireProcessingRequest = { request: 'response_trailers', response_trailers: {} };
const observed = (m: WireProcessingRequest): WireProcessingRequest => ({ ...m, observability_mode: true });
const withTrailerMode = (m: WireProcessingRequest): WireProcessingRequest => ({
  ...m,
  protocol_config: { request_body_mode: BodySendMode.BUFFERED, response_body_mode: BodySendMode.BUFFERED, send_body_without_waiting_for_header_response: false },
});

/** How Envoy ends the side stream after its messages (spec §1.6). */
type Close =
  /** Its default: half-close, then cancel, right after the last answer it needs. */
  | 'envoy'
  /** ext_proc_graceful_grpc_close: half-close, then wait for the server's end. */
  | 'graceful'
  /** The client went away mid-exchange: cancel without half-closing. */
  | 'cancel'
  /** Nothing: the server must end the RPC itself. */
  | 'none';

interface Outcome {
  answers: number;
  records: number;
  settlements: number;
  /** How the RPC ended: the server's OK right after its last answer, its OK once the answers owed were written (its own decision, or Envoy's half-close), or cancelled by Envoy. */
  end: 'after its last answer' | 'after what was owed' | 'cancelled';
  refused?: string[];
}

/** A governor that admits everything with a reservation, and counts settlements. */
function countingGovernor(): ExchangeGovernor & { settlements: number } {
  const g = {
    settlements: 0,
    admit: (): GovernorDecision => ({ reject: null, responseHeaders: {}, outputCap: null, unsanctioned: false }),
    flag: () => false,
    finish: async () => void g.settlements++,
  };
  return g;
}

async function run(messages: WireProcessingRequest[], close: Close, extra: WireProcessingRequest[] = []): Promise<Outcome> {
  const call = new FakeCall();
  const records: ExchangeRecord[] = [];
  const refused: string[] = [];
  let endedByServer = 0;
  const governor = countingGovernor();
  const deps = {
    recognize: (h: Parameters<typeof recognize>[0]) => recognize(h, config.discovery),
    resolveConsumer: createConsumerResolver(config.consumer),
    tokens,
    prices: new PriceBook([]),
    metering: config.metering,
    limits: config.limits,
  };
  new ProcessStream(call as unknown as ProcessCall, {
    newExchange: (observability) => new Exchange(deps, { observability }),
    metadata: config.metadata,
    skipNonLlm: false,
    governor,
    observer: testObserver({
      record: (r) => void records.push(r),
      streamEndedByServer: () => void endedByServer++,
      transitionRefused: (from: StreamPhase, to: StreamPhase) => void refused.push(`${from}->${to}`),
    }),
  });
  const settle = () => new Promise((r) => setTimeout(r, 20));
  for (const m of messages) {
    call.emit('data', m);
    await settle();
  }
  if (close === 'envoy' || close === 'graceful') {
    call.emit('end');
    await settle();
    if (close === 'envoy' && !call.writableEnded) call.cancel();
  } else if (close === 'cancel') {
    call.cancel();
  }
  await settle();
  // Messages that raced the server's end of the RPC.
  for (const m of extra) call.emit('data', m);
  await settle();
  if (!call.cancelled) call.emit('close');
  await settle();
  const outcome: Outcome = {
    answers: call.written.length,
    records: records.length,
    settlements: governor.settlements,
    end: endedByServer > 0 ? 'after its last answer' : call.writableEnded ? 'after what was owed' : 'cancelled',
  };
  if (refused.length > 0) outcome.refused = refused;
  return outcome;
}

const full = [requestHeaders(), requestBody, responseHeaders(), responseBody];

describe('Process stream lifecycle', () => {
  it.each<[string, WireProcessingRequest[], Close, Outcome, WireProcessingRequest[]?]>([
    ['a whole exchange, Envoy closes its default way', full, 'envoy', { answers: 4, records: 1, settlements: 1, end: 'after its last answer' }],
    ['a whole exchange, graceful close', full, 'graceful', { answers: 4, records: 1, settlements: 1, end: 'after its last answer' }],
    ['a whole exchange, Envoy never closes', full, 'none', { answers: 4, records: 1, settlements: 1, end: 'after its last answer' }],
    ['an exchange whose response trailers are sent', [withTrailerMode(requestHeaders()), requestBody, responseHeaders(), { ...responseBody, response_body: { ...responseBody.response_body!, end_of_stream: false } }, responseTrailers], 'none', { answers: 5, records: 1, settlements: 1, end: 'after its last answer' }],
    ['a response without a body', [requestHeaders(), requestBody, responseHeaders(true, '204')], 'envoy', { answers: 3, records: 1, settlements: 1, end: 'after its last answer' }],
    ['cancelled after the request was admitted', [requestHeaders(), requestBody], 'cancel', { answers: 2, records: 1, settlements: 1, end: 'cancelled' }],
    ['half-closed after the request was admitted', [requestHeaders(), requestBody], 'graceful', { answers: 2, records: 1, settlements: 1, end: 'after what was owed' }],
    ['cancelled before the request body', [requestHeaders()], 'cancel', { answers: 1, records: 1, settlements: 0, end: 'cancelled' }],
    ['cancelled before any message', [], 'cancel', { answers: 0, records: 0, settlements: 0, end: 'cancelled' }],
    ['non-LLM traffic: ended after the headers', [nonLlmHeaders], 'envoy', { answers: 1, records: 0, settlements: 0, end: 'after its last answer' }],
    ['mirrored (observability): no answers, ended once recorded', full.map(observed), 'none', { answers: 0, records: 1, settlements: 0, end: 'after what was owed' }],
    [
      'a message that raced the server\'s end is refused and counted',
      full,
      'none',
      { answers: 4, records: 1, settlements: 1, end: 'after its last answer', refused: ['ended->open'] },
      [responseTrailers],
    ],
  ])('%s', async (_name, messages, close, expected, extra) => {
    expect(await run(messages, close, extra)).toEqual(expected);
  });
});
