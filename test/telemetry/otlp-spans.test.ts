/**
 * One span per LLM exchange (telemetry.traces.enabled), end to end over HTTP/protobuf and gRPC to
 * a real OTLP receiver: the GenAI span conventions' name, kind and attributes, parented to the
 * request's W3C traceparent, timed by the record, sampled parent-based, and never a word of the
 * prompt or the answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExchangeRecord } from '../../src/domain.js';
import { exchangeErrorType, parentContext } from '../../src/telemetry/spans.js';
import { trace } from '@opentelemetry/api';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { ANSWER, openAiChat, PROMPT } from '../support/openai-chat.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/wait.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const SAMPLED = `00-${TRACE_ID}-${PARENT_ID}-01`;
const UNSAMPLED = `00-${TRACE_ID}-${PARENT_ID}-00`;

const nanos = (ms: number): string => (BigInt(ms) * 1_000_000n).toString();

describe.each([
  ['http/protobuf', 'http'],
  ['grpc', 'grpc'],
] as const)('exchange spans over OTLP %s', (protocol, transport) => {
  let receiver: OtlpReceiver;
  let srv: TestServer;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = transport === 'grpc' ? receiver.grpcUrl : receiver.httpUrl;
      c.telemetry.otlp.protocol = protocol;
      c.telemetry.traces.enabled = true;
      c.telemetry.traces.export_interval_ms = 20;
      c.metrics.consumer_labels = false;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange(openAiChat({ traceparent: SAMPLED, inputTokens: 21, outputTokens: 8 }));
    await envoy.exchange(openAiChat({ model: 'gpt-4o', status: 503 }));
    await envoy.close();
    await srv.waitForRecords(2);
    await until(() => receiver.spans.length >= 2, 'two spans');
  });
  afterAll(async () => {
    await srv.stop();
    await receiver.close();
  });

  it(`arrives over ${transport} as the child of the request's traceparent, named and timed after the conventions`, () => {
    const record = srv.records[0]!;
    const span = receiver.spans.find((s) => s.traceId === TRACE_ID)!;
    expect(span).toMatchObject({
      transport,
      name: 'chat gpt-4o-mini',
      kind: 'SPAN_KIND_CLIENT',
      parentSpanId: PARENT_ID,
      status: 'STATUS_CODE_UNSET',
      startTimeUnixNano: nanos(record.startedAt),
      endTimeUnixNano: nanos(record.endedAt),
      scope: 'tokenwarden',
    });
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(span.spanId).not.toBe(PARENT_ID);
    expect(span.resource['service.name']).toBe('tokenwarden');
  });

  it('carries the GenAI attributes and tokenwarden’s own, nothing else', () => {
    const span = receiver.spans.find((s) => s.traceId === TRACE_ID)!;
    expect(span.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
      'gen_ai.usage.input_tokens': 21,
      'gen_ai.usage.output_tokens': 8,
      'server.address': 'api.openai.com',
      'tokenwarden.api': 'chat_completions',
      'tokenwarden.consumer.id': 'team-a',
      'tokenwarden.cost_usd': srv.records[0]!.costMicroUsd! / 1e6,
    });
    expect(srv.records[0]!.costMicroUsd).toBeGreaterThan(0);
  });

  it('marks a failed exchange with error.type and an error status; without a traceparent it is a root span', () => {
    const failed = receiver.spans.find((s) => s.traceId !== TRACE_ID)!;
    expect(failed).toMatchObject({ name: 'chat gpt-4o', parentSpanId: '', status: 'STATUS_CODE_ERROR' });
    expect(failed.attributes['error.type']).toBe('503');
    expect(failed.attributes).not.toHaveProperty('gen_ai.usage.input_tokens');
    expect(failed.attributes).not.toHaveProperty('gen_ai.response.model');
  });

  it('never sends prompt or response text', () => {
    const traces = receiver.exports.filter((e) => e.signal === 'traces');
    expect(traces.length).toBeGreaterThan(0);
    for (const e of receiver.exports) {
      expect(e.body.includes(PROMPT)).toBe(false);
      expect(e.body.includes(ANSWER)).toBe(false);
    }
  });
});

describe('sampling', () => {
  async function spansFor(ratio: number, traceparents: (string | undefined)[]): Promise<number> {
    const receiver = await startOtlpReceiver();
    const srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = receiver.httpUrl;
      c.telemetry.traces.enabled = true;
      c.telemetry.traces.sample_ratio = ratio;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    for (const traceparent of traceparents) await envoy.exchange(openAiChat(traceparent === undefined ? {} : { traceparent }));
    await envoy.close();
    await srv.waitForRecords(traceparents.length);
    // Shutdown exports whatever was sampled.
    await srv.stop();
    await receiver.close();
    expect(receiver.exports.filter((e) => e.signal === 'metrics').length).toBeGreaterThan(0);
    return receiver.spans.length;
  }

  it('ratio 0 sends no span for exchanges without a parent, nor for an unsampled parent', async () => {
    expect(await spansFor(0, [undefined, undefined, undefined, UNSAMPLED])).toBe(0);
  });

  it('a sampled parent decides over the ratio (parent-based), and ratio 1 samples every root', async () => {
    expect(await spansFor(0, [SAMPLED, undefined])).toBe(1);
    expect(await spansFor(1, [undefined, undefined, UNSAMPLED])).toBe(2);
  });
});

describe('span helpers', () => {
  const record = (r: Partial<ExchangeRecord>) => ({ status: 200, completion: 'complete', ...r }) as ExchangeRecord;

  it('error.type: the error status, else aborted, else none', () => {
    expect(exchangeErrorType(record({ status: 429 }))).toBe('429');
    expect(exchangeErrorType(record({ status: 200, completion: 'aborted' }))).toBe('aborted');
    expect(exchangeErrorType(record({ status: null }))).toBeUndefined();
  });

  it('ignores a traceparent that is malformed or all zeros', () => {
    for (const bad of ['garbage', `00-${'0'.repeat(32)}-${PARENT_ID}-01`, `00-${TRACE_ID}-${'0'.repeat(16)}-01`, `00-${TRACE_ID}-${PARENT_ID}-01-extra`]) {
      expect(trace.getSpanContext(parentContext(bad))).toBeUndefined();
    }
    expect(trace.getSpanContext(parentContext(SAMPLED))).toEqual({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
  });
});
