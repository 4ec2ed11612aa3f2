/**
 * When the server ends each Process RPC (spec §1.6 rule 1, §1.7): with status OK, right after the
 * last answer Envoy can need under the effective processing mode, never before. For every processing
 * mode and message shape, through the Envoy emulator with both of Envoy's close styles:
 * - the server ended the RPC itself (its own count), and the last answer before its end is the one
 *   the table names;
 * - every message Envoy sent was answered (nothing passed unprocessed because the server left early),
 *   the client got the upstream's response intact, and an LLM exchange's full metadata arrived on
 *   that last answer and its record is complete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { EnvoyEmulator, type EmulatorConfig, type ExchangeInput } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';

const fixtures = new Map(loadFixtures().map((f) => [f.name, f]));
const JSON_CHAT = fixtures.get('openai_chat_completions_basic')!;
const SSE_CHAT = fixtures.get('openai_chat_completions_stream_include_usage')!;

type Traffic = 'json' | 'sse' | 'non-llm' | 'headers-only-response' | 'budget-refused';

function exchange(traffic: Traffic, opts: { trailers?: boolean } = {}): ExchangeInput {
  const trailers = opts.trailers ? { trailers: [['x-upstream-trailer', '1']] as [string, string][] } : {};
  if (traffic === 'non-llm') {
    return {
      request: { headers: [[':method', 'POST'], [':path', '/orders'], [':authority', 'orders.internal'], ['content-type', 'application/json']], body_chunks: ['{"id":1}'] },
      upstream: { headers: [[':status', '200'], ['content-type', 'application/json']], body_chunks: ['{"ok":', 'true}'], ...trailers },
    };
  }
  const fx: Fixture = traffic === 'sse' ? SSE_CHAT : JSON_CHAT;
  const consumer = traffic === 'budget-refused' ? 'refused-app' : 'lifecycle-app';
  return {
    request: { headers: [...fx.request.headers, ['x-consumer-id', consumer]], body_chunks: fx.request.body_chunks },
    upstream:
      traffic === 'headers-only-response'
        ? { headers: [[':status', '204']] }
        : { headers: fx.response.headers, body_chunks: fx.response.body_chunks, ...trailers },
    attributes: { 'source.address': '10.0.0.9:5000' },
  };
}

const mode = (m: EmulatorConfig['processing_mode']): EmulatorConfig => ({ ...SIDECAR, processing_mode: { ...SIDECAR.processing_mode, ...m } });
const DUPLEX = mode({
  request_body_mode: 'FULL_DUPLEX_STREAMED',
  response_body_mode: 'FULL_DUPLEX_STREAMED',
  request_trailer_mode: 'SEND',
  response_trailer_mode: 'SEND',
});

interface Case {
  name: string;
  config: EmulatorConfig;
  traffic: Traffic;
  trailers?: boolean;
  /** The answer after which the server ends the RPC. */
  endsAfter: string;
  /** Whether the record sees the whole response (false: Envoy never sends the body). */
  complete?: boolean;
}

const CASES: Case[] = [
  { name: 'sidecar (BUFFERED / STREAMED), JSON', config: SIDECAR, traffic: 'json', endsAfter: 'response_body' },
  { name: 'sidecar, SSE stream', config: SIDECAR, traffic: 'sse', endsAfter: 'response_body' },
  { name: 'sidecar, non-LLM (mode_override)', config: SIDECAR, traffic: 'non-llm', endsAfter: 'request_headers' },
  { name: 'non-LLM where Envoy does not allow the override', config: { ...SIDECAR, allow_mode_override: false }, traffic: 'non-llm', endsAfter: 'request_headers' },
  { name: 'response with headers only (204)', config: SIDECAR, traffic: 'headers-only-response', endsAfter: 'response_headers' },
  { name: 'enforce budget refuses: immediate response', config: SIDECAR, traffic: 'budget-refused', endsAfter: 'immediate_response' },
  { name: 'STREAMED / STREAMED, SSE', config: mode({ request_body_mode: 'STREAMED' }), traffic: 'sse', endsAfter: 'response_body' },
  { name: 'BUFFERED / BUFFERED, JSON', config: mode({ response_body_mode: 'BUFFERED' }), traffic: 'json', endsAfter: 'response_body' },
  { name: 'BUFFERED_PARTIAL both ways, JSON', config: mode({ request_body_mode: 'BUFFERED_PARTIAL', response_body_mode: 'BUFFERED_PARTIAL' }), traffic: 'json', endsAfter: 'response_body' },
  { name: 'response body NONE: the response headers are the last message', config: mode({ response_body_mode: 'NONE' }), traffic: 'json', endsAfter: 'response_headers', complete: false },
  { name: 'response headers SKIP, response body STREAMED', config: mode({ response_header_mode: 'SKIP' }), traffic: 'sse', endsAfter: 'response_body' },
  { name: 'request body NONE, response STREAMED', config: mode({ request_body_mode: 'NONE' }), traffic: 'sse', endsAfter: 'response_body' },
  { name: 'response trailers SEND, upstream sends trailers', config: mode({ response_trailer_mode: 'SEND' }), traffic: 'sse', trailers: true, endsAfter: 'response_trailers' },
  { name: 'response trailers SEND, upstream sends none', config: mode({ response_trailer_mode: 'SEND' }), traffic: 'json', endsAfter: 'response_body' },
  { name: 'FULL_DUPLEX_STREAMED both ways, SSE', config: DUPLEX, traffic: 'sse', endsAfter: 'response_body' },
  { name: 'FULL_DUPLEX_STREAMED both ways, upstream trailers', config: DUPLEX, traffic: 'sse', trailers: true, endsAfter: 'response_trailers' },
  { name: 'FULL_DUPLEX_STREAMED, non-LLM: echoed to the end of the response', config: DUPLEX, traffic: 'non-llm', endsAfter: 'response_body' },
];

const CLOSES: Array<[string, Partial<EmulatorConfig>]> = [
  ['half-close + cancel', {}],
  ['graceful close', { graceful_close: true }],
];

describe('the server ends each Process RPC right after the last answer Envoy can need', () => {
  let srv: TestServer;
  beforeAll(async () => {
    const parsed = parseConfig(
      `budgets:\n  - id: refuse\n    mode: enforce\n    select: { consumers: [refused-app] }\n    limits: [{ requests: 1, per: day }]\n`,
      'lifecycle.yaml',
      {},
    );
    srv = await startTestServer((c) => {
      c.budgets = parsed.budgets;
    });
    // Uses up the budget: the next request of refused-app is refused before the upstream.
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    expect((await envoy.exchange(exchange('budget-refused'))).downstream.status).toBe(200);
    await envoy.close();
  });
  afterAll(() => srv.stop());

  const endedByServer = async (): Promise<number> => (await srv.server.metrics.streamsEndedByServer.get()).values[0]?.value ?? 0;

  describe.each(CLOSES)('Envoy closing with %s', (_close, closeConfig) => {
    it.each(CASES)('$name: ends after $endsAfter', async (c) => {
      const envoy = new EnvoyEmulator(srv.address, { ...c.config, ...closeConfig });
      const records = srv.records.length;
      const ended = await endedByServer();
      const input = exchange(c.traffic, { trailers: c.trailers ?? false });
      const r = await envoy.exchange(input);
      await envoy.close();

      expect(r.errors).toEqual([]);
      expect(await endedByServer()).toBe(ended + 1);
      expect(r.answers.at(-1)?.kind).toBe(c.endsAfter);
      expect(r.counters.spurious_msgs_received + r.counters.streams_failed + r.counters.message_timeouts).toBe(0);
      expect(r.answers.map((a) => a.outcome).filter((o) => o !== 'applied')).toEqual([]);
      // Never earlier: each message Envoy sent was answered (FULL_DUPLEX: one echo per chunk). A
      // non-LLM request body Envoy sends before it reads the end passes unchanged (§1.7).
      if (c.traffic === 'non-llm') expect(r.upstream.body.toString()).toBe('{"id":1}');
      else expect(r.answers.length).toBe(r.sent.length);

      if (c.traffic === 'budget-refused') {
        expect(r.downstream.status).toBe(429);
        expect(r.upstream.contacted).toBe(false);
      } else {
        const upstream = typeof input.upstream === 'object' ? input.upstream : null;
        const sent = upstream!.headers as Array<[string, string]>;
        expect(r.downstream.status).toBe(Number(sent.find(([k]) => k === ':status')![1]));
        expect(r.downstream.body.toString()).toBe((upstream!.body_chunks ?? []).map(String).join(''));
        if (c.trailers) expect(r.downstream.trailers?.get('x-upstream-trailer')).toBe('1');
      }
      if (c.traffic === 'non-llm') {
        expect(srv.records.length).toBe(records);
        return;
      }
      const [record] = (await srv.waitForRecords(records + 1)).slice(records);
      expect(record!.completion).toBe(c.complete === false ? 'aborted' : 'complete');
      // The exchange's metadata rode on the last answer, written before the RPC ended.
      const md = r.dynamicMetadata['tokenwarden'];
      expect(md?.['consumer']).toBe(record!.consumer?.id);
      if (c.traffic !== 'budget-refused') expect(md?.['usage_source']).toBe(record!.usageSource);
    });
  });

  it('observability mode: the server ends the mirrored stream once the response ended, without answering', async () => {
    const envoy = new EnvoyEmulator(srv.address, OBSERVABILITY);
    const records = srv.records.length;
    const r = await envoy.exchange(exchange('sse'));
    await envoy.close();
    expect(r.answers).toEqual([]);
    expect(r.streamEnd).toMatchObject({ closedBy: 'server', code: 0 });
    const [record] = (await srv.waitForRecords(records + 1)).slice(records);
    expect(record!.completion).toBe('complete');
  });
});
