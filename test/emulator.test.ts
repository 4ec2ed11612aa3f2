/**
 * Proves the Envoy ext_proc client emulator against scenarios from Envoy's own tests
 * (shared/envoy-ext-proc.md §9), driving a scripted ext_proc server over real gRPC.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WireHeaderValue, WireProcessingRequest, WireProcessingResponse } from '../src/extproc/protocol.js';
import { answerAll, answerFor, setHeaders, streamedAnswer } from './emulator/answers.js';
import { EnvoyEmulator, HeaderList, type EmulatorConfig, type ExchangeInput, type ExchangeResult } from './emulator/envoy.js';
import { applyHeaderMutation } from './emulator/mutations.js';
import { ScriptedServer, type Script, type ScriptedStream } from './emulator/scripted-server.js';

let server: ScriptedServer;
beforeAll(async () => {
  server = await ScriptedServer.start(answerAll());
});
afterAll(() => server.stop());

type Pairs = Array<[string, string]>;
const GET: Pairs = [[':method', 'GET'], [':scheme', 'http'], [':authority', 'host'], [':path', '/']];
const POST: Pairs = [[':method', 'POST'], [':scheme', 'http'], [':authority', 'host'], [':path', '/upload']];
const BODY_100 = 'x'.repeat(100);
const UPSTREAM_200 = { headers: [[':status', '200'], ['content-length', '100']] as Pairs, body_chunks: [BODY_100] };

/** Runs one exchange with `script` as the server; returns the result and the server's stream. */
async function run(
  script: Script,
  config: EmulatorConfig,
  input: ExchangeInput,
  target = server.target,
): Promise<{ r: ExchangeResult; s: ScriptedStream | undefined }> {
  server.script = script;
  const before = server.streams.length;
  const envoy = new EnvoyEmulator(target, config);
  try {
    const r = await envoy.exchange(input);
    expect(r.errors).toEqual([]);
    expect(server.errors).toEqual([]);
    return { r, s: server.streams[before] };
  } finally {
    await envoy.close();
  }
}

const kinds = (r: ExchangeResult): string[] => r.sent.map((m) => m.kind);
const wireHeaders = (m: WireProcessingRequest | undefined): WireHeaderValue[] =>
  (m?.request_headers ?? m?.response_headers)?.headers?.headers ?? [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('stream lifecycle', () => {
  it('#1 server finishes OK without answering: request and response pass unprocessed', async () => {
    const { r } = await run(
      async (s) => {
        await s.next();
        s.finish();
      },
      {},
      { request: { headers: [...GET, ['x-custom', 'keep']] }, upstream: UPSTREAM_200 },
    );
    expect(r.downstream.status).toBe(200);
    expect(r.upstream.headers?.get('x-custom')).toBe('keep');
    expect(r.downstream.body.toString()).toBe(BODY_100);
    expect(kinds(r)).toEqual(['request_headers']);
    expect(r.counters.server_half_closed).toBe(1);
    expect(r.streamEnd?.closedBy).toBe('server');
  });

  it('#4 server finishes OK on response headers: upstream response reaches the client unmodified', async () => {
    const { r } = await run(
      async (s) => {
        const m = await s.next();
        s.send(answerFor(m!, { header_mutation: setHeaders([['x-req', '1']]) }));
        await s.nextOf('response_headers');
        s.finish();
      },
      {},
      { request: { headers: GET }, upstream: { ...UPSTREAM_200, headers: [...UPSTREAM_200.headers, ['x-up', 'u']] } },
    );
    expect(r.upstream.headers?.get('x-req')).toBe('1');
    expect(r.downstream.status).toBe(200);
    expect(r.downstream.headers?.get('x-up')).toBe('u');
    expect(r.downstream.headers?.get('content-length')).toBe('100');
    expect(r.downstream.body.toString()).toBe(BODY_100);
  });

  it('#7 only request headers processed: stream half-closed and reset right after the answer', async () => {
    let closedBeforeUpstreamAnswered = false;
    const { r, s } = await run(
      answerAll((m) => answerFor(m, { header_mutation: setHeaders([['x-new-header', 'new']]) })),
      { processing_mode: { response_header_mode: 'SKIP' } },
      {
        request: { headers: POST, body_chunks: ['body'] },
        upstream: async () => {
          // The close optimization ends the side stream before the HTTP exchange is over.
          closedBeforeUpstreamAnswered = await Promise.race([server.last!.closed.then(() => true), sleep(2000).then(() => false)]);
          return UPSTREAM_200;
        },
      },
    );
    expect(closedBeforeUpstreamAnswered).toBe(true);
    expect(r.upstream.headers?.get('x-new-header')).toBe('new');
    expect(r.upstream.body.toString()).toBe('body');
    expect(r.downstream.status).toBe(200);
    expect(s!.events.map((e) => e.type)).toEqual(['message', 'answer', 'end', 'cancelled']);
    expect(r.streamEnd).toMatchObject({ closedBy: 'envoy', halfClosed: true, cancelled: true });
  });

  it('#8/#9 graceful close waits for the server trailers, or resets after remote_close_timeout', async () => {
    const finishes = await run(
      async (s) => {
        const m = await s.next();
        s.send(answerFor(m!));
        while (await s.next());
        s.finish();
      },
      { processing_mode: { response_header_mode: 'SKIP' }, graceful_close: true },
      { request: { headers: GET } },
    );
    expect(finishes.r.streamEnd).toMatchObject({ closedBy: 'server', halfClosed: true, cancelled: false, code: 0 });

    const silent = await run(
      async (s) => {
        await s.next();
        s.send({ immediate_response: { status: { code: 401 } } });
      },
      { graceful_close: true, remote_close_timeout_ms: 100 },
      { request: { headers: GET } },
    );
    expect(silent.r.downstream.status).toBe(401);
    expect(silent.r.streamEnd).toMatchObject({ closedBy: 'envoy', halfClosed: true, cancelled: true });
    expect(silent.s!.events.map((e) => e.type)).toEqual(['message', 'answer', 'end']);
  });

  it('#10 server half-closes after the headers answer: body reaches upstream unprocessed', async () => {
    const { r } = await run(
      async (s) => {
        const m = await s.next();
        s.send(answerFor(m!, { header_mutation: setHeaders([['x-seen', 'y']]) }));
        s.finish();
      },
      { processing_mode: { request_body_mode: 'STREAMED', response_header_mode: 'SKIP' } },
      { request: { headers: POST, body_chunks: ['01234', '56789'] } },
    );
    expect(r.upstream.body.toString()).toBe('0123456789');
    expect(r.upstream.headers?.get('x-seen')).toBe('y');
    expect(r.counters.server_half_closed).toBe(1);
    expect(r.downstream.status).toBe(200);
  });

  it('#11 gRPC error mid-body with failure_mode_allow: every byte still reaches upstream', async () => {
    const { r } = await run(
      async (s) => {
        s.send(answerFor((await s.next())!));
        for (let i = 0; i < 4; i++) s.send(answerFor((await s.next())!));
        await s.next();
        s.finish(grpc.status.INTERNAL, 'boom');
      },
      { processing_mode: { request_body_mode: 'STREAMED', response_header_mode: 'SKIP' }, failure_mode_allow: true },
      { request: { headers: POST, body_chunks: ['a', 'b', 'c', 'd', 'e', 'f', 'g'], pacing: 'idle' } },
    );
    expect(r.upstream.body.toString()).toBe('abcdefg');
    expect(r.downstream.status).toBe(200);
    expect(r.counters).toMatchObject({ streams_failed: 1, failure_mode_allowed: 1 });
  });

  it('#3 gRPC error without failure_mode_allow: 500 with the gRPC status in the details', async () => {
    const { r } = await run(
      async (s) => {
        s.send(answerFor((await s.next())!));
        s.finish(grpc.status.INTERNAL, 'boom now');
      },
      {},
      { request: { headers: POST, body_chunks: ['data'] }, upstream: async () => new Promise(() => undefined) },
    );
    expect(r.downstream.status).toBe(500);
    expect(r.downstream.localReply).toMatchObject({ details: 'ext_proc_error_gRPC_error_13{boom_now}', source: 'ext_proc' });
    expect(r.counters.streams_failed).toBe(1);
  });

  it('unreachable processor: 500 with the gRPC status, or pass-through with failure_mode_allow', async () => {
    const envoy = new EnvoyEmulator('127.0.0.1:1');
    const refused = await envoy.exchange({ request: { headers: GET } });
    await envoy.close();
    expect(refused.downstream.status).toBe(500);
    expect(refused.downstream.localReply?.details).toMatch(/^ext_proc_error_gRPC_error_14\{/);
    expect(refused.upstream.contacted).toBe(false);

    const open = new EnvoyEmulator('127.0.0.1:1', { failure_mode_allow: true });
    const allowed = await open.exchange({ request: { headers: GET }, upstream: UPSTREAM_200 });
    await open.close();
    expect(allowed.downstream.status).toBe(200);
    expect(allowed.downstream.body.toString()).toBe(BODY_100);
    expect(allowed.counters.failure_mode_allowed).toBe(1);
  });

  it('a message over the channel max send size fails the stream (500)', async () => {
    const { r } = await run(
      answerAll(),
      { processing_mode: { request_body_mode: 'BUFFERED' }, grpc: { max_send_message_length: 1000 } },
      { request: { headers: POST, body_chunks: ['x'.repeat(5000)] } },
    );
    expect(r.downstream.status).toBe(500);
    expect(r.downstream.localReply?.details).toMatch(/^ext_proc_error_gRPC_error_8\{/);
    expect(r.upstream.contacted).toBe(false);
  });

  it('#54 FULL_DUPLEX_STREAMED has no message timer: only the HCM idle timeout ends a silent server', async () => {
    const { r } = await run(
      () => undefined,
      {
        processing_mode: {
          request_body_mode: 'FULL_DUPLEX_STREAMED',
          request_trailer_mode: 'SEND',
          response_body_mode: 'FULL_DUPLEX_STREAMED',
          response_trailer_mode: 'SEND',
        },
        message_timeout_ms: 20,
        stream_idle_timeout_ms: 300,
      },
      { request: { headers: POST, body_chunks: ['data'] } },
    );
    expect(r.downstream.status).toBe(504);
    expect(r.downstream.localReply).toMatchObject({ source: 'envoy', details: 'stream_idle_timeout' });
    expect(r.counters.message_timeouts).toBe(0);
  });

  it('connects over a Unix socket target', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'extproc-'));
    const unixServer = await ScriptedServer.start(
      answerAll((m) => answerFor(m, { header_mutation: setHeaders([['x-via', 'uds']]) })),
      `unix:${path.join(dir, 'p.sock')}`,
    );
    try {
      const envoy = new EnvoyEmulator(unixServer.target);
      const r = await envoy.exchange({ request: { headers: GET } });
      await envoy.close();
      expect(r.upstream.headers?.get('x-via')).toBe('uds');
      expect(r.downstream.headers?.get('x-via')).toBe('uds');
    } finally {
      unixServer.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('header mutations', () => {
  it('#13 headers go out as lower-case raw_value with pseudo-headers first; set and remove apply upstream', async () => {
    const { r, s } = await run(
      answerAll((m) =>
        m.request_headers ? answerFor(m, { header_mutation: setHeaders([['x-new-header', 'new']], false, ['x-remove-this']) }) : undefined,
      ),
      {},
      {
        request: {
          headers: [['Host', 'host'], [':path', '/'], [':method', 'GET'], [':scheme', 'http'], ['X-Remove-This', 'yes'], ['x-forwarded-proto', 'http']],
        },
      },
    );
    const seen = wireHeaders(s!.received[0]);
    const keys = seen.map((h) => h.key);
    expect(keys).toEqual([':path', ':method', ':scheme', ':authority', 'x-remove-this', 'x-forwarded-proto']);
    for (const h of seen) {
      expect(h.value ?? '').toBe('');
      expect(Buffer.from(h.raw_value ?? []).length).toBeGreaterThan(0);
    }
    expect(Buffer.from(seen.find((h) => h.key === ':authority')!.raw_value!).toString()).toBe('host');
    expect(r.upstream.headers?.get('x-new-header')).toBe('new');
    expect(r.upstream.headers?.has('x-remove-this')).toBe(false);
    expect(wireHeaders(s!.received[1]).map((h) => [h.key, Buffer.from(h.raw_value!).toString()])).toEqual([[':status', '200']]);
    expect(r.downstream.status).toBe(200);
  });

  it('#14 only :path changes by default; :scheme, :authority, :method and x-envoy-* are ignored', async () => {
    const { r } = await run(
      answerAll((m) =>
        m.request_headers
          ? answerFor(m, {
              header_mutation: setHeaders([
                [':path', '/mutated_path/bluh'],
                [':scheme', 'https'],
                [':authority', 'new_host'],
                [':method', 'POST'],
                ['x-envoy-foo', 'bar'],
              ]),
            })
          : undefined,
      ),
      {},
      { request: { headers: GET } },
    );
    expect(r.upstream.headers?.toArray().slice(0, 4)).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'host'],
      [':path', '/mutated_path/bluh'],
    ]);
    expect(r.upstream.headers?.has('x-envoy-foo')).toBe(false);
    expect(r.counters.rejected_header_mutations).toBe(4);
    expect(r.downstream.status).toBe(200);
  });

  it('#16 non-UTF-8 bytes travel verbatim both ways; a value without raw_value applies as empty', async () => {
    const bad = Buffer.from([0xc3, 0x28]);
    const written = Buffer.from([0xff, 0xfe, 0x41]);
    const { r, s } = await run(
      answerAll((m) =>
        answerFor(m, {
          header_mutation: {
            set_headers: [
              { header: { key: 'x-new-utf8', raw_value: written } },
              { header: { key: 'x-value-only', value: 'ignored by envoy' } },
            ],
          },
        }),
      ),
      { processing_mode: { response_header_mode: 'SKIP' } },
      { request: { headers: [...GET, ['x-bad-utf8', bad]] } },
    );
    const sent = wireHeaders(s!.received[0]).find((h) => h.key === 'x-bad-utf8');
    expect(Buffer.from(sent!.raw_value!)).toEqual(bad);
    expect(r.upstream.headers?.getRaw('x-new-utf8')).toEqual(written);
    expect(r.upstream.headers?.getRaw('x-value-only')).toEqual(Buffer.alloc(0));
  });

  it('#17 response answer sets a header and :status', async () => {
    const { r } = await run(
      answerAll((m) =>
        m.response_headers ? answerFor(m, { header_mutation: setHeaders([['x-response-processed', '1'], [':status', '201']]) }) : undefined,
      ),
      {},
      { request: { headers: GET }, upstream: UPSTREAM_200 },
    );
    expect(r.downstream.status).toBe(201);
    expect(r.downstream.headers?.get('x-response-processed')).toBe('1');
  });

  it('#18 :status below 200 and appends to a pseudo-header are ignored, other entries apply', async () => {
    const bad = await run(
      answerAll((m) => (m.response_headers ? answerFor(m, { header_mutation: setHeaders([[':status', '100'], ['x-other', 'yes']]) }) : undefined)),
      {},
      { request: { headers: GET } },
    );
    expect(bad.r.downstream.status).toBe(200);
    expect(bad.r.downstream.headers?.get('x-other')).toBe('yes');
    expect(bad.r.counters.rejected_header_mutations).toBe(1);

    const two = await run(
      answerAll((m) =>
        m.response_headers
          ? answerFor(m, {
              header_mutation: {
                set_headers: [
                  { header: { key: ':status', raw_value: Buffer.from('201') }, append: { value: false } },
                  { header: { key: ':status', raw_value: Buffer.from('202') }, append: { value: true } },
                  { header: { key: 'x-multi', raw_value: Buffer.from('a') }, append: { value: true } },
                  { header: { key: 'x-multi', raw_value: Buffer.from('b') }, append: { value: true } },
                ],
              },
            })
          : undefined,
      ),
      {},
      { request: { headers: GET } },
    );
    expect(two.r.downstream.status).toBe(201);
    expect(two.r.downstream.headers?.getAll(':status')).toEqual(['201']);
    expect(two.r.downstream.headers?.getAll('x-multi')).toEqual(['a', 'b']);
  });

  it('#19/#23 rejected mutations: ignored by default, status_on_error with disallow_is_error', async () => {
    const script = answerAll((m) =>
      m.request_headers
        ? answerFor(m, { header_mutation: setHeaders([['Host', 'evil'], [':system-header', 'x']], false, ['x-envoy-special-thing']) })
        : undefined,
    );
    const headers: Pairs = [...GET, ['x-envoy-special-thing', 'keep']];
    const ignored = await run(script, {}, { request: { headers } });
    expect(ignored.r.downstream.status).toBe(200);
    expect(ignored.r.upstream.headers?.get(':authority')).toBe('host');
    expect(ignored.r.upstream.headers?.get('x-envoy-special-thing')).toBe('keep');
    expect(ignored.r.upstream.headers?.get(':system-header')).toBe('x');
    expect(ignored.r.counters.rejected_header_mutations).toBe(2);

    const failing = await run(
      script,
      { status_on_error: 422, mutation_rules: { disallow_system: true, disallow_is_error: true } },
      { request: { headers } },
    );
    expect(failing.r.downstream.status).toBe(422);
    expect(failing.r.upstream.contacted).toBe(false);
  });

  it('#21 more set_headers than max_headers_count fails the request, never open', async () => {
    const many = Array.from({ length: 60 }, (_, i): [string, string] => [`x-h-${i}`, 'v']);
    const { r } = await run(
      answerAll((m) => (m.request_headers ? answerFor(m, { header_mutation: setHeaders(many) }) : undefined)),
      { max_headers_count: 50, failure_mode_allow: true },
      { request: { headers: GET } },
    );
    expect(r.downstream.status).toBe(500);
    expect(r.downstream.localReply?.details).toBe('header_mutation_operation_count_exceeds_limit');
  });

  it('forward_rules limit the headers sent; mutations are not filtered', async () => {
    const { r, s } = await run(
      answerAll((m) => (m.request_headers ? answerFor(m, { header_mutation: setHeaders([['x-secret-2', 'set']]) }) : undefined)),
      { forward_rules: { allowed_headers: [':path', /x-.*/], disallowed_headers: ['x-secret'] } },
      { request: { headers: [...GET, ['x-visible', '1'], ['x-secret', 's'], ['other', 'o']] } },
    );
    expect(wireHeaders(s!.received[0]).map((h) => h.key)).toEqual([':path', 'x-visible']);
    expect(r.upstream.headers?.get('x-secret')).toBe('s');
    expect(r.upstream.headers?.get('x-secret-2')).toBe('set');
  });

  it('clear_route_cache needs a header mutation and is refused by route_cache_action RETAIN', async () => {
    const withoutMutation = answerAll((m) => (m.request_headers ? answerFor(m, { clear_route_cache: true }) : undefined));
    const withMutation = answerAll((m) =>
      m.request_headers ? answerFor(m, { clear_route_cache: true, header_mutation: setHeaders([[':path', '/other']]) }) : undefined,
    );
    const ignored = await run(withoutMutation, {}, { request: { headers: GET } });
    expect(ignored.r.counters.clear_route_cache_ignored).toBe(1);
    expect(ignored.r.routeCacheClears).toBe(0);
    const cleared = await run(withMutation, {}, { request: { headers: GET } });
    expect(cleared.r.routeCacheClears).toBe(1);
    const retained = await run(withMutation, { route_cache_action: 'RETAIN' }, { request: { headers: GET } });
    expect(retained.r.routeCacheClears).toBe(0);
    expect(retained.r.counters.clear_route_cache_disabled).toBe(1);
  });

  it('applies a HeaderMutation like Envoy MutationUtilsTest.TestApplyMutations (10 rejections)', () => {
    const h = new HeaderList([
      [':scheme', 'https'],
      [':method', 'GET'],
      [':path', '/foo/the/bar?size=123'],
      ['host', 'localhost:1000'],
      [':authority', 'localhost:1000'],
      ['content-type', 'text/plain; encoding=UTF8'],
      ['x-append-this', '1'],
      ['x-replace-this', 'Yes'],
      ['x-remove-this', 'Yes'],
      ['x-envoy-strange-thing', 'No'],
    ]);
    const set = (key: string, v: string, append: boolean) => ({ header: { key, raw_value: Buffer.from(v) }, append: { value: append } });
    const res = applyHeaderMutation(
      h,
      {
        set_headers: [
          set('x-append-this', '2', true),
          set('x-append-this', '3', true),
          set('x-remove-and-append-this', '4', true),
          set('x-replace-this', 'no', false),
          set(':status', '418', false),
          set('x-replace-this', 'nope', false),
          {},
          set('host', 'invalid:123', false),
          set('Host', 'invalid:456', false),
          set(':authority', 'invalid:789', false),
          set(':method', 'PATCH', false),
          set(':scheme', 'http', false),
          set('X-Envoy-StrangeThing', 'Yes', false),
          set(':status', 'This is not even an integer', false),
          set(':status', '100', false),
        ],
        remove_headers: ['x-remove-this', 'x-remove-and-append-this', 'host', ':method', ''],
      },
      { rules: {}, replacing: false, dropContentLength: false, maxHeadersCount: 100, maxHeadersKb: 60 },
    );
    expect(res).toEqual({ rejected: 10 });
    expect(h.toObject()).toEqual({
      ':scheme': 'https',
      ':method': 'GET',
      ':path': '/foo/the/bar?size=123',
      ':authority': 'localhost:1000',
      ':status': '418',
      host: 'localhost:1000',
      'content-type': 'text/plain; encoding=UTF8',
      'x-append-this': '1,2,3',
      'x-remove-and-append-this': '4',
      'x-replace-this': 'nope',
      'x-envoy-strange-thing': 'No',
    });
  });
});

describe('body modes and message order', () => {
  it('#24 BUFFERED both ways without bodies: headers carry end_of_stream, no body messages', async () => {
    const { r } = await run(
      answerAll(),
      { processing_mode: { request_body_mode: 'BUFFERED', response_body_mode: 'BUFFERED' } },
      { request: { headers: GET }, upstream: { headers: [[':status', '200']] } },
    );
    expect(r.sent.map((m) => [m.kind, m.eos])).toEqual([
      ['request_headers', true],
      ['response_headers', true],
    ]);
  });

  it('#25 BUFFERED with an empty body: one empty body message with end_of_stream', async () => {
    const { r } = await run(
      answerAll(),
      { processing_mode: { request_body_mode: 'BUFFERED' } },
      { request: { headers: [...POST, ['content-length', '0']], body_chunks: [''] } },
    );
    expect(r.sent.slice(0, 2).map((m) => [m.kind, m.eos, m.body?.length])).toEqual([
      ['request_headers', false, undefined],
      ['request_body', true, 0],
    ]);
    expect(r.upstream.complete).toBe(true);
  });

  it('#26 STREAMED GET without body: headers with end_of_stream and no body message', async () => {
    const { r } = await run(answerAll(), { processing_mode: { request_body_mode: 'STREAMED' } }, { request: { headers: GET } });
    expect(r.sent.filter((m) => m.kind.startsWith('request')).map((m) => [m.kind, m.eos])).toEqual([['request_headers', true]]);
  });

  it('#27 BUFFERED both ways: the server replaces both bodies and owns content-length', async () => {
    const { r } = await run(
      answerAll((m) => {
        if (m.request_headers) return answerFor(m, { header_mutation: setHeaders([['content-length', '13']]) });
        if (m.request_body) return answerFor(m, { body_mutation: { body: Buffer.from('Hello, World!') } });
        if (m.response_headers) return answerFor(m, { header_mutation: { remove_headers: ['content-length'] } });
        if (m.response_body) return answerFor(m, { body_mutation: { body: Buffer.from('123') } });
        return undefined;
      }),
      { processing_mode: { request_body_mode: 'BUFFERED', response_body_mode: 'BUFFERED' } },
      { request: { headers: [...POST, ['content-length', '3']], body_chunks: ['f', 'oo'] }, upstream: UPSTREAM_200 },
    );
    expect(r.sent.find((m) => m.kind === 'request_body')?.body?.toString()).toBe('foo');
    expect(r.upstream.body.toString()).toBe('Hello, World!');
    expect(r.upstream.headers?.get('content-length')).toBe('13');
    expect(r.downstream.body.toString()).toBe('123');
    expect(r.downstream.headers?.has('content-length')).toBe(false);
  });

  it('#28 BUFFERED body replaced with a length that mismatches content-length: 500, upstream never contacted', async () => {
    const { r } = await run(
      answerAll((m) => {
        if (m.request_headers) return answerFor(m, { header_mutation: setHeaders([['content-length', '11']]) });
        if (m.request_body) return answerFor(m, { body_mutation: { body: Buffer.from('Hello, World!') } });
        return undefined;
      }),
      { processing_mode: { request_body_mode: 'BUFFERED' } },
      { request: { headers: [...POST, ['content-length', '3']], body_chunks: ['foo'] } },
    );
    expect(r.downstream.status).toBe(500);
    expect(r.downstream.localReply?.details).toBe('mismatch_between_content_length_and_the_length_of_the_mutated_body');
    expect(r.upstream.contacted).toBe(false);
  });

  it('STREAMED strips content-length and drops a content-length set by the server', async () => {
    const { r } = await run(
      answerAll((m) => (m.request_headers ? answerFor(m, { header_mutation: setHeaders([['content-length', '99']]) }) : undefined)),
      { processing_mode: { request_body_mode: 'STREAMED' } },
      { request: { headers: [...POST, ['content-length', '4']], body_chunks: ['body'] } },
    );
    expect(r.sent[0]!.headers).toContainEqual(['content-length', '4']);
    expect(r.upstream.headers?.has('content-length')).toBe(false);
    expect(r.upstream.body.toString()).toBe('body');
  });

  it('#33 BUFFERED response with trailers: body message without end_of_stream, trailers mutated', async () => {
    const { r } = await run(
      answerAll((m) =>
        m.response_trailers ? answerFor(m, { header_mutation: setHeaders([['x-modified-trailers', 'xxx']]) }) : undefined,
      ),
      { processing_mode: { response_body_mode: 'BUFFERED', response_trailer_mode: 'SEND' } },
      {
        request: { headers: GET },
        upstream: { headers: [[':status', '200']], body_chunks: ['part1', 'part2'], trailers: [['x-test-trailers', 'yes']] },
      },
    );
    expect(r.sent.filter((m) => m.kind.startsWith('response')).map((m) => [m.kind, m.eos])).toEqual([
      ['response_headers', false],
      ['response_body', false],
      ['response_trailers', true],
    ]);
    expect(r.downstream.body.toString()).toBe('part1part2');
    expect(r.downstream.trailers?.toObject()).toEqual({ 'x-test-trailers': 'yes', 'x-modified-trailers': 'xxx' });
  });

  it('#36 STREAMED: data during the headers call is coalesced, later chunks go one by one, empty last chunk', async () => {
    const { r } = await run(
      answerAll(),
      { processing_mode: { request_body_mode: 'STREAMED' } },
      {
        request: {
          headers: POST,
          body_chunks: ['a'.repeat(400), 'a'.repeat(600), { data: 'b'.repeat(2000), wait: 'idle' }, { data: '', wait: 'idle' }],
        },
      },
    );
    expect(r.sent.filter((m) => m.kind === 'request_body').map((m) => [m.body?.length, m.eos])).toEqual([
      [1000, false],
      [2000, false],
      [0, true],
    ]);
    expect(r.upstream.body.length).toBe(3000);
  });

  it('#38 BUFFERED body over the buffer limit: 413 and the upstream is never contacted', async () => {
    const { r } = await run(
      answerAll(),
      { processing_mode: { request_body_mode: 'BUFFERED' }, buffer_limit: 1024 },
      { request: { headers: POST, body_chunks: ['a'.repeat(512), 'a'.repeat(512), 'a'.repeat(512), 'a'.repeat(512)], pacing: 'idle' } },
    );
    expect(r.downstream.status).toBe(413);
    expect(r.downstream.localReply).toMatchObject({ source: 'envoy', details: 'request_payload_too_large' });
    expect(r.upstream.contacted).toBe(false);
  });

  it('#39 CONTINUE_AND_REPLACE turns a GET into a POST with a new body; response path still processed', async () => {
    const { r } = await run(
      answerAll((m) =>
        m.request_headers
          ? answerFor(m, {
              status: 1,
              header_mutation: setHeaders([[':method', 'POST'], ['content-type', 'text/plain']]),
              body_mutation: { body: Buffer.from('Hello, Server!') },
            })
          : undefined,
      ),
      {},
      { request: { headers: GET }, upstream: UPSTREAM_200 },
    );
    expect(r.upstream.headers?.get(':method')).toBe('POST');
    expect(r.upstream.headers?.get('content-type')).toBe('text/plain');
    expect(r.upstream.body.toString()).toBe('Hello, Server!');
    expect(kinds(r)).toEqual(['request_headers', 'response_headers']);
  });

  it('#32 BUFFERED_PARTIAL: body under the limit is one message; headers held and mutable, content-length dropped', async () => {
    const { r } = await run(
      answerAll((m) => {
        if (m.response_headers) return answerFor(m, { header_mutation: setHeaders([['content-length', '100']]) });
        if (m.response_body) return answerFor(m, { header_mutation: setHeaders([['x-partial', 'yes']]) });
        return undefined;
      }),
      { processing_mode: { response_body_mode: 'BUFFERED_PARTIAL' } },
      { request: { headers: GET }, upstream: UPSTREAM_200 },
    );
    expect(r.sent.filter((m) => m.kind === 'response_body').map((m) => [m.body?.length, m.eos])).toEqual([[100, true]]);
    expect(r.downstream.headers?.get('x-partial')).toBe('yes');
    expect(r.downstream.headers?.has('content-length')).toBe(false);
    expect(r.downstream.body.toString()).toBe(BODY_100);
  });

  it('BUFFERED_PARTIAL over the limit: first part processed, data arriving meanwhile and the rest unprocessed', async () => {
    const { r } = await run(
      answerAll((m) => (m.request_body ? answerFor(m, { body_mutation: { body: Buffer.from('X') } }) : undefined)),
      { processing_mode: { request_body_mode: 'BUFFERED_PARTIAL' }, buffer_limit: 1000 },
      {
        request: {
          headers: POST,
          body_chunks: [{ data: 'a'.repeat(600), wait: 'idle' }, 'b'.repeat(600), 'c'.repeat(10), { data: 'd'.repeat(10), wait: 'idle' }],
        },
      },
    );
    expect(r.sent.filter((m) => m.kind === 'request_body').map((m) => [m.body?.length, m.eos])).toEqual([[1200, false]]);
    expect(r.upstream.body.toString()).toBe('X' + 'c'.repeat(10) + 'd'.repeat(10));
  });

  it('#37 send_body_without_waiting_for_header_response: the server may read the whole body before answering', async () => {
    const { r } = await run(
      async (s) => {
        const h = await s.next();
        const bodies: WireProcessingRequest[] = [];
        for (let m = await s.next(); m; m = m.request_body?.end_of_stream ? null : await s.next()) bodies.push(m);
        s.send(answerFor(h!, { header_mutation: setHeaders([['x-new-header', 'new']]) }));
        for (const b of bodies) s.send(answerFor(b, { body_mutation: { body: Buffer.from('r') } }));
        await answerAll()(s);
      },
      { processing_mode: { request_body_mode: 'STREAMED' }, send_body_without_waiting_for_header_response: true },
      { request: { headers: POST, body_chunks: ['one', 'two', 'three', 'four'] } },
    );
    expect(r.sent.filter((m) => m.kind === 'request_body').map((m) => m.body?.toString())).toEqual(['one', 'two', 'three', 'four']);
    expect(r.upstream.body.toString()).toBe('rrrr');
    expect(r.upstream.headers?.get('x-new-header')).toBe('new');
  });

  it('#53 FULL_DUPLEX_STREAMED with trailers: upstream gets exactly the streamed answers, then mutated trailers', async () => {
    const { r } = await run(
      async (s) => {
        const h = await s.next();
        await s.nextOf('request_trailers');
        s.send(answerFor(h!));
        s.send(streamedAnswer('request', 'AA', false));
        s.send(streamedAnswer('request', 'BB', false));
        s.send({ request_trailers: { header_mutation: setHeaders([['x-trailer-added', '1']]) } });
        await answerAll()(s);
      },
      { processing_mode: { request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND' } },
      { request: { headers: [...POST, ['content-length', '9']], body_chunks: ['abc', 'def', 'ghi'], trailers: [['x-trailer', 't']] } },
    );
    expect(kinds(r).slice(0, 5)).toEqual(['request_headers', 'request_body', 'request_body', 'request_body', 'request_trailers']);
    expect(r.upstream.body.toString()).toBe('AABB');
    expect(r.upstream.headers?.has('content-length')).toBe(false);
    expect(r.upstream.trailers?.toObject()).toEqual({ 'x-trailer': 't', 'x-trailer-added': '1' });
  });

  it('#51 mode_override honoured only when it matches allowed_override_modes exactly', async () => {
    const override = answerAll((m) => (m.request_headers ? { ...answerFor(m), mode_override: { request_body_mode: 1 } } : undefined));
    const allowed = await run(
      override,
      { allow_mode_override: true, allowed_override_modes: [{ request_body_mode: 'STREAMED' }] },
      { request: { headers: POST, body_chunks: [{ data: 'body', wait: 'idle' }] } },
    );
    expect(kinds(allowed.r)).toContain('request_body');

    const toNone = answerAll((m) => (m.request_headers ? { ...answerFor(m), mode_override: { request_body_mode: 0 } } : undefined));
    const disallowed = await run(
      toNone,
      { processing_mode: { request_body_mode: 'STREAMED' }, allow_mode_override: true, allowed_override_modes: [{ request_body_mode: 'BUFFERED' }] },
      { request: { headers: POST, body_chunks: [{ data: 'body', wait: 'idle' }] } },
    );
    expect(kinds(disallowed.r)).toContain('request_body');

    const unrestricted = await run(
      toNone,
      { processing_mode: { request_body_mode: 'STREAMED' }, allow_mode_override: true },
      { request: { headers: POST, body_chunks: [{ data: 'body', wait: 'idle' }] } },
    );
    expect(kinds(unrestricted.r)).not.toContain('request_body');
    expect(unrestricted.r.upstream.body.toString()).toBe('body');
  });

  it('mode_override: DEFAULT keeps static header modes, request_header_mode is not compared, sbww disables it', async () => {
    const override = answerAll((m) =>
      m.request_headers ? { ...answerFor(m), mode_override: { request_header_mode: 2, request_body_mode: 1 } } : undefined,
    );
    const kept = await run(
      override,
      {
        processing_mode: { response_header_mode: 'SKIP' },
        allow_mode_override: true,
        allowed_override_modes: [{ request_header_mode: 'SEND', request_body_mode: 'STREAMED', response_header_mode: 'SKIP' }],
      },
      { request: { headers: POST, body_chunks: [{ data: 'body', wait: 'idle' }] } },
    );
    expect(kinds(kept.r)).toEqual(['request_headers', 'request_body']);

    const disabled = await run(
      override,
      { allow_mode_override: true, send_body_without_waiting_for_header_response: true },
      { request: { headers: POST, body_chunks: [{ data: 'body', wait: 'idle' }] } },
    );
    expect(kinds(disabled.r)).toEqual(['request_headers', 'response_headers']);
  });

  it('#52 mode_override NONE -> FULL_DUPLEX_STREAMED: upstream body is what the server streams back', async () => {
    const { r } = await run(
      async (s) => {
        s.send({ ...answerFor((await s.next())!), mode_override: { request_body_mode: 4 } });
        await s.nextOf('request_body');
        s.send(streamedAnswer('request', 'bbbbb', false));
        await s.nextOf('request_body');
        s.send(streamedAnswer('request', '0123456789', true));
        const resp = await s.nextOf('response_headers');
        if (resp) s.send(answerFor(resp));
      },
      { allow_mode_override: true },
      { request: { headers: POST, body_chunks: [{ data: 'first', wait: 'idle' }, 'second'] } },
    );
    expect(r.upstream.body.toString()).toBe('bbbbb0123456789');
    expect(r.downstream.status).toBe(200);
  });

  it('#50 FULL_DUPLEX body answer before the headers answer is spurious: 500', async () => {
    const { r } = await run(
      async (s) => {
        await s.next();
        await s.nextOf('request_body');
        s.send(streamedAnswer('request', 'early', true));
      },
      {
        processing_mode: {
          request_body_mode: 'FULL_DUPLEX_STREAMED',
          request_trailer_mode: 'SEND',
          response_body_mode: 'FULL_DUPLEX_STREAMED',
          response_trailer_mode: 'SEND',
        },
      },
      { request: { headers: POST, body_chunks: ['data'] } },
    );
    expect(r.downstream.status).toBe(500);
    expect(r.counters.spurious_msgs_received).toBe(1);
  });
});

describe('immediate responses', () => {
  it('#41 immediate 401 with body, details and headers; side stream reset; upstream untouched', async () => {
    const body = '{"reason": "Not authorized"}';
    const { r } = await run(
      async (s) => {
        await s.next();
        s.send({
          immediate_response: {
            status: { code: 401 },
            body: Buffer.from(body),
            details: 'Failed because you are not authorized',
            headers: setHeaders([['x-failure-reason', 'testing'], ['content-type', 'application/json']]),
          },
        });
      },
      {},
      { request: { headers: GET } },
    );
    expect(r.downstream.status).toBe(401);
    expect(r.downstream.body.toString()).toBe(body);
    expect(r.downstream.headers?.get('x-failure-reason')).toBe('testing');
    expect(r.downstream.headers?.get('content-type')).toBe('application/json');
    expect(r.downstream.localReply).toMatchObject({ details: 'Failed_because_you_are_not_authorized', delivery: 'local' });
    expect(r.upstream.contacted).toBe(false);
    expect(r.counters.immediate_responses_sent).toBe(1);
    expect(r.streamEnd).toMatchObject({ closedBy: 'envoy', cancelled: true });
  });

  it('#42 immediate response on a STREAMED request chunk: upstream request reset, header mutation lost', async () => {
    const { r } = await run(
      async (s) => {
        s.send(answerFor((await s.next())!, { header_mutation: setHeaders([['foo', 'bar']]) }));
        await s.nextOf('request_body');
        s.send({ immediate_response: { status: { code: 400 }, body: Buffer.from('{"reason": "Request too evil"}') } });
      },
      { processing_mode: { request_body_mode: 'STREAMED' } },
      { request: { headers: POST, body_chunks: [{ data: 'evil', wait: 'idle' }, { data: 'more', wait: 'idle' }] } },
    );
    expect(r.downstream.status).toBe(400);
    expect(r.downstream.body.toString()).toBe('{"reason": "Request too evil"}');
    expect(r.downstream.headers?.has('foo')).toBe(false);
    expect(r.upstream).toMatchObject({ contacted: true, reset: true });
    expect(r.upstream.body.length).toBe(0);
  });

  it('#43 immediate response to a BUFFERED response body is a direct reply without earlier mutations', async () => {
    const { r } = await run(
      answerAll((m) => {
        if (m.response_headers) return answerFor(m, { header_mutation: setHeaders([['foo', 'bar']]) });
        if (m.response_body) return { immediate_response: { status: { code: 400 }, body: Buffer.from('denied') } };
        return undefined;
      }),
      { processing_mode: { response_body_mode: 'BUFFERED' } },
      { request: { headers: GET }, upstream: UPSTREAM_200 },
    );
    expect(r.downstream.status).toBe(400);
    expect(r.downstream.body.toString()).toBe('denied');
    expect(r.downstream.headers?.has('foo')).toBe(false);
    expect(r.downstream.localReply?.delivery).toBe('direct');
  });

  it('immediate response after the response headers went downstream resets the stream', async () => {
    const { r } = await run(
      answerAll((m) => (m.response_body ? { immediate_response: { status: { code: 403 } } } : undefined)),
      { processing_mode: { response_body_mode: 'STREAMED' } },
      { request: { headers: GET }, upstream: { headers: [[':status', '200']], body_chunks: [{ data: 'chunk', wait: 'idle' }] } },
    );
    expect(r.downstream).toMatchObject({ status: 200, reset: true, complete: false });
    expect(r.downstream.localReply).toMatchObject({ status: 403, delivery: 'reset' });
    expect(r.downstream.body.length).toBe(0);
  });

  it('#44 immediate status below 200 becomes 200', async () => {
    const { r } = await run(
      async (s) => {
        await s.next();
        s.send({ immediate_response: { status: { code: 100 }, body: Buffer.from('{"reason": "Because"}') } });
      },
      {},
      { request: { headers: GET } },
    );
    expect(r.downstream.status).toBe(200);
    expect(r.downstream.body.toString()).toBe('{"reason": "Because"}');
    expect(r.downstream.headers?.get('content-type')).toBe('text/plain');
  });
  it('immediate response to a gRPC request is rendered as a gRPC error', async () => {
    const { r } = await run(
      async (s) => {
        await s.next();
        s.send({ immediate_response: { status: { code: 403 }, body: Buffer.from('no way 100%') } });
      },
      {},
      { request: { headers: [...POST, ['content-type', 'application/grpc']], body_chunks: ['msg'] } },
    );
    expect(r.downstream.status).toBe(200);
    expect(r.downstream.headers?.get('grpc-status')).toBe('7');
    expect(r.downstream.headers?.get('grpc-message')).toBe('no way 100%25');
    expect(r.downstream.body.length).toBe(0);
  });
});

describe('timeouts and failures', () => {
  it('#46 no answer within message_timeout: 504, whatever status_on_error says', async () => {
    const never: Script = () => undefined;
    const first = await run(never, {}, { request: { headers: GET } });
    expect(first.r.downstream.status).toBe(504);
    expect(first.r.downstream.localReply?.details).toBe('ext_proc_error_per-message_timeout_exceeded');
    expect(first.r.counters).toMatchObject({ message_timeouts: 1, immediate_responses_sent: 1 });

    const second = await run(never, { message_timeout_ms: 100, status_on_error: 502 }, { request: { headers: GET } });
    expect(second.r.downstream.status).toBe(504);
  });

  it('#47 late answer with failure_mode_allow: request continues and the processor is ignored', async () => {
    const { r } = await run(
      async (s) => {
        const m = await s.next();
        await s.closed;
        s.send(answerFor(m!));
      },
      { failure_mode_allow: true, message_timeout_ms: 50 },
      { request: { headers: GET }, upstream: UPSTREAM_200 },
    );
    expect(r.downstream.status).toBe(200);
    expect(kinds(r)).toEqual(['request_headers']);
    expect(r.counters).toMatchObject({ message_timeouts: 1, failure_mode_allowed: 1 });
  });

  it('#48 override_message_timeout: first accepted up to max_message_timeout, second ignored; disabled by default', async () => {
    const extend: Script = async (s) => {
      const m = await s.next();
      s.send({ override_message_timeout: { seconds: 0, nanos: 600_000_000 } });
      s.send({ override_message_timeout: { seconds: 0, nanos: 10_000_000 } });
      await sleep(150);
      s.send(answerFor(m!));
      await answerAll()(s);
    };
    const accepted = await run(extend, { message_timeout_ms: 50, max_message_timeout_ms: 1000 }, { request: { headers: GET } });
    expect(accepted.r.downstream.status).toBe(200);
    expect(accepted.r.counters).toMatchObject({ override_message_timeout_received: 1, override_message_timeout_ignored: 1 });

    const disabled = await run(extend, { message_timeout_ms: 50 }, { request: { headers: GET } });
    expect(disabled.r.downstream.status).toBe(504);
    expect(disabled.r.counters.override_message_timeout_ignored).toBeGreaterThanOrEqual(1);
  });

  it('#49 wrong answer kind or empty answer: fail closed (500) or fail open with failure_mode_allow', async () => {
    const wrongKind: Script = async (s) => {
      await s.next();
      s.send({ request_body: { response: {} } });
    };
    const closed = await run(wrongKind, {}, { request: { headers: GET } });
    expect(closed.r.downstream.status).toBe(500);
    expect(closed.r.downstream.localReply?.details).toBe('spurious_message');
    expect(closed.r.counters.spurious_msgs_received).toBe(1);

    const open = await run(wrongKind, { failure_mode_allow: true }, { request: { headers: [...GET, ['x-a', 'b']] }, upstream: UPSTREAM_200 });
    expect(open.r.downstream.status).toBe(200);
    expect(open.r.upstream.headers?.get('x-a')).toBe('b');
    expect(open.r.counters).toMatchObject({ spurious_msgs_received: 1, failure_mode_allowed: 1 });
    expect(kinds(open.r)).toEqual(['request_headers']);

    const empty = await run(
      async (s) => {
        await s.next();
        s.send({});
      },
      {},
      { request: { headers: GET } },
    );
    expect(empty.r.downstream.status).toBe(500);
    expect(empty.r.counters.spurious_msgs_received).toBe(1);

    const twice = await run(
      async (s) => {
        const m = await s.next();
        s.send(answerFor(m!));
        s.send(answerFor(m!));
      },
      {},
      { request: { headers: GET } },
    );
    expect(twice.r.downstream.status).toBe(500);
    expect(twice.r.counters).toMatchObject({ spurious_msgs_received: 1, stream_msgs_received: 1 });
  });
});

describe('observability mode', () => {
  it('#55 send and go: everything mirrored and flagged, answers ignored, deferred close', async () => {
    const { r, s } = await run(
      answerAll((m) => {
        if (m.request_body) return answerFor(m, { body_mutation: { body: Buffer.from('mutated') } });
        return answerFor(m, { header_mutation: setHeaders([['x-mutated', '1']]) });
      }),
      {
        observability_mode: true,
        deferred_close_timeout_ms: 100,
        processing_mode: { request_body_mode: 'STREAMED', response_body_mode: 'STREAMED' },
      },
      { request: { headers: [...POST, ['content-length', '8']], body_chunks: ['orig', 'inal'] }, upstream: UPSTREAM_200 },
    );
    await s!.closed;
    expect(r.upstream.body.toString()).toBe('original');
    expect(r.upstream.headers?.has('x-mutated')).toBe(false);
    expect(r.upstream.headers?.get('content-length')).toBe('8');
    expect(r.downstream.headers?.has('x-mutated')).toBe(false);
    expect(r.downstream.body.toString()).toBe(BODY_100);
    expect(s!.received.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'request_body', 'response_headers', 'response_body']);
    for (const m of s!.received) {
      expect(m.observability_mode).toBe(true);
      expect(m.protocol_config).toBeNull();
    }
    expect(r.answers.every((a) => a.outcome === 'ignored')).toBe(true);
    expect(r.streamEnd).toMatchObject({ closedBy: 'envoy', cancelled: true });
  });

  it('#56 BUFFERED is not mirrored; a gRPC error still fails the request', async () => {
    const wrongMode = await run(
      answerAll(),
      { observability_mode: true, deferred_close_timeout_ms: 50, processing_mode: { request_body_mode: 'BUFFERED' } },
      { request: { headers: POST, body_chunks: ['data'] } },
    );
    expect(wrongMode.r.downstream.status).toBe(200);
    expect(wrongMode.r.upstream.body.toString()).toBe('data');
    expect(kinds(wrongMode.r)).toEqual(['request_headers', 'response_headers']);

    const failing = await run(
      async (s) => {
        await s.next();
        s.finish(grpc.status.INTERNAL, 'logging failed');
      },
      { observability_mode: true, deferred_close_timeout_ms: 50, stream_idle_timeout_ms: 5000 },
      // The upstream is slow: the error arrives while the request waits for it.
      { request: { headers: GET }, upstream: () => new Promise(() => undefined) },
    );
    expect(failing.r.downstream.status).toBe(500);
    expect(failing.r.upstream).toMatchObject({ contacted: true, reset: true });
  });
});

describe('metadata, attributes, protocol_config', () => {
  it('#60 dynamic_metadata: only receiving namespaces kept, merged per key; forwarded on every message', async () => {
    const { r, s } = await run(
      answerAll((m): WireProcessingResponse | undefined => {
        if (m.request_headers) {
          return {
            ...answerFor(m),
            dynamic_metadata: {
              fields: {
                receiving_ns: { structValue: { fields: { k: { stringValue: 'v' }, n: { numberValue: 1 } } } },
                other_ns: { structValue: { fields: { x: { boolValue: true } } } },
              },
            },
          };
        }
        if (m.response_headers) {
          return {
            ...answerFor(m),
            dynamic_metadata: { fields: { receiving_ns: { structValue: { fields: { n: { numberValue: 2 }, list: { listValue: { values: [{ stringValue: 'a' }] } } } } } } },
          };
        }
        return undefined;
      }),
      {
        metadata_options: {
          forwarding_namespaces: { untyped: ['forwarding_ns', 'receiving_ns'] },
          receiving_namespaces: { untyped: ['receiving_ns'] },
        },
      },
      { request: { headers: GET }, dynamic_metadata: { forwarding_ns: { foo: 'bar' } } },
    );
    expect(r.dynamicMetadata).toEqual({ forwarding_ns: { foo: 'bar' }, receiving_ns: { k: 'v', n: 2, list: ['a'] } });
    const first = s!.received[0]!.metadata_context?.filter_metadata ?? {};
    expect(Object.keys(first)).toEqual(['forwarding_ns']);
    const second = s!.received[1]!.metadata_context?.filter_metadata ?? {};
    expect(second.receiving_ns?.fields?.k?.stringValue).toBe('v');
  });

  it('#60 attributes only on the first message of each direction; unavailable ones omitted', async () => {
    const { s } = await run(
      answerAll(),
      {
        request_attributes: ['request.path', 'source.address', 'connection.mtls'],
        response_attributes: ['response.code'],
        processing_mode: { request_body_mode: 'STREAMED', response_body_mode: 'BUFFERED' },
      },
      {
        request: { headers: POST, body_chunks: [{ data: 'x', wait: 'idle' }] },
        upstream: UPSTREAM_200,
        attributes: { 'request.path': '/upload', 'source.address': '10.0.0.1:5555', 'response.code': 200 },
      },
    );
    const attrs = s!.received.map((m) => m.attributes?.['envoy.filters.http.ext_proc']?.fields);
    expect(s!.received.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body']);
    expect(Object.keys(attrs[0] ?? {}).sort()).toEqual(['request.path', 'source.address']);
    expect(attrs[0]?.['source.address']?.stringValue).toBe('10.0.0.1:5555');
    expect(attrs[1]).toBeUndefined();
    expect(attrs[2]?.['response.code']?.numberValue).toBe(200);
    expect(attrs[3]).toBeUndefined();
  });

  it('#60 protocol_config only on the first message, which can be a body message', async () => {
    const { s } = await run(
      answerAll(),
      {
        processing_mode: { request_header_mode: 'SKIP', request_body_mode: 'STREAMED', response_body_mode: 'STREAMED' },
        send_body_without_waiting_for_header_response: true,
      },
      { request: { headers: POST, body_chunks: ['abc'] }, upstream: UPSTREAM_200 },
    );
    const first = s!.received[0]!;
    expect(first.request).toBe('request_body');
    expect(first.protocol_config).toMatchObject({
      request_body_mode: 1,
      response_body_mode: 1,
      send_body_without_waiting_for_header_response: true,
    });
    expect(s!.received.slice(1).every((m) => m.protocol_config == null)).toBe(true);
  });
});
