/**
 * The OTLP naming rule (src/telemetry/otlp-names.ts) and the conversion of prom-client's values
 * into OTLP metric data (src/telemetry/prom-producer.ts), on a real prom-client registry.
 */
import { AggregationTemporality, DataPointType, type MetricData } from '@opentelemetry/sdk-metrics';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { otlpAttributeName, otlpMetricName } from '../../src/telemetry/otlp-names.js';
import { PromRegistryProducer, toMetricData, type PromMetric } from '../../src/telemetry/prom-producer.js';

describe('otlpMetricName', () => {
  it.each([
    ['gen_ai_client_token_usage', 'histogram', 'gen_ai.client.token.usage', '{token}'],
    ['gen_ai_client_operation_duration_seconds', 'histogram', 'gen_ai.client.operation.duration', 's'],
    ['gen_ai_client_operation_time_to_first_chunk_seconds', 'histogram', 'gen_ai.client.operation.time_to_first_chunk', 's'],
    ['tokenwarden_exchanges_total', 'counter', 'tokenwarden_exchanges', ''],
    ['tokenwarden_cost_usd_total', 'counter', 'tokenwarden_cost_usd', ''],
    ['tokenwarden_process_cpu_seconds_total', 'counter', 'tokenwarden_process_cpu', 's'],
    ['tokenwarden_time_to_first_byte_seconds', 'histogram', 'tokenwarden_time_to_first_byte', 's'],
    ['tokenwarden_process_resident_memory_bytes', 'gauge', 'tokenwarden_process_resident_memory', 'By'],
    ['tokenwarden_store_pending_deltas', 'gauge', 'tokenwarden_store_pending_deltas', ''],
    // Only counters lose `_total`: a gauge of that name keeps it.
    ['tokenwarden_nodejs_active_handles_total', 'gauge', 'tokenwarden_nodejs_active_handles_total', ''],
    ['tokenwarden_nodejs_heap_size_total_bytes', 'gauge', 'tokenwarden_nodejs_heap_size_total', 'By'],
  ] as const)('%s (%s) → %s [%s]', (prom, type, name, unit) => {
    expect(otlpMetricName(prom, type)).toEqual({ name, unit });
  });

  it('gives GenAI labels the conventions’ attribute names and keeps the others', () => {
    expect(
      ['gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'gen_ai_operation_name', 'gen_ai_token_type', 'error_type', 'tokenwarden_api', 'outcome', 'le'].map(
        otlpAttributeName,
      ),
    ).toEqual(['gen_ai.provider.name', 'gen_ai.request.model', 'gen_ai.response.model', 'gen_ai.operation.name', 'gen_ai.token.type', 'error.type', 'tokenwarden_api', 'outcome', 'le']);
    expect(otlpAttributeName('__proto__')).toBe('__proto__');
  });
});

describe('toMetricData', () => {
  const start: [number, number] = [1_700_000_000, 0];
  const end: [number, number] = [1_700_000_060, 5];

  async function convert(build: (registry: Registry) => void): Promise<MetricData[]> {
    const registry = new Registry();
    build(registry);
    return toMetricData((await registry.getMetricsAsJSON()) as unknown as PromMetric[], start, end);
  }

  it('rebuilds per-bucket counts from the cumulative `le` series, bounds without +Inf', async () => {
    const [metric] = await convert((registry) => {
      const h = new Histogram({ name: 'gen_ai_client_token_usage', help: 'h', labelNames: ['gen_ai_token_type'], buckets: [1, 4, 16], registers: [registry] });
      for (const v of [1, 3, 4, 10, 100, 1000]) h.observe({ gen_ai_token_type: 'input' }, v);
      h.observe({ gen_ai_token_type: 'output' }, 2);
    });
    expect(metric).toMatchObject({
      descriptor: { name: 'gen_ai.client.token.usage', unit: '{token}', description: 'h' },
      dataPointType: DataPointType.HISTOGRAM,
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
    });
    const points = metric!.dataPoints as { attributes: Record<string, unknown>; value: unknown; startTime: unknown; endTime: unknown }[];
    expect(points).toEqual([
      { startTime: start, endTime: end, attributes: { 'gen_ai.token.type': 'input' }, value: { buckets: { boundaries: [1, 4, 16], counts: [1, 2, 1, 2] }, sum: 1118, count: 6 } },
      { startTime: start, endTime: end, attributes: { 'gen_ai.token.type': 'output' }, value: { buckets: { boundaries: [1, 4, 16], counts: [0, 1, 0, 0] }, sum: 2, count: 1 } },
    ]);
  });

  it('makes counters monotonic cumulative sums and gauges gauges; label values become strings', async () => {
    const metrics = await convert((registry) => {
      new Counter({ name: 'tokenwarden_exchanges_total', help: 'c', labelNames: ['outcome', 'error_type'], registers: [registry] }).inc({ outcome: 'ok', error_type: 503 }, 3);
      new Gauge({ name: 'tokenwarden_store_pending_deltas', help: 'g', registers: [registry] }).set(7);
    });
    expect(metrics).toEqual([
      {
        descriptor: { name: 'tokenwarden_exchanges', unit: '', description: 'c', valueType: expect.any(Number) },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.SUM,
        isMonotonic: true,
        dataPoints: [{ startTime: start, endTime: end, attributes: { outcome: 'ok', 'error.type': '503' }, value: 3 }],
      },
      {
        descriptor: { name: 'tokenwarden_store_pending_deltas', unit: '', description: 'g', valueType: expect.any(Number) },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: [{ startTime: start, endTime: end, attributes: {}, value: 7 }],
      },
    ]);
  });

  it('leaves out labelled metrics with no series yet, and summaries', async () => {
    const metrics = await convert((registry) => {
      new Counter({ name: 'never_total', help: 'c', labelNames: ['x'], registers: [registry] });
      new Histogram({ name: 'never_seconds', help: 'h', labelNames: ['x'], registers: [registry] });
      new Summary({ name: 'summary_seconds', help: 's', registers: [registry] }).observe(1);
    });
    expect(metrics).toEqual([]);
  });
});

describe('PromRegistryProducer', () => {
  it('reads the registry at each collection, cumulative since the producer was made', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'things_total', help: 'c', registers: [registry] });
    const producer = new PromRegistryProducer(registry, { name: 'tokenwarden', version: '1.2.3' });
    counter.inc(2);
    const first = await producer.collect();
    counter.inc(3);
    const second = await producer.collect();
    const value = (r: typeof first) => (r.resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0]!.value as number);
    expect([value(first), value(second)]).toEqual([2, 5]);
    expect(second.resourceMetrics.scopeMetrics[0]!.scope).toEqual({ name: 'tokenwarden', version: '1.2.3' });
    const startTimes = [first, second].map((r) => r.resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0]!.startTime);
    expect(startTimes[0]).toEqual(startTimes[1]);
    expect(second.errors).toEqual([]);
  });
});
