/**
 * The gRPC server's own behaviour through real gRPC: processing modes beyond the two fixture
 * replays, stream endings, health, Unix sockets, TLS, graceful shutdown and hostile message sequences.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { headers, rawClient } from './support/raw-client.js';
import { fromStruct } from '../src/extproc/messages.js';
import { createServer } from '../src/server.js';
import { defaultConfig } from '../src/config/types.js';
import { createLogger } from '../src/log.js';
import { until } from './support/wait.js';

const fixtures = loadFixtures();
const fx = (name: string) => fixtures.find((f) => f.name === name)!;
const basic = fx('openai_chat_completions_basic');
const anthropicStream = fx('anthropic_messages_stream');

describe('processing modes', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.metadata.ai_gateway_compat = true;
      c.metadata.model_header = 'x-tokenwarden-model';
    });
  });
  afterAll(() => srv.stop());

  it('FULL_DUPLEX_STREAMED: echoes every chunk with streamed_response and still meters', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: {
        request_header_mode: 'SEND',
        request_body_mode: 'FULL_DUPLEX_STREAMED',
        request_trailer_mode: 'SEND',
        response_header_mode: 'SEND',
        response_body_mode: 'FULL_DUPLEX_STREAMED',
        response_trailer_mode: 'SEND',
      },
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
    });
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: anthropicStream.request.headers, body_chunks: anthropicStream.request.body_chunks },
      upstream: { headers: anthropicStream.response.headers, body_chunks: anthropicStream.response.body_chunks },
    });
    await envoy.close();
    expect(r.errors).toEqual([]);
    expect(r.counters.spurious_msgs_received).toBe(0);
    expect(r.upstream.body.equals(Buffer.concat(anthropicStream.request.body_chunks))).toBe(true);
    expect(r.downstream.body.equals(Buffer.concat(anthropicStream.response.body_chunks))).toBe(true);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.reportedUsage).toEqual(anthropicStream.expected.usage);
    expect((r.dynamicMetadata.tokenwarden as Record<string, unknown>).output_tokens).toBe(anthropicStream.expected.usage.output_tokens);
  });

  it('STREAMED request bodies in many chunks are parsed at their end', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: { request_header_mode: 'SEND', request_body_mode: 'STREAMED', response_header_mode: 'SEND', response_body_mode: 'STREAMED' },
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
    });
    const body = Buffer.concat(basic.request.body_chunks);
    const chunks = [body.subarray(0, 10), body.subarray(10, 40), body.subarray(40)].map((data) => ({ data, wait: 'idle' as const }));
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.sent.filter((m) => m.kind === 'request_body').length).toBe(3);
    expect(r.upstream.body.equals(body)).toBe(true);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.model).toBe(basic.expected.model);
    expect(rec!.usage).toEqual(basic.expected.usage);
  });

  it('emits Envoy AI Gateway keys and a model header for routing when configured', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      ...SIDECAR,
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden', 'io.envoy.ai_gateway'] } },
    });
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.upstream.headers?.get('x-tokenwarden-model')).toBe(basic.expected.model);
    expect(r.routeCacheClears).toBe(1);
    expect(r.dynamicMetadata['io.envoy.ai_gateway']).toEqual({
      llm_input_token: basic.expected.usage.input_tokens,
      llm_output_token: basic.expected.usage.output_tokens,
      llm_total_token: basic.expected.usage.total_tokens,
      model_name_override: basic.expected.model,
    });
  });

  it('request trailers end the request body (BUFFERED + trailers SEND)', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: { ...SIDECAR.processing_mode, request_trailer_mode: 'SEND' },
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
    });
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks, trailers: [['x-trailer', '1']] },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.sent.map((m) => m.kind)).toContain('request_trailers');
    expect(r.counters.spurious_msgs_received).toBe(0);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.model).toBe(basic.expected.model);
  });
});

describe('other Envoy configurations', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());

  const BODY_MODES = ['NONE', 'BUFFERED', 'BUFFERED_PARTIAL', 'STREAMED', 'FULL_DUPLEX_STREAMED'] as const;
  const combos = BODY_MODES.flatMap((body) =>
    (['SEND', 'SKIP'] as const).flatMap((hdr) =>
      (['SEND', 'SKIP'] as const)
        .filter((trl) => body !== 'FULL_DUPLEX_STREAMED' || trl === 'SEND')
        .flatMap((trl) => [true, false].map((trailers) => ({ body, hdr, trl, trailers }))),
    ),
  );
  it.each(combos)('body $body, headers $hdr, trailer mode $trl, trailers sent: $trailers', async ({ body, hdr, trl, trailers }) => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: {
        request_header_mode: hdr,
        response_header_mode: hdr,
        request_body_mode: body,
        response_body_mode: body,
        request_trailer_mode: trl,
        response_trailer_mode: trl,
      },
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
    });
    const extra = trailers ? { trailers: [['x-checksum', 'abc']] as [string, string][] } : {};
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: anthropicStream.request.headers, body_chunks: anthropicStream.request.body_chunks, ...extra },
      upstream: { headers: anthropicStream.response.headers, body_chunks: anthropicStream.response.body_chunks, ...extra },
    });
    await envoy.close();
    expect(r.errors).toEqual([]);
    expect(r.counters.spurious_msgs_received).toBe(0);
    expect(r.counters.message_timeouts).toBe(0);
    expect(r.downstream.localReply).toBeUndefined();
    expect(r.upstream.body.equals(Buffer.concat(anthropicStream.request.body_chunks))).toBe(true);
    expect(r.downstream.body.equals(Buffer.concat(anthropicStream.response.body_chunks))).toBe(true);
    if (hdr === 'SEND' && body !== 'NONE') {
      // Headers and both bodies were seen: the usage is read whatever the body mode.
      const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
      expect(rec!.model).toBe(anthropicStream.expected.model);
      expect(rec!.reportedUsage).toEqual(anthropicStream.expected.usage);
    }
    await until(() => srv.server.activeStreams === 0, 'every stream to close');
  });

  it('BUFFERED_PARTIAL bodies that fit the buffer are metered like BUFFERED', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: { request_header_mode: 'SEND', request_body_mode: 'BUFFERED_PARTIAL', response_header_mode: 'SEND', response_body_mode: 'BUFFERED_PARTIAL' },
      metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
    });
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.counters.spurious_msgs_received).toBe(0);
    expect(r.downstream.body.equals(Buffer.concat(basic.response.body_chunks))).toBe(true);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.usage).toEqual(basic.expected.usage);
    expect((r.dynamicMetadata.tokenwarden as Record<string, unknown>).total_tokens).toBe(basic.expected.usage.total_tokens);
  });

  it('with request headers skipped, traffic still flows unchanged (nothing to recognise it by)', async () => {
    const envoy = new EnvoyEmulator(srv.address, {
      processing_mode: { request_header_mode: 'SKIP', request_body_mode: 'BUFFERED', response_header_mode: 'SEND', response_body_mode: 'STREAMED' },
    });
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.errors).toEqual([]);
    expect(r.counters.spurious_msgs_received).toBe(0);
    expect(r.upstream.body.equals(Buffer.concat(basic.request.body_chunks))).toBe(true);
    expect(r.downstream.status).toBe(200);
  });

  it('accepts a 50 MiB BUFFERED prompt (gRPC receive limit raised) and reads its model without a full parse', async () => {
    const envoy = new EnvoyEmulator(srv.address, { ...SIDECAR, buffer_limit: 64 * 1024 * 1024 });
    const filler = 'x'.repeat(50 * 1024 * 1024);
    const body = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: filler }], model: 'gpt-4o-mini', max_tokens: 5 }));
    const reqHeaders = basic.request.headers.map(([k, v]) => [k, k === 'content-length' ? String(body.length) : v] as [string, string]);
    const n = srv.records.length;
    const r = await envoy.exchange({
      request: { headers: reqHeaders, body_chunks: [body] },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.downstream.localReply).toBeUndefined();
    expect(r.upstream.body.length).toBe(body.length);
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.model).toBe('gpt-4o-mini');
    expect(rec!.error).toBeNull();
  });
});

describe('stream endings and hostile sequences', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());

  it('Envoy half-close + cancel mid-exchange is a normal end: the exchange is recorded as aborted and no state is left', async () => {
    const client = rawClient(srv.address);
    const n = srv.records.length;
    const s = client.open();
    s.write({ request_headers: { headers: headers(basic.request.headers) } });
    s.write({ request_body: { body: Buffer.concat(basic.request.body_chunks), end_of_stream: true } });
    await s.next(2);
    s.halfCloseAndCancel();
    const [rec] = (await srv.waitForRecords(n + 1)).slice(n);
    expect(rec!.completion).toBe('aborted');
    expect(rec!.model).toBe(basic.expected.model);
    await until(() => srv.server.activeStreams === 0, 'every stream to close');
    expect(srv.logs.filter((l) => l.includes('"level":"error"'))).toEqual([]);
    client.close();
  });

  it('answers each message exactly once, in order, across both directions', async () => {
    const client = rawClient(srv.address);
    const s = client.open();
    s.write({ request_headers: { headers: headers(basic.request.headers) } });
    s.write({ request_body: { body: Buffer.concat(basic.request.body_chunks), end_of_stream: true } });
    s.write({ response_headers: { headers: headers(basic.response.headers) } });
    const body = Buffer.concat(basic.response.body_chunks);
    s.write({ response_body: { body: body.subarray(0, 50) } });
    s.write({ response_body: { body: body.subarray(50), end_of_stream: true } });
    const answers = await s.next(5);
    await new Promise((r) => setTimeout(r, 50));
    expect(answers.map((a) => a.response)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body', 'response_body']);
    expect(fromStruct(answers[4]!.dynamic_metadata).tokenwarden).toMatchObject({ model: basic.expected.model, usage_source: 'reported' });
    s.halfCloseAndCancel();
    client.close();
  });

  it('a redelivered final chunk and messages after the end are not answered and do not record the exchange twice', async () => {
    const client = rawClient(srv.address);
    const n = srv.records.length;
    const s = client.open();
    s.write({ request_headers: { headers: headers(basic.request.headers) } });
    s.write({ request_body: { body: Buffer.concat(basic.request.body_chunks), end_of_stream: true } });
    s.write({ response_headers: { headers: headers(basic.response.headers) } });
    s.write({ response_body: { body: Buffer.concat(basic.response.body_chunks), end_of_stream: true } });
    s.write({ response_body: { body: Buffer.concat(basic.response.body_chunks), end_of_stream: true } });
    s.write({ response_trailers: { trailers: headers([['x', '1']]) } });
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(s.answers.map((a) => a.response)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body']);
    expect(s.answers[3]!.dynamic_metadata).toBeDefined();
    s.halfCloseAndCancel();
    await until(() => srv.server.activeStreams === 0, 'every stream to close');
    expect(srv.records.length).toBe(n + 1);
    client.close();
  });

  it('an empty ProcessingRequest ends the stream with OK (Envoy continues unprocessed)', async () => {
    const client = rawClient(srv.address);
    const s = client.open();
    s.write({});
    const st = await s.status;
    expect(st.code).toBe(grpc.status.OK);
    client.close();
  });

  it('fuzzed message sequences never crash the server and every stream is cleaned up', async () => {
    const kinds = ['request_headers', 'request_body', 'request_trailers', 'response_headers', 'response_body', 'response_trailers'] as const;
    const client = rawClient(srv.address);
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const streams = [];
    for (let i = 0; i < 40; i++) {
      const s = client.open();
      const count = 1 + rand(8);
      for (let j = 0; j < count; j++) {
        const kind = kinds[rand(kinds.length)]!;
        const hdr = rand(2) ? basic.request.headers : [[':status', String(100 + rand(500))], ['content-type', 'text/event-stream']] as [string, string][];
        const junk = Buffer.from(Array.from({ length: rand(300) }, () => rand(256)));
        if (kind.endsWith('headers')) s.write({ [kind]: { headers: headers(hdr), end_of_stream: rand(4) === 0 } });
        else if (kind.endsWith('body')) s.write({ [kind]: { body: junk, end_of_stream: rand(3) === 0 } });
        else s.write({ [kind]: { trailers: headers([['x', 'y']]) } });
      }
      streams.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const s of streams) s.halfCloseAndCancel();
    await until(() => srv.server.activeStreams === 0, 'every stream to close');
    // Still healthy afterwards.
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.downstream.status).toBe(200);
    expect(srv.logs.filter((l) => l.includes('"level":"error"'))).toEqual([]);
    client.close();
  });
});

describe('internal errors', () => {
  it('an exception while handling a message is logged and counted, and the message is answered unchanged', async () => {
    const srv = await startTestServer(() => {}, {
      resolveConsumer: () => {
        throw new Error('hook bug');
      },
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect(r.errors).toEqual([]);
    expect(r.counters.spurious_msgs_received).toBe(0);
    expect(r.downstream.status).toBe(200);
    expect(r.upstream.body.equals(Buffer.concat(basic.request.body_chunks))).toBe(true);
    expect(srv.logs.some((l) => l.includes('"level":"error"') && l.includes('hook bug'))).toBe(true);
    const metrics = await srv.server.metrics.registry.getSingleMetricAsString('tokenwarden_internal_errors_total');
    expect(metrics).toMatch(/tokenwarden_internal_errors_total 1\b/);
    await srv.stop();
  });
});

describe('admin server', () => {
  it('serves health, readiness and Prometheus metrics named after the GenAI conventions', async () => {
    const srv = await startTestServer((c) => (c.admin.address = '127.0.0.1:0'));
    const base = `http://${srv.adminAddress}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.exchange({ request: { headers: [[':method', 'GET'], [':authority', 'example.com'], [':path', '/'], [':scheme', 'https']] } });
    await envoy.close();
    await srv.waitForRecords(1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const input = basic.expected.usage.input_tokens;
    const inputSum = metrics
      .split('\n')
      .find((l) => l.startsWith('gen_ai_client_token_usage_sum{') && l.includes('gen_ai_token_type="input"') && l.includes('gen_ai_provider_name="openai"'));
    expect(inputSum?.split(' ').at(-1)).toBe(String(input));
    expect(metrics).toMatch(/tokenwarden_exchanges_total\{[^}]*outcome="ok"\} 1\b/);
    expect(metrics).toMatch(/tokenwarden_non_llm_requests_total 1\b/);
    expect(metrics).toMatch(/tokenwarden_extproc_streams_active 0\b/);
    await srv.stop();
  });
});

describe('consumer labels on metrics', () => {
  it('adds tokenwarden_consumer only when metrics.consumer_labels is on', async () => {
    for (const on of [false, true]) {
      const srv = await startTestServer((c) => (c.metrics.consumer_labels = on));
      const envoy = new EnvoyEmulator(srv.address, SIDECAR);
      const withConsumer = basic.request.headers.concat([['x-consumer-id', 'team-a/app-1']]);
      await envoy.exchange({
        request: { headers: withConsumer, body_chunks: basic.request.body_chunks },
        upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
      });
      await envoy.close();
      await srv.waitForRecords(1);
      const text = await srv.server.metrics.registry.getSingleMetricAsString('gen_ai_client_token_usage');
      expect(text.includes('tokenwarden_consumer="team-a/app-1"')).toBe(on);
      await srv.stop();
    }
  });
});

describe('listening, health and shutdown', () => {
  it('serves grpc.health.v1.Health', async () => {
    const srv = await startTestServer();
    const client = new grpc.Client(srv.address, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]),
          (err, res) => (err ? reject(err) : resolve(res!)),
        ),
      );
    // HealthCheckResponse{status: SERVING(1)} encodes as 08 01.
    expect([...(await check('envoy.service.ext_proc.v3.ExternalProcessor'))]).toEqual([0x08, 0x01]);
    client.close();
    await srv.stop();
  });

  it('listens on a Unix socket', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-'));
    const sock = `unix:${path.join(dir, 'tw.sock')}`;
    const srv = await startTestServer((c) => (c.grpc.address = sock));
    expect(srv.address).toBe(sock);
    const envoy = new EnvoyEmulator(sock, SIDECAR);
    const r = await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    expect((r.dynamicMetadata.tokenwarden as Record<string, unknown>).model).toBe(basic.expected.model);
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('replaces a stale Unix socket left by a killed process, but never a live one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-'));
    const file = path.join(dir, 'tw.sock');
    // A socket file nobody listens on any more, as a SIGKILLed sidecar leaves it.
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(lstatSync(file).isSocket()).toBe(true);
    const srv = await startTestServer((c) => (c.grpc.address = `unix:${file}`));
    await expect(startTestServer((c) => (c.grpc.address = `unix:${file}`))).rejects.toThrow();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves mTLS and refuses clients without a certificate', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-tls-'));
    const f = (n: string) => path.join(dir, n);
    const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'));
    for (const who of ['server', 'client']) {
      ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who === 'server' ? 'localhost' : 'envoy'}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
      ossl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-out', f(`${who}.pem`));
    }
    const srv = await startTestServer((c) => {
      c.grpc.address = 'localhost:0';
      c.grpc.tls = { cert_file: f('server.pem'), key_file: f('server.key'), ca_file: f('ca.pem'), require_client_cert: true };
    });
    const ca = readFileSync(f('ca.pem'));
    const ok = new grpc.Client(srv.address, grpc.credentials.createSsl(ca, readFileSync(f('client.key')), readFileSync(f('client.pem'))));
    const noCert = new grpc.Client(srv.address, grpc.credentials.createSsl(ca));
    const ready = (c: grpc.Client) => new Promise<boolean>((resolve) => c.waitForReady(Date.now() + 3000, (err) => resolve(!err)));
    expect(await ready(ok)).toBe(true);
    expect(await ready(noCert)).toBe(false);
    ok.close();
    noCert.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('graceful shutdown lets in-flight exchanges finish and records them', async () => {
    const records: unknown[] = [];
    const config = defaultConfig();
    config.grpc.address = '127.0.0.1:0';
    config.admin.address = '';
    const server = createServer(config, { onExchange: (r) => records.push(r), logger: createLogger('error', () => {}) });
    const { grpcAddress } = await server.start();
    const client = rawClient(grpcAddress);
    const s = client.open();
    s.write({ request_headers: { headers: headers(basic.request.headers) } });
    s.write({ request_body: { body: Buffer.concat(basic.request.body_chunks), end_of_stream: true } });
    await s.next(2);
    const stopping = server.shutdown(2000);
    // The open exchange keeps being served during the grace period.
    s.write({ response_headers: { headers: headers(basic.response.headers) } });
    s.write({ response_body: { body: Buffer.concat(basic.response.body_chunks), end_of_stream: true } });
    await s.next(4);
    s.halfCloseAndCancel();
    await stopping;
    expect(records.length).toBe(1);
    // No new streams are accepted after shutdown.
    const late = rawClient(grpcAddress).open();
    late.write({ request_headers: { headers: headers(basic.request.headers) } });
    expect((await late.status).code).not.toBe(grpc.status.OK);
    client.close();
  });

  it('after the grace period, open streams are ended with OK so Envoy continues unprocessed', async () => {
    const config = defaultConfig();
    config.grpc.address = '127.0.0.1:0';
    config.admin.address = '';
    const server = createServer(config, { logger: createLogger('error', () => {}) });
    const { grpcAddress } = await server.start();
    const client = rawClient(grpcAddress);
    const s = client.open();
    s.write({ request_headers: { headers: headers(basic.request.headers) } });
    await s.next(1);
    await server.shutdown(100);
    expect((await s.status).code).toBe(grpc.status.OK);
    client.close();
  });
});
