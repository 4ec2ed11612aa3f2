/**
 * The GenAI series as a Grafana user sees them: every provider fixture replayed through the real
 * server must come out with the conventions' values (gen_ai_provider_name="aws.bedrock",
 * gen_ai_operation_name="chat"), tokenwarden's API id in its own label, and no empty label value;
 * and the latency histograms must measure the timings the emulated upstream was given.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExchangeRecord } from '../../src/domain.js';
import { hostOf } from '../../src/traffic/exchange.js';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from '../support/envoy-modes.js';
import { loadFixtures } from '../support/fixtures.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** The conventions' gen_ai.provider.name for each tokenwarden provider id (written out, not imported). */
const PROVIDER: Record<string, string> = {
  openai: 'openai',
  azure_openai: 'azure.ai.openai',
  anthropic: 'anthropic',
  aws_bedrock: 'aws.bedrock',
  gcp_gemini: 'gcp.gemini',
  gcp_vertex: 'gcp.vertex_ai',
  mistral: 'mistral_ai',
  groq: 'groq',
  cohere: 'cohere',
  ollama: 'ollama',
  vllm: 'vllm',
  openai_compatible: 'openai_compatible',
};

/** The conventions' gen_ai.operation.name for each tokenwarden API id. */
const OPERATION: Record<string, string> = {
  chat_completions: 'chat',
  responses: 'chat',
  messages: 'chat',
  converse: 'chat',
  converse_stream: 'chat',
  invoke: 'chat',
  invoke_with_response_stream: 'chat',
  ollama_chat: 'chat',
  cohere_chat: 'chat',
  embeddings: 'embeddings',
  generate_content: 'generate_content',
  stream_generate_content: 'generate_content',
};

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition lines into series (label values here never hold `",`). */
function parseSeries(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const fixtures = loadFixtures().filter((fx) => fx.expected.provider !== 'unknown');

describe('GenAI convention values in /metrics', () => {
  let srv: TestServer;
  let series: Series[];
  let text: string;
  beforeAll(async () => {
    srv = await startTestServer((c) => (c.metrics.consumer_labels = true));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    for (const fx of fixtures) {
      await envoy.exchange({
        request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
        upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
      });
    }
    await envoy.close();
    await srv.waitForRecords(fixtures.length);
    text = await srv.server.metrics.registry.metrics();
    series = parseSeries(text);
  });
  afterAll(() => srv.stop());

  it('never writes an empty label value', () => {
    expect(text).not.toMatch(/=""/);
  });

  it.each(fixtures.map((fx, i) => [fx.name, fx, i] as const))('%s: convention provider and operation, API id in tokenwarden_api', (_, fx, i) => {
    // Replayed one at a time, so the records are in fixture order.
    const record = srv.records[i]!;
    expect(record.provider).toBe(fx.expected.provider);
    const provider = PROVIDER[fx.expected.provider]!;
    const operation = OPERATION[record.api]!;
    expect(provider).toBeDefined();
    expect(operation).toBeDefined();
    const exchanges = series.filter(
      (s) => s.name === 'tokenwarden_exchanges_total' && s.labels.gen_ai_provider_name === provider && s.labels.tokenwarden_api === record.api,
    );
    expect(exchanges.length).toBeGreaterThan(0);
    for (const s of exchanges) expect(s.labels.gen_ai_operation_name).toBe(operation);
    // No series anywhere still carries tokenwarden's own provider id where the conventions differ.
    if (provider !== fx.expected.provider) {
      expect(series.some((s) => s.labels.gen_ai_provider_name === fx.expected.provider)).toBe(false);
    }
  });

  it('leaves gen_ai_response_model out when the response names no model (Bedrock Converse)', () => {
    const converse = srv.records.filter((r) => r.api === 'converse' && r.usageSource !== 'none');
    expect(converse.length).toBeGreaterThan(0);
    expect(converse.every((r) => r.responseModel === null)).toBe(true);
    const usage = series.filter((s) => s.name === 'gen_ai_client_token_usage_count' && s.labels.tokenwarden_api === 'converse');
    expect(usage.length).toBeGreaterThan(0);
    for (const s of usage) {
      expect(s.labels).not.toHaveProperty('gen_ai_response_model');
      expect(s.labels.gen_ai_request_model).toBeTruthy();
    }
  });

  it('keeps the response model where the response named one', () => {
    const named = series.filter((s) => s.name === 'gen_ai_client_token_usage_count' && s.labels.gen_ai_response_model === 'gpt-4o-2024-08-06');
    expect(named.length).toBeGreaterThan(0);
  });
});

/** An OpenAI chat stream whose upstream takes known times: headers after 100 ms, then paced chunks. */
function pacedStream(requestId: string, traceparent?: string) {
  const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
  const chunk = (delta: object, extra: object = {}) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini-2024-07-18', choices: [{ index: 0, delta }], ...extra })}\n\n`;
  const usage = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini-2024-07-18', choices: [], usage: { prompt_tokens: 8, completion_tokens: 5, total_tokens: 13 } })}\n\ndata: [DONE]\n\n`;
  return {
    request: {
      headers: [
        [':method', 'POST'],
        [':authority', 'api.openai.com:443'],
        [':path', '/v1/chat/completions'],
        [':scheme', 'https'],
        ['content-type', 'application/json'],
        ['x-request-id', requestId],
        ...(traceparent ? [['traceparent', traceparent]] : []),
      ] as [string, string][],
      body_chunks: [body],
    },
    upstream: {
      delay_ms: 100,
      headers: [[':status', '200'], ['content-type', 'text/event-stream']] as [string, string][],
      body_chunks: [
        { data: chunk({ role: 'assistant', content: '' }), wait: 30 },
        { data: chunk({ content: 'Hello' }), wait: 50 },
        { data: chunk({ content: ' there' }), wait: 40 },
        { data: chunk({ content: ', friend' }), wait: 40 },
        { data: usage, wait: 40 },
      ],
    },
  };
}

/** Timers never fire early, but clocks are read a little apart: allow 3 ms below a lower bound. */
const EARLY = 0.003;
/** A loaded CI machine may be slow; the measurements must still not be off by more than this. */
const LATE = 0.3;

describe('latency histograms from ext_proc message times', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());

  it('measures a paced stream: first byte, first chunk with output, duration, time per output token', async () => {
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange(pacedStream('paced-1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'));
    await envoy.close();
    const [r] = (await srv.waitForRecords(1)) as [ExchangeRecord];
    const l = r.latency!;
    expect(l).not.toBeNull();
    // Headers come 100 ms after the upstream call, which starts after the request was processed.
    expect(l.timeToFirstByte!).toBeGreaterThanOrEqual(0.1 - EARLY);
    expect(l.timeToFirstByte!).toBeLessThan(0.1 + LATE);
    // The first chunk carries only the role; output starts with the second, 30 + 50 ms later.
    expect(l.timeToFirstChunk! - l.timeToFirstByte!).toBeGreaterThanOrEqual(0.08 - EARLY);
    expect(l.timeToFirstChunk! - l.timeToFirstByte!).toBeLessThan(0.08 + LATE);
    // The response ends with the usage chunk, 200 ms after the headers.
    expect(l.duration! - l.timeToFirstByte!).toBeGreaterThanOrEqual(0.2 - EARLY);
    expect(l.duration! - l.timeToFirstByte!).toBeLessThan(0.2 + LATE);
    // 120 ms from the first output chunk to the end, over 5 - 1 tokens.
    expect(l.timePerOutputToken!).toBeCloseTo((l.duration! - l.timeToFirstChunk!) / 4, 9);
    expect(l.timePerOutputToken!).toBeGreaterThanOrEqual(0.12 / 4 - EARLY);
    expect(l.timePerOutputToken!).toBeLessThan((0.12 + LATE) / 4);
    expect(r.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(r.serverAddress).toBe('api.openai.com');

    // The histograms hold exactly the record's values, under the conventions' labels.
    const text = await srv.server.metrics.registry.metrics();
    const all = parseSeries(text);
    const one = (name: string) => {
      const sum = all.filter((s) => s.name === `${name}_sum` && s.labels.tokenwarden_api === 'chat_completions');
      const count = all.filter((s) => s.name === `${name}_count` && s.labels.tokenwarden_api === 'chat_completions');
      expect(sum).toHaveLength(1);
      expect(count[0]!.value).toBe(1);
      expect(sum[0]!.labels).toMatchObject({
        gen_ai_provider_name: 'openai',
        gen_ai_operation_name: 'chat',
        gen_ai_request_model: 'gpt-4o-mini',
        gen_ai_response_model: 'gpt-4o-mini-2024-07-18',
      });
      expect(sum[0]!.labels).not.toHaveProperty('error_type');
      return sum[0]!.value;
    };
    expect(one('gen_ai_client_operation_duration_seconds')).toBeCloseTo(l.duration!, 6);
    expect(one('tokenwarden_time_to_first_byte_seconds')).toBeCloseTo(l.timeToFirstByte!, 6);
    expect(one('gen_ai_client_operation_time_to_first_chunk_seconds')).toBeCloseTo(l.timeToFirstChunk!, 6);
    expect(one('tokenwarden_time_per_output_token_seconds')).toBeCloseTo(l.timePerOutputToken!, 6);
    // The duration falls in the bucket its value says, not in the one below.
    const buckets = all.filter((s) => s.name === 'gen_ai_client_operation_duration_seconds_bucket' && s.labels.tokenwarden_api === 'chat_completions');
    expect(buckets.length).toBeGreaterThan(10);
    const bound = (le: string) => (le === '+Inf' ? Infinity : Number(le));
    for (const b of buckets) expect([b.labels.le, b.value]).toEqual([b.labels.le, l.duration! <= bound(b.labels.le!) ? 1 : 0]);
  });

  it('gives a JSON response a duration and a first byte only, and marks failures with error_type', async () => {
    const before = srv.records.length;
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const headers: [string, string][] = [
      [':method', 'POST'],
      [':authority', 'api.openai.com'],
      [':path', '/v1/chat/completions'],
      [':scheme', 'https'],
      ['content-type', 'application/json'],
    ];
    await envoy.exchange({
      request: { headers, body_chunks: [body] },
      upstream: {
        delay_ms: 60,
        headers: [[':status', '429'], ['content-type', 'application/json']],
        body_chunks: [JSON.stringify({ error: { message: 'slow down', type: 'rate_limit' } })],
      },
    });
    await envoy.close();
    const r = (await srv.waitForRecords(before + 1))[before]!;
    expect(r.latency!.timeToFirstByte!).toBeGreaterThanOrEqual(0.06 - EARLY);
    expect(r.latency!.duration!).toBeGreaterThanOrEqual(r.latency!.timeToFirstByte!);
    expect(r.latency!.timeToFirstChunk).toBeNull();
    expect(r.latency!.timePerOutputToken).toBeNull();
    const failed = parseSeries(await srv.server.metrics.registry.metrics()).filter(
      (s) => s.name === 'gen_ai_client_operation_duration_seconds_count' && s.labels.error_type !== undefined,
    );
    expect(failed).toEqual([expect.objectContaining({ value: 1, labels: expect.objectContaining({ error_type: '429', gen_ai_request_model: 'gpt-4o' }) })]);
  });

  it('records no latency in observability mode (Envoy does not wait there)', async () => {
    const before = srv.records.length;
    const envoy = new EnvoyEmulator(srv.address, OBSERVABILITY);
    await envoy.exchange(pacedStream('observed-1'));
    await envoy.close();
    const r = (await srv.waitForRecords(before + 1))[before]!;
    expect(r.mode).toBe('observability');
    expect(r.usage.output_tokens).toBe(5);
    expect(r.latency).toBeNull();
  });
});

describe('server.address', () => {
  it.each([
    ['api.openai.com', 'api.openai.com'],
    ['api.openai.com:443', 'api.openai.com'],
    ['[::1]:8080', '::1'],
    ['[::1]', '::1'],
    ['', null],
    [':443', null],
  ])('%j → %j', (authority, host) => {
    expect(hostOf(authority)).toBe(host);
  });
});
