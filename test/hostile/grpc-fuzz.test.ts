/**
 * Hostile ProcessingRequests over a real gRPC connection, as raw frames: undecodable bytes, unknown
 * fields, several oneof members in one message, wrong wire types, missing sub-messages, huge header
 * maps, very long header values, deeply nested Structs, and random (fast-check) sequences of all of
 * them. Every stream must end with a clear status or conformant answers, no per-stream state may
 * survive, and the server must keep serving. (test/server.test.ts covers well-formed sequences.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { loadFixtures } from '../support/fixtures.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/wait.js';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  PROCESS_PATH,
  type RequestKind,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';

const fixtures = loadFixtures();
const fx = (name: string) => fixtures.find((f) => f.name === name)!;
const basic = fx('openai_chat_completions_basic');
const stream = fx('openai_chat_completions_stream_include_usage');

const KINDS: readonly RequestKind[] = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers'];
/** ProcessingRequest field numbers of the oneof members, in KINDS order. */
const KIND_FIELD: Record<RequestKind, number> = {
  request_headers: 2,
  response_headers: 3,
  request_body: 4,
  response_body: 5,
  request_trailers: 6,
  response_trailers: 7,
};

interface Outcome {
  status: grpc.StatusObject | null;
  answers: WireProcessingResponse[];
}

/** A bidi call whose request frames are written as given bytes. */
function rawFrames(client: grpc.Client) {
  return (frames: readonly Buffer[], timeoutMs = 5000): Promise<Outcome> => {
    const call = client.makeBidiStreamRequest(PROCESS_PATH, (b: Buffer) => b, (b: Buffer) => decodeResponse(b));
    const answers: WireProcessingResponse[] = [];
    call.on('data', (m: WireProcessingResponse) => answers.push(m));
    call.on('error', () => {});
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        call.cancel();
        resolve({ status: null, answers });
      }, timeoutMs);
      call.on('status', (status: grpc.StatusObject) => {
        clearTimeout(timer);
        resolve({ status, answers });
      });
      for (const f of frames) call.write(f);
      // Half-close like Envoy at the end of an exchange: the server must then end the stream.
      call.end();
    });
  };
}

const enc = (m: WireProcessingRequest): Buffer => encodeRequest(m);
const hdrs = (list: readonly [string, string][]) => ({ headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });

/** A length-delimited field. */
function ld(field: number, bytes: Uint8Array): Buffer {
  return Buffer.from(protobuf.Writer.create().uint32((field << 3) | 2).bytes(bytes).finish());
}

/**
 * The answers must follow the spec: one per message, in order, each with the oneof of its message
 * (or an immediate_response), never an empty ProcessingResponse; nothing in observability mode.
 */
function expectConformant(sent: readonly (RequestKind | undefined)[], out: Outcome, observability = false): void {
  if (observability) {
    expect(out.answers).toEqual([]);
    return;
  }
  expect(out.answers.length).toBeLessThanOrEqual(sent.length);
  out.answers.forEach((a, i) => {
    expect(a.response === 'immediate_response' || a.response === sent[i]).toBe(true);
  });
}

describe('gRPC-level hostile input', () => {
  let srv: TestServer;
  let client: grpc.Client;
  let send: ReturnType<typeof rawFrames>;

  beforeAll(async () => {
    srv = await startTestServer();
    client = new grpc.Client(srv.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    send = rawFrames(client);
  });
  afterAll(async () => {
    client.close();
    await srv.stop();
  });

  /** No stream state is left and an ordinary exchange still works end to end. */
  async function stillServing(): Promise<void> {
    await until(() => srv.server.activeStreams === 0, 'every stream to close');
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.downstream.status).toBe(200);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec?.model).toBe(basic.expected.model);
  }

  it('undecodable frames end that stream with INTERNAL; other streams are unaffected', async () => {
    const open = rawFrames(client);
    // A healthy exchange in flight on the same connection while garbage arrives on others.
    const healthy = open([enc({ request_headers: { headers: hdrs(basic.request.headers) } })], 5000);
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // varint too long
      Buffer.from([0x12, 0x7f, 0x01]), // request_headers claiming 127 bytes, 1 present
      Buffer.from([0x0f]), // field 1, wire type 7 (does not exist)
      Buffer.from([0x13]), // start group without its end
    ];
    for (const g of garbage) {
      const out = await send([enc({ request_headers: { headers: hdrs(basic.request.headers) } }), g]);
      expect(out.status?.code).toBe(grpc.status.INTERNAL);
      expect(out.status?.details).toMatch(/deserializ/i);
      // The message before the garbage was answered as usual.
      expect(out.answers.map((a) => a.response)).toEqual(['request_headers']);
    }
    const h = await healthy;
    expect(h.status?.code).toBe(grpc.status.OK);
    expect(h.answers.map((a) => a.response)).toEqual(['request_headers']);
    await stillServing();
  });

  it('unknown fields, repeated oneof members and missing sub-messages get conformant answers', async () => {
    const unknown = Buffer.concat([
      ld(99, Buffer.from('unknown length-delimited field')),
      Buffer.from(protobuf.Writer.create().uint32((1000 << 3) | 0).uint64(123456789).finish()),
      Buffer.from(protobuf.Writer.create().uint32((77 << 3) | 5).fixed32(7).finish()),
    ]);
    const cases: { frames: Buffer[]; kinds: RequestKind[] }[] = [
      // Unknown fields around a valid request_headers.
      { frames: [Buffer.concat([unknown, enc({ request_headers: { headers: hdrs(basic.request.headers) } }), unknown])], kinds: ['request_headers'] },
      // Every oneof member present and empty (no headers, no body): protobuf keeps the last one.
      { frames: [Buffer.concat(KINDS.map((k) => ld(KIND_FIELD[k], new Uint8Array())))], kinds: ['response_trailers'] },
      // Each kind with its sub-message absent but selected, as the first message of a stream.
      ...KINDS.map((k) => ({ frames: [ld(KIND_FIELD[k], new Uint8Array())], kinds: [k] })),
      // Header entries without key or value (no :authority: not LLM traffic, so the RPC ends after
      // the headers answer and the rest reaches a finished stream).
      {
        frames: [
          enc({ request_headers: { headers: { headers: [{ key: '' }, { key: ':path' }, { key: '', raw_value: Buffer.from('x') }] } } }),
          enc({ request_body: { end_of_stream: true } }),
          enc({ response_headers: {} }),
          enc({ response_body: {} }),
        ],
        kinds: ['request_headers'],
      },
    ];
    for (const c of cases) {
      const out = await send(c.frames);
      expect(out.status?.code).toBe(grpc.status.OK);
      expect(out.answers.map((a) => a.response)).toEqual(c.kinds);
    }
    await stillServing();
  });

  it('a 100,000-entry header map and 1 MiB header values are answered, and the exchange is still recognised', async () => {
    const many: [string, string][] = [...basic.request.headers];
    for (let i = 0; i < 100_000; i++) many.push([`x-junk-${i}`, 'v'.repeat(i % 64)]);
    const long: [string, string][] = [
      ...basic.request.headers,
      ['x-consumer-id', 'c'.repeat(1024 * 1024)],
      ['x-long', '\u00ff'.repeat(512 * 1024)],
      ['y'.repeat(64 * 1024), 'long name'],
    ];
    const n = srv.records.length;
    for (const list of [many, long]) {
      const started = performance.now();
      const out = await send([
        enc({ request_headers: { headers: hdrs(list) } }),
        enc({ request_body: { body: Buffer.concat(basic.request.body_chunks), end_of_stream: true } }),
        enc({ response_headers: { headers: hdrs(basic.response.headers) } }),
        enc({ response_body: { body: Buffer.concat(basic.response.body_chunks), end_of_stream: true } }),
      ]);
      expect(out.status?.code).toBe(grpc.status.OK);
      expect(out.answers.map((a) => a.response)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body']);
      // Generous: ~0.5 s on a shared 2-core box; a quadratic header map would take minutes.
      expect(performance.now() - started).toBeLessThan(10_000);
    }
    const recs = (await srv.waitForRecords(n + 2)).slice(n);
    expect(recs.map((r) => r.model)).toEqual([basic.expected.model, basic.expected.model]);
    // Header values are read up to 16 KiB: the consumer id is cut, never held whole.
    expect(recs[1]?.consumer?.id.length ?? 0).toBeLessThanOrEqual(16 * 1024);
    await stillServing();
  }, 30_000);

  it('nested Structs in attributes and metadata_context: decoded up to protobuf\'s depth limit, refused beyond', async () => {
    /** Value{struct_value: Struct{fields: {k: <inner>}}} repeated: three message levels per step. */
    const nested = (steps: number): Uint8Array => {
      let value: Uint8Array = new Uint8Array();
      for (let i = 0; i < steps; i++) value = ld(5, ld(1, Buffer.concat([ld(1, Buffer.from('k')), ld(2, value)])));
      return ld(1, Buffer.concat([ld(1, Buffer.from('k')), ld(2, value)]));
    };
    const attributes = (struct: Uint8Array) => ld(9, Buffer.concat([ld(1, Buffer.from('envoy.filters.http.ext_proc')), ld(2, struct)]));
    const metadata = (struct: Uint8Array) => ld(8, ld(1, Buffer.concat([ld(1, Buffer.from('ns')), ld(2, struct)])));
    const headersMsg = enc({ request_headers: { headers: hdrs(basic.request.headers) } });
    for (const wrap of [attributes, metadata]) {
      // 25 steps: within protobufjs' limit of 100 nested messages, so decoded and answered.
      const shallow = await send([Buffer.concat([headersMsg, wrap(nested(25))])]);
      expect(shallow.status?.code).toBe(grpc.status.OK);
      expect(shallow.answers.map((a) => a.response)).toEqual(['request_headers']);
      // 5,000 steps: refused by the decoder before any handler recurses into it.
      const deep = await send([Buffer.concat([headersMsg, wrap(nested(5_000))])]);
      expect(deep.status?.code).toBe(grpc.status.INTERNAL);
      expect(deep.answers).toEqual([]);
    }
    await stillServing();
  });

  it('property: random sequences of valid, malformed and garbage frames', async () => {
    const headerSets = [basic.request.headers, stream.request.headers, basic.response.headers, stream.response.headers, [] as [string, string][]];
    const bodies = [
      Buffer.concat(basic.request.body_chunks),
      Buffer.concat(stream.request.body_chunks),
      Buffer.concat(basic.response.body_chunks),
      Buffer.concat(stream.response.body_chunks),
    ];
    type Frame = { bytes: Buffer; kind: RequestKind | undefined; decodable: boolean };
    const message: fc.Arbitrary<Frame> = fc.oneof(
      {
        weight: 6,
        arbitrary: fc
          .record({
            kind: fc.constantFrom(...KINDS),
            headers: fc.nat(headerSets.length - 1),
            body: fc.oneof(fc.nat(bodies.length - 1).map((i) => bodies[i] as Buffer), fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b))),
            cut: fc.nat(),
            eos: fc.boolean(),
            observability: fc.boolean(),
            duplex: fc.boolean(),
            unknown: fc.boolean(),
          })
          .map((r): Frame => {
            const list = headerSets[r.headers] as [string, string][];
            const body = r.body.subarray(0, r.cut % (r.body.length + 1));
            let m: WireProcessingRequest;
            if (r.kind.endsWith('headers')) m = { [r.kind]: { headers: hdrs(list), end_of_stream: r.eos } };
            else if (r.kind.endsWith('body')) m = { [r.kind]: { body, end_of_stream: r.eos } };
            else m = { [r.kind]: { trailers: hdrs([['x', 'y']]) } };
            m.observability_mode = r.observability;
            if (r.duplex) m.protocol_config = { request_body_mode: 4, response_body_mode: 4 };
            const bytes = r.unknown ? Buffer.concat([enc(m), ld(4242, Buffer.from('?'))]) : enc(m);
            return { bytes, kind: r.kind, decodable: true };
          }),
      },
      // An empty ProcessingRequest: the server ends the stream with OK.
      { weight: 1, arbitrary: fc.constant<Frame>({ bytes: Buffer.alloc(0), kind: undefined, decodable: true }) },
      // Random bytes: protobuf may or may not decode them.
      { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b): Frame => ({ bytes: Buffer.from(b), kind: undefined, decodable: false })) },
    );
    const sequence = fc.array(message, { minLength: 1, maxLength: 12 });

    await fc.assert(
      fc.asyncProperty(fc.array(sequence, { minLength: 1, maxLength: 6 }), async (sequences) => {
        // Several streams at once on one connection, like Envoy.
        const outs = await Promise.all(sequences.map((frames) => send(frames.map((f) => f.bytes))));
        sequences.forEach((frames, i) => {
          const out = outs[i] as Outcome;
          expect(out.status).not.toBeNull();
          const allDecodable = frames.every((f) => f.decodable);
          if (allDecodable) expect(out.status?.code).toBe(grpc.status.OK);
          else expect([grpc.status.OK, grpc.status.INTERNAL]).toContain(out.status?.code);
          const first = frames[0] as Frame;
          // The first message decides observability; only fully known sequences are checked kind by kind.
          if (allDecodable && first.kind !== undefined) {
            const observability = decodeRequest(first.bytes).observability_mode === true;
            const upToEmpty = frames.findIndex((f) => f.kind === undefined);
            const sent = frames.slice(0, upToEmpty < 0 ? frames.length : upToEmpty).map((f) => f.kind);
            expectConformant(sent, out, observability);
          }
        });
        await until(() => srv.server.activeStreams === 0, 'every stream to close');
      }),
      { numRuns: 40 },
    );
    await stillServing();
    expect(srv.logs.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  }, 60_000);
});
