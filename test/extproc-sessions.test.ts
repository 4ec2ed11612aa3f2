/**
 * HTTP/2 session health on the gRPC port, seen from a raw HTTP/2 peer: connection rotation before
 * Node's rapid-reset allowance runs out, sessions counted by how they end, streams reset by the peer,
 * the flow-control windows granted, and pings at any rate.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeRequest, PROCESS_PATH, type WireProcessingRequest } from '../src/extproc/protocol.js';
import { CONNECTION_WINDOW_BYTES, NGHTTP2_RESET_BURST, ResetAllowance, ROTATE_BELOW, STREAM_WINDOW_BYTES } from '../src/extproc/sessions.js';
import { eventually } from './support/wait.js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { startTestServer, type TestServer } from './support/server.js';

function frame(msg: WireProcessingRequest): Buffer {
  const body = encodeRequest(msg);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

const headersMessage = (authority: string, path: string): Buffer =>
  frame({
    request_headers: {
      headers: { headers: [[':method', 'POST'], [':path', path], [':authority', authority]].map(([key, v]) => ({ key: key!, raw_value: Buffer.from(v!) })) },
    },
  });
const NON_LLM = headersMessage('orders.internal', '/orders');
const LLM = headersMessage('api.openai.com', '/v1/chat/completions');

function connect(srv: TestServer): http2.ClientHttp2Session {
  const s = http2.connect(`http://${srv.address}`);
  s.on('error', () => {});
  return s;
}

/** One Process stream that sends `first`; resolves with the grpc-status the server ended it with. */
function rpc(session: http2.ClientHttp2Session, first: Buffer): { stream: http2.ClientHttp2Stream; status: Promise<string | null> } {
  const stream = session.request({ ':method': 'POST', ':path': PROCESS_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  stream.on('error', () => {});
  stream.on('data', () => {});
  stream.write(first);
  const status = new Promise<string | null>((resolve) => {
    // The server's trailers end the RPC; Envoy's END_STREAM then closes the HTTP/2 stream.
    stream.on('trailers', (h) => {
      resolve(String(h['grpc-status']));
      stream.end();
    });
    stream.on('close', () => resolve(null));
  });
  return { stream, status };
}

async function metric(srv: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await srv.server.metrics.registry.getSingleMetric(name)!.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}

describe('ResetAllowance (a model of nghttp2 stream-reset limiter)', () => {
  it('starts at the burst, loses one per stream and refills at 33 per second, never above the burst', () => {
    const a = new ResetAllowance(0);
    expect(a.take(0)).toBe(NGHTTP2_RESET_BURST - 1);
    for (let i = 0; i < 98; i++) a.take(0);
    expect(a.take(0)).toBe(NGHTTP2_RESET_BURST - 100);
    // One second later 33 are back.
    expect(a.take(1000)).toBe(NGHTTP2_RESET_BURST - 100 + 33 - 1);
    // An hour of silence refills to the burst, not beyond.
    expect(a.take(3_600_000)).toBe(NGHTTP2_RESET_BURST - 1);
  });

  it('a steady 33 streams per second never drains it', () => {
    const a = new ResetAllowance(0);
    let left = 0;
    for (let i = 0; i < 10_000; i++) left = a.take((i * 1000) / 33);
    expect(left).toBeGreaterThan(NGHTTP2_RESET_BURST - 3);
  });
});

describe('HTTP/2 sessions on the gRPC port', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());
  // Each test starts with no session left over, so the counters it reads move only for its own.
  afterEach(async () => {
    await eventually(async () => expect(await metric(srv, 'tokenwarden_http2_sessions_active')).toBe(0));
  });

  it('rotates a connection with a graceful GOAWAY before the reset allowance can run out; every stream completes', async () => {
    const session = connect(srv);
    const goaways: Array<[number, number]> = [];
    session.on('goaway', (code, lastStreamId) => goaways.push([code, lastStreamId]));
    const rotated = await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_sent_rotation' });
    const statuses: Array<Promise<string | null>> = [];
    // Envoy's worst case: every stream reset right after its last answer.
    for (let i = 0; i < NGHTTP2_RESET_BURST - ROTATE_BELOW + 50 && goaways.length === 0; i++) {
      const { stream, status } = rpc(session, NON_LLM);
      stream.once('data', () => {
        stream.end();
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      statuses.push(status);
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    await eventually(async () => expect(goaways.length).toBeGreaterThan(0));
    expect(goaways[0]).toEqual([http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1]);
    const ended = await Promise.all(statuses);
    expect(ended.filter((s) => s !== '0' && s !== null)).toEqual([]);
    session.destroy();
    await eventually(async () =>
      expect(await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_sent_rotation' })).toBe(rotated + 1),
    );
  });

  it('counts streams the peer resets before the server ended them', async () => {
    const before = await metric(srv, 'tokenwarden_http2_streams_reset_by_peer_total');
    const session = connect(srv);
    // Ended by the server: not counted.
    expect(await rpc(session, NON_LLM).status).toBe('0');
    const { stream, status } = rpc(session, LLM);
    await new Promise((r) => stream.once('data', r));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await status;
    await eventually(async () => expect(await metric(srv, 'tokenwarden_http2_streams_reset_by_peer_total')).toBe(before + 1));
    session.close();
  });

  it('a connection lost with exchanges in flight is counted and logged as a warning', async () => {
    const lost = await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'connection_lost' });
    // A connection that just goes away (no GOAWAY): Envoy killed, a network cut.
    let socket: net.Socket | null = null;
    const session = http2.connect(`http://${srv.address}`, {
      createConnection: () => (socket = net.connect(Number(srv.address.split(':')[1]), '127.0.0.1')),
    });
    session.on('error', () => {});
    const { stream } = rpc(session, LLM);
    await new Promise((r) => stream.once('data', r));
    socket!.destroy();
    await eventually(async () =>
      expect(await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'connection_lost' })).toBe(lost + 1),
    );
    expect(srv.logs.some((l) => l.includes('closed with streams in flight') && l.includes('"streams_in_flight":1'))).toBe(true);
  });

  it("Envoy's GOAWAY (draining) is its own reason", async () => {
    const received = await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_received' });
    const session = connect(srv);
    expect(await rpc(session, NON_LLM).status).toBe('0');
    session.goaway(http2.constants.NGHTTP2_NO_ERROR);
    session.close();
    await eventually(async () =>
      expect(await metric(srv, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_received' })).toBe(received + 1),
    );
    session.destroy();
  });

  it('grants 1 MiB per stream and 16 MiB per connection, and answers pings at any rate', async () => {
    const session = connect(srv);
    await new Promise((r) => session.once('remoteSettings', r));
    expect(session.remoteSettings.initialWindowSize).toBe(STREAM_WINDOW_BYTES);
    await eventually(async () => expect(session.state.remoteWindowSize).toBe(CONNECTION_WINDOW_BYTES));
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const pings = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const acked: boolean[] = [];
        for (let i = 0; i < 100; i++) acked.push(await new Promise<boolean>((r) => session.ping((err) => r(err === null))));
        return acked.every(Boolean);
      }),
    );
    expect(pings).toEqual([true, true, true, true, true]);
    expect(await rpc(session, NON_LLM).status).toBe('0');
    expect(goaway).toBe(false);
    session.close();
  });

  it('a 60 MiB BUFFERED request body crosses the flow-control windows and session limits', async () => {
    // Timing is not under test: the copy of 60 MiB takes its time on a loaded machine.
    const envoy = new EnvoyEmulator(srv.address, { ...SIDECAR, message_timeout_ms: 30_000 });
    const fill = 60 * 1024 * 1024 - 200;
    const body = Buffer.from(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"${'a'.repeat(fill)}"}]}`);
    const records = srv.records.length;
    const r = await envoy.exchange({
      request: {
        headers: [[':method', 'POST'], [':path', '/v1/chat/completions'], [':authority', 'api.openai.com'], ['content-type', 'application/json'], ['content-length', String(body.length)]],
        body_chunks: [body],
      },
      upstream: { headers: [[':status', '200'], ['content-type', 'text/event-stream']], body_chunks: ['data: [DONE]\n\n'] },
    });
    await envoy.close();
    expect(r.errors).toEqual([]);
    expect(r.downstream.status).toBe(200);
    expect(r.upstream.body.equals(body)).toBe(true);
    const [record] = (await srv.waitForRecords(records + 1)).slice(records);
    expect(record!.model).toBe('gpt-4o');
  }, 60_000);

  it('a shutdown closes its connections as goaway_sent_shutdown', async () => {
    const own = await startTestServer();
    const session = connect(own);
    expect(await rpc(session, NON_LLM).status).toBe('0');
    await own.stop();
    session.destroy();
    await eventually(async () => expect(await metric(own, 'tokenwarden_http2_sessions_closed_total', { reason: 'goaway_sent_shutdown' })).toBe(1));
  });

  it('counts sessions opened and open', async () => {
    const opened = await metric(srv, 'tokenwarden_http2_sessions_opened_total');
    const session = connect(srv);
    expect(await rpc(session, NON_LLM).status).toBe('0');
    expect(await metric(srv, 'tokenwarden_http2_sessions_opened_total')).toBe(opened + 1);
    expect(await metric(srv, 'tokenwarden_http2_sessions_active')).toBe(1);
    session.close();
  });
});
