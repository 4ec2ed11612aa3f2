/**
 * Envoy-side misbehaviour against a real gRPC server (spec envoy-ext-proc.md §1.5-1.7, §2): streams
 * cancelled at every point of the exchange (with a budget reservation in flight), duplicate and
 * out-of-order messages, messages after the server ended the stream, and mirrored streams that never
 * close. The server never crashes, answers every message Envoy is waiting for with the matching
 * oneof, gives back every reservation at once, and keeps no per-stream state once a stream is over.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/types.js';
import type { ExchangeRecord } from '../../src/domain.js';
import { ExtProcServer } from '../../src/extproc/server.js';
import type { RequestKind, WireProcessingRequest } from '../../src/extproc/protocol.js';
import { PriceBook } from '../../src/metering/prices.js';
import { TokenCounter } from '../../src/metering/tokens.js';
import { createConsumerResolver } from '../../src/traffic/consumer.js';
import { Exchange } from '../../src/traffic/exchange.js';
import { createRecognizer } from '../../src/traffic/recognize.js';
import { loadFixtures } from '../support/fixtures.js';
import { headers, rawClient, type RawStream } from '../support/raw-client.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { eventually, until } from '../support/wait.js';
import { testObserver } from '../support/observer.js';

const basic = loadFixtures().find((f) => f.name === 'openai_chat_completions_basic')!;
const requestBody = Buffer.concat(basic.request.body_chunks);
const responseBody = Buffer.concat(basic.response.body_chunks);

/** The messages of one inline exchange (BUFFERED request, STREAMED response in two chunks). */
function exchangeMessages(consumer: string, extra: Partial<WireProcessingRequest> = {}): WireProcessingRequest[] {
  const split = Math.floor(responseBody.length / 2);
  return [
    { request_headers: { headers: headers([...basic.request.headers, ['x-consumer-id', consumer]]) } },
    { request_body: { body: requestBody, end_of_stream: true } },
    { response_headers: { headers: headers(basic.response.headers) } },
    { response_body: { body: responseBody.subarray(0, split) } },
    { response_body: { body: responseBody.subarray(split), end_of_stream: true } },
  ].map((m) => ({ ...m, ...extra }));
}

const kindOf = (m: WireProcessingRequest): RequestKind => Object.keys(m).find((k) => k.includes('_')) as RequestKind;

/** The answer kind Envoy expects for a message: its own, or an immediate response (budget refusal). */
function answersMatch(sent: WireProcessingRequest[], s: RawStream): void {
  expect(s.answers.map((a) => a.response)).toEqual(sent.map(kindOf));
}

async function streamsActiveGauge(srv: TestServer): Promise<number> {
  return (await srv.server.metrics.streamsActive.get()).values[0]?.value ?? 0;
}

async function noStreamState(srv: TestServer): Promise<void> {
  await until(() => srv.server.activeStreams === 0, 'every stream to be released');
  expect(await streamsActiveGauge(srv)).toBe(0);
}

const errorLogs = (srv: TestServer): string[] => srv.logs.filter((l) => l.includes('"level":"error"'));

describe('streams cancelled at every point of the exchange', () => {
  let srv: TestServer;
  beforeAll(async () => {
    const parsed = parseConfig(
      `budgets:
  - id: cancelled
    mode: enforce
    select: { consumers: [cancel-app] }
    limits: [{ requests: 100000, per: day }]
`,
      'misbehaviour.yaml',
      {},
    );
    srv = await startTestServer((c) => {
      c.admin.address = '127.0.0.1:0';
      c.budgets = parsed.budgets;
      // Far longer than the test: a reservation that goes away was given back, not left to expire.
      c.governance.lease_ms = 600_000;
      c.governance.ledger_timeout_ms = 1_000;
    });
  });
  afterAll(() => srv.stop());

  async function budget(): Promise<{ used: number; reserved: number }> {
    const res = await fetch(`http://${srv.adminAddress}/api/v1/budgets/cancelled`);
    return ((await res.json()) as { limits: { used: number; reserved: number }[] }).limits[0]!;
  }

  const points = [0, 1, 2, 3, 4, 5].flatMap((sent) =>
    (['cancel before the answers', 'half-close + cancel after the answers'] as const).map((how) => ({ sent, how })),
  );

  it.each(points)('after $sent messages: $how', async ({ sent, how }) => {
    const client = rawClient(srv.address);
    const before = srv.records.length;
    const s = client.open();
    const messages = exchangeMessages('cancel-app').slice(0, sent);
    for (const m of messages) s.write(m);
    if (how === 'cancel before the answers') {
      s.cancel();
    } else {
      await s.next(messages.length);
      answersMatch(messages, s);
      s.halfCloseAndCancel();
    }
    await s.status;
    await noStreamState(srv);
    if (how !== 'cancel before the answers' && sent > 0) {
      // Whatever was seen is recorded once; only the full exchange is complete.
      const [record] = (await srv.waitForRecords(before + 1)).slice(before);
      expect(record!.completion).toBe(sent === 5 ? 'complete' : 'aborted');
    }
    // The reservation of a cancelled request is given back at once (the lease would take 10 min).
    await eventually(async () => {
      const { used, reserved } = await budget();
      expect(reserved).toBe(0);
      const settled = srv.records.filter((r: ExchangeRecord) => r.consumer?.id === 'cancel-app' && r.usageSource !== 'none');
      expect(used).toBe(settled.length);
    });
    expect(srv.records.length - before).toBeLessThanOrEqual(1);
    expect(errorLogs(srv)).toEqual([]);
    client.close();
  });
});

describe('spurious, duplicate and late messages', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());

  it('duplicated headers, a redelivered request body and answers in the wrong order are each answered once, with the matching oneof; the end of the response ends the RPC', async () => {
    const client = rawClient(srv.address);
    const before = srv.records.length;
    const s = client.open();
    const [rh, rb, resh, , last] = exchangeMessages('dup-app');
    const answered = [rh!, rh!, rb!, rb!, resh!, resh!, last!];
    // Envoy has nothing more to send once the response ended: these reach a finished RPC.
    const late = [last!, { request_trailers: { trailers: headers([['x', '1']]) } }];
    for (const m of [...answered, ...late]) s.write(m);
    expect((await s.status).code).toBe(grpc.status.OK);
    answersMatch(answered, s);
    s.halfCloseAndCancel();
    await noStreamState(srv);
    const records = (await srv.waitForRecords(before + 1)).slice(before);
    expect(records).toHaveLength(1);
    expect(records[0]!.model).toBe(basic.expected.model);
    expect(errorLogs(srv)).toEqual([]);
    client.close();
  });

  it('bodies and trailers before any headers are answered unchanged and record nothing', async () => {
    const client = rawClient(srv.address);
    const before = srv.records.length;
    const s = client.open();
    const messages: WireProcessingRequest[] = [
      { request_body: { body: requestBody, end_of_stream: true } },
      { response_body: { body: responseBody } },
      { response_headers: { headers: headers(basic.response.headers) } },
      { response_trailers: { trailers: headers([['x', '1']]) } },
    ];
    for (const m of messages) s.write(m);
    // The response trailers are the last message Envoy can send: the server ends the RPC after them.
    expect((await s.status).code).toBe(grpc.status.OK);
    answersMatch(messages, s);
    // "No change" answers: nothing mutated, no metadata, no local reply.
    expect(s.answers.map((a) => [a[a.response!], a.dynamic_metadata ?? null])).toEqual(messages.map(() => [{}, null]));
    s.halfCloseAndCancel();
    await noStreamState(srv);
    expect(srv.records.length).toBe(before);
    client.close();
  });

  it('a mirrored exchange is never answered; messages after the server ended the stream change nothing', async () => {
    const client = rawClient(srv.address);
    const before = srv.records.length;
    const s = client.open();
    for (const m of exchangeMessages('mirror-app', { observability_mode: true })) s.write(m);
    // The complete mirrored exchange ends the RPC from the server (Envoy stops sending).
    expect((await s.status).code).toBe(grpc.status.OK);
    const [record] = (await srv.waitForRecords(before + 1)).slice(before);
    expect(record!.completion).toBe('complete');
    await noStreamState(srv);
    // Envoy's late messages on the ended stream, and a stream that only carried non-LLM headers.
    s.write({ response_trailers: { trailers: headers([['x', '1']]) }, observability_mode: true });
    const other = client.open();
    other.write({ request_headers: { headers: headers([[':method', 'GET'], [':authority', 'example.com'], [':path', '/'], [':scheme', 'https']]) }, observability_mode: true });
    expect((await other.status).code).toBe(grpc.status.OK);
    other.write({ response_headers: { headers: headers([[':status', '200']]) }, observability_mode: true });
    await noStreamState(srv);
    expect(s.answers).toEqual([]);
    expect(other.answers).toEqual([]);
    expect(srv.records.length).toBe(before + 1);
    expect(errorLogs(srv)).toEqual([]);
    client.close();
  });
});

describe('mirrored streams that never close', () => {
  const IDLE_MS = 300;
  let server: ExtProcServer;
  let tokens: TokenCounter;
  let open = 0;
  const records: ExchangeRecord[] = [];
  const protocolErrors: string[] = [];

  beforeAll(async () => {
    const config = defaultConfig();
    tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
    const deps = {
      recognize: createRecognizer(config.discovery),
      resolveConsumer: createConsumerResolver({ ...config.consumer, fingerprint_secret: 'test-secret' }),
      tokens,
      prices: new PriceBook(config.metering.price_overrides),
      metering: config.metering,
      limits: config.limits,
    };
    server = new ExtProcServer({
      address: '127.0.0.1:0',
      maxReceiveMessageBytes: config.grpc.max_receive_message_bytes,
      stream: {
        newExchange: (observability) => new Exchange(deps, { observability }),
        metadata: config.metadata,
        skipNonLlm: false,
        observabilityIdleMs: IDLE_MS,
        observer: testObserver({
          protocolError: (reason) => void protocolErrors.push(reason),
          record: (r) => void records.push(r),
          streamOpened: () => void open++,
          streamClosed: () => void open--,
          transitionRefused: (from, to) => void protocolErrors.push(`refused ${from}->${to}`),
        }),
      },
    });
    await server.start();
  });
  afterAll(async () => {
    await server.shutdown(0);
    await tokens.close();
  });

  it('ends a silent mirrored stream with OK after the idle period and records what it saw', async () => {
    const client = rawClient(server.address!);
    const s = client.open();
    // The response never ends: e.g. trailers SKIP with trailers, so no chunk carries end_of_stream.
    for (const m of exchangeMessages('silent-app', { observability_mode: true }).slice(0, 4)) s.write(m);
    const opened = Date.now();
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(s.answers).toEqual([]);
    await until(() => server.activeStreams === 0 && open === 0, 'the stream state to be released');
    expect(records.map((r) => [r.consumer?.id, r.completion])).toEqual([['silent-app', 'aborted']]);
    expect(protocolErrors).toEqual(['observability_idle_timeout']);
    client.close();
  });

  it('keeps a mirrored stream that is slow but alive', async () => {
    const client = rawClient(server.address!);
    const s = client.open();
    let ended = false;
    void s.status.then(() => (ended = true));
    const messages = exchangeMessages('slow-app', { observability_mode: true });
    // Each gap is shorter than the idle period; the whole exchange is much longer.
    for (const m of messages.slice(0, -1)) {
      s.write(m);
      await new Promise((r) => setTimeout(r, (IDLE_MS * 3) / 4));
      expect(ended).toBe(false);
    }
    s.write(messages.at(-1)!);
    expect((await s.status).code).toBe(grpc.status.OK);
    await until(() => server.activeStreams === 0 && open === 0, 'the stream state to be released');
    expect(records.at(-1)).toMatchObject({ consumer: { id: 'slow-app' }, completion: 'complete' });
    client.close();
  });
});
