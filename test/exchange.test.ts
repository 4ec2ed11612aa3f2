/**
 * The metering pipeline without gRPC: every fixture fed to an Exchange chunk by chunk, as Envoy
 * delivers them in STREAMED mode, must yield exactly the expected fields.
 */
import { eagerResponse } from './support/eager-response.js';
import { afterAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { Exchange, type ExchangeDeps } from '../src/traffic/exchange.js';
import { recognize } from '../src/traffic/recognize.js';
import { SseDecoder } from '../src/traffic/decode/sse.js';
import { EventStreamDecoder } from '../src/traffic/decode/eventstream.js';
import { createConsumerResolver } from '../src/traffic/consumer.js';
import { TokenCounter } from '../src/metering/tokens.js';
import { PriceBook } from '../src/metering/prices.js';
import { defaultConfig } from '../src/config/types.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { expectRecordMatchesFixture } from './support/expect.js';

const config = defaultConfig();
const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
afterAll(() => tokens.close());

function deps(overrides: Partial<ExchangeDeps> = {}): ExchangeDeps {
  return {
    recognize: (h) => recognize(h, config.discovery),
    resolveConsumer: createConsumerResolver(config.consumer),
    tokens,
    prices: new PriceBook([]),
    metering: config.metering,
    limits: config.limits,
    ...overrides,
  };
}

function headers(list: [string, string][]): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of list) if (!m.has(k)) m.set(k, v);
  return m;
}

async function replay(fx: Fixture, d: ExchangeDeps = deps()) {
  const ex = new Exchange(d, { observability: false });
  const reqChunks = fx.request.body_chunks;
  const llm = ex.onRequestHeaders(headers(fx.request.headers), reqChunks.length === 0, new Map());
  if (!llm) return { ex, record: null };
  reqChunks.forEach((c, i) => ex.onRequestBody(c, i === reqChunks.length - 1));
  const resChunks = fx.response.body_chunks;
  ex.onResponseHeaders(headers(fx.response.headers), resChunks.length === 0);
  resChunks.forEach((c, i) => ex.onResponseBody(c, i === resChunks.length - 1));
  return { ex, record: await ex.finish() };
}

const fixtures = loadFixtures();

describe('fixtures through the Exchange pipeline', () => {
  it('has the full public fixture set', () => {
    expect(fixtures.length).toBe(47);
  });
  for (const fx of fixtures) {
    it(fx.name, async () => {
      const { record } = await replay(fx);
      if (fx.expected.provider === 'unknown') {
        expect(record).toBeNull();
        return;
      }
      expectRecordMatchesFixture(record!, fx);
    });
  }
});

describe('exchange behaviour', () => {
  const basic = fixtures.find((f) => f.name === 'openai_chat_completions_basic')!;
  const noUsage = fixtures.find((f) => f.name === 'openai_chat_completions_stream_no_usage')!;

  it('prices reported usage in integer micro-dollars', async () => {
    const { record } = await replay(basic);
    expect(record!.costMicroUsd).toBeTypeOf('number');
    expect(Number.isInteger(record!.costMicroUsd)).toBe(true);
    expect(record!.costMicroUsd!).toBeGreaterThan(0);
    expect(record!.unpriced).toBe(false);
  });

  it('flags usage without a known price as unpriced, never $0', async () => {
    const fx = fixtures.find((f) => f.name === 'vllm_chat_completions')!;
    const { record } = await replay(fx);
    expect(record!.usageSource).toBe('reported');
    expect(record!.costMicroUsd).toBeNull();
    expect(record!.unpriced).toBe(true);
  });

  it('estimates output from the streamed text when a stream reports no usage', async () => {
    const { record } = await replay(noUsage);
    expect(record!.usageSource).toBe('estimated');
    expect(record!.usage.output_tokens).toBeGreaterThan(0);
    expect(record!.usage.input_tokens).toBeGreaterThan(0);
  });

  it('injects include_usage into an OpenAI stream request and hides the usage chunk from the client', () => {
    const ex = new Exchange(deps(), { observability: false });
    const h = headers(noUsage.request.headers);
    expect(ex.onRequestHeaders(h, false, new Map())).toBe(true);
    const body = Buffer.concat(noUsage.request.body_chunks);
    const rewrite = ex.onRequestBody(body, true);
    expect(rewrite).not.toBeNull();
    const sent = JSON.parse(rewrite!.body.toString('utf8'));
    expect(sent.stream_options).toEqual({ include_usage: true });
    expect({ ...sent, stream_options: undefined }).toEqual({ ...JSON.parse(body.toString('utf8')), stream_options: undefined });
    expect(rewrite!.contentLength).toBe(rewrite!.body.length);

    // The upstream now answers with the usage chunk; the client must not see it.
    const usageEvent = 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}\n\n';
    const upstream = Buffer.concat([...noUsage.response.body_chunks.slice(0, -1), Buffer.from(usageEvent), noUsage.response.body_chunks.at(-1)!]);
    ex.onResponseHeaders(headers(noUsage.response.headers), false);
    const forwarded: Buffer[] = [];
    const pieces = [upstream.subarray(0, 100), upstream.subarray(100, upstream.length - 30), upstream.subarray(upstream.length - 30)];
    pieces.forEach((p, i) => forwarded.push(Buffer.from(ex.onResponseBody(p, i === pieces.length - 1) ?? p)));
    const client = Buffer.concat(forwarded).toString('utf8');
    expect(client).toBe(Buffer.concat(noUsage.response.body_chunks).toString('utf8'));
    return ex.finish().then((record) => {
      expect(record.usageSource).toBe('reported');
      expect(record.usage.input_tokens).toBe(9);
      expect(record.usageInjected).toBe(true);
    });
  });

  it('does not inject when the client asked for usage itself or injection is off', () => {
    const withUsage = fixtures.find((f) => f.name === 'openai_chat_completions_stream_include_usage')!;
    const ex = new Exchange(deps(), { observability: false });
    ex.onRequestHeaders(headers(withUsage.request.headers), false, new Map());
    expect(ex.onRequestBody(Buffer.concat(withUsage.request.body_chunks), true)).toBeNull();

    const off = deps({ metering: { ...config.metering, inject_stream_usage: false } });
    const ex2 = new Exchange(off, { observability: false });
    ex2.onRequestHeaders(headers(noUsage.request.headers), false, new Map());
    expect(ex2.onRequestBody(Buffer.concat(noUsage.request.body_chunks), true)).toBeNull();
  });

  it('reads a gzip response split at every byte boundary', async () => {
    const fx = fixtures.find((f) => f.name === 'openai_chat_completions_gzip_response')!;
    const whole = Buffer.concat(fx.response.body_chunks);
    const split: Fixture = { ...fx, response: { ...fx.response, body_chunks: [...whole].map((b) => Buffer.from([b])) } };
    const { record } = await replay(split);
    expectRecordMatchesFixture(record!, fx);
  });

  it('flags a corrupt gzip body and keeps going', async () => {
    const fx = fixtures.find((f) => f.name === 'openai_chat_completions_gzip_response')!;
    const bad = gzipSync(Buffer.from('{"model":"x","usage":{}}')).subarray(0, 12);
    const { record } = await replay({ ...fx, response: { ...fx.response, body_chunks: [bad] } });
    expect(record!.error).toBe('corrupt_encoding');
    expect(record!.reportedUsage).toBeNull();
  });

  it('counts a request body over the limit as body_too_large and does not parse it', async () => {
    const small = deps({ limits: { ...config.limits, max_request_body_bytes: 64 } });
    const { record } = await replay(basic, small);
    expect(record!.error).toBe('body_too_large');
    expect(record!.model).toBeNull();
  });

  it('records an exchange that ended before its response as aborted', async () => {
    const ex = new Exchange(deps(), { observability: false });
    ex.onRequestHeaders(headers(basic.request.headers), false, new Map());
    ex.onRequestBody(Buffer.concat(basic.request.body_chunks), true);
    const record = await ex.finish();
    expect(record.completion).toBe('aborted');
    expect(record.model).toBe(basic.expected.model);
    expect(record.usageSource).toBe('none');
  });
});

describe('streamed output measured while events are read lazily', () => {
  const streams = ['openai_chat_completions_stream_include_usage', 'openai_chat_completions_stream_no_usage', 'anthropic_messages_stream', 'bedrock_converse_stream'];

  for (const name of streams) {
    it(`${name}: output tokens after every chunk as if each event were read at once; time to first chunk set`, async () => {
      const fx = fixtures.find((f) => f.name === name)!;
      const ex = new Exchange(deps(), { observability: false });
      ex.onRequestHeaders(headers(fx.request.headers), false, new Map());
      fx.request.body_chunks.forEach((c, i) => ex.onRequestBody(c, i === fx.request.body_chunks.length - 1));
      ex.onResponseHeaders(headers(fx.response.headers), false);
      // The reference: the same bytes through the decoders, each event read at once (onEvent).
      const route = recognize({ method: 'POST', authority: headers(fx.request.headers).get(':authority')!, path: headers(fx.request.headers).get(':path')!, headers: headers(fx.request.headers) }, config.discovery)!;
      const eager = eagerResponse(route.handler);
      const sse = new SseDecoder();
      const frames = new EventStreamDecoder();
      const seen: number[] = [];
      const expected: number[] = [];
      const chunks = fx.response.body_chunks;
      chunks.forEach((c, i) => {
        ex.onResponseBody(c, i === chunks.length - 1);
        if (route.api === 'converse_stream') frames.push(c, (f) => eager.onEvent({ kind: 'frame', headers: f.headers, payload: f.payload }));
        else sse.push(c, (e) => eager.onEvent({ kind: 'sse', event: e.event, data: e.data }));
        seen.push(ex.streamedOutputTokens());
        expected.push(Math.floor(eager.outputBytes() / 4));
      });
      expect(seen).toEqual(expected);
      expect(expected.at(-1)).toBeGreaterThan(0);
      const record = await ex.finish();
      expect(record.latency?.timeToFirstChunk).toBeTypeOf('number');
      expectRecordMatchesFixture(record, fx);
    });
  }
});
