/**
 * OTLP metrics read from the prom-client registry at export time. The registry behind /metrics
 * stays the single source of truth: nothing on the request path records anything twice, and the
 * two exports cannot disagree. Counters become monotonic cumulative sums, gauges gauges, and
 * histograms cumulative explicit-bucket histograms (bucket counts rebuilt from the cumulative `le`
 * series); names, units and attributes follow otlp-names.ts.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';
import { otlpAttributeName, otlpMetricName, type PromMetricType } from './otlp-names.js';

type LabelValues = Readonly<Record<string, string | number>>;

/**
 * One metric as prom-client's getMetricsAsJSON() returns it at run time. (Its type declarations
 * give `type` as a numeric enum; the value is the Prometheus type name.)
 */
export interface PromMetric {
  name: string;
  help: string;
  type: string;
  values: ReadonlyArray<{ value: number; labels: LabelValues; metricName?: string }>;
}

function attributes(labels: LabelValues): Attributes {
  const out: Attributes = {};
  for (const [label, value] of Object.entries(labels)) if (label !== 'le') out[otlpAttributeName(label)] = String(value);
  return out;
}

/** One series' identity: its labels without `le`, in a stable order. */
function seriesKey(labels: LabelValues): string {
  return JSON.stringify(
    Object.entries(labels)
      .filter(([label]) => label !== 'le')
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

interface HistogramSeries {
  labels: LabelValues;
  /** Cumulative counts by finite upper bound. */
  buckets: Array<[bound: number, cumulative: number]>;
  sum: number;
  count: number;
}

function histogramPoints(metric: PromMetric, startTime: HrTime, endTime: HrTime): DataPoint<Histogram>[] {
  const series = new Map<string, HistogramSeries>();
  for (const { value, labels, metricName } of metric.values) {
    const key = seriesKey(labels);
    let s = series.get(key);
    if (s === undefined) {
      s = { labels, buckets: [], sum: 0, count: 0 };
      series.set(key, s);
    }
    if (metricName === `${metric.name}_sum`) s.sum = value;
    else if (metricName === `${metric.name}_count`) s.count = value;
    else if (metricName === `${metric.name}_bucket` && String(labels.le) !== '+Inf') s.buckets.push([Number(labels.le), value]);
  }
  return [...series.values()].map((s) => {
    const sorted = s.buckets.sort(([a], [b]) => a - b);
    const counts: number[] = [];
    let below = 0;
    for (const [, cumulative] of sorted) {
      counts.push(cumulative - below);
      below = cumulative;
    }
    // The +Inf bucket: everything above the last finite bound.
    counts.push(s.count - below);
    return {
      startTime,
      endTime,
      attributes: attributes(s.labels),
      value: { buckets: { boundaries: sorted.map(([bound]) => bound), counts }, sum: s.sum, count: s.count },
    };
  });
}

function valuePoints(metric: PromMetric, startTime: HrTime, endTime: HrTime): DataPoint<number>[] {
  return metric.values.map(({ value, labels }) => ({ startTime, endTime, attributes: attributes(labels), value }));
}

/** The registry's metrics as OTLP metric data; cumulative since `startTime`. Summaries are left out. */
export function toMetricData(metrics: readonly PromMetric[], startTime: HrTime, endTime: HrTime): MetricData[] {
  const out: MetricData[] = [];
  for (const metric of metrics) {
    if (metric.type !== 'counter' && metric.type !== 'gauge' && metric.type !== 'histogram') continue;
    const { name, unit } = otlpMetricName(metric.name, metric.type as PromMetricType);
    const descriptor = { name, unit, description: metric.help, valueType: ValueType.DOUBLE };
    const base = { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE };
    if (metric.type === 'histogram') {
      const dataPoints = histogramPoints(metric, startTime, endTime);
      if (dataPoints.length > 0) out.push({ ...base, dataPointType: DataPointType.HISTOGRAM, dataPoints });
      continue;
    }
    const dataPoints = valuePoints(metric, startTime, endTime);
    if (dataPoints.length === 0) continue;
    out.push(
      metric.type === 'counter'
        ? { ...base, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints }
        : { ...base, dataPointType: DataPointType.GAUGE, dataPoints },
    );
  }
  return out;
}

/** A MetricProducer over a prom-client registry (the reader substitutes its own resource). */
export class PromRegistryProducer implements MetricProducer {
  /** Cumulative series start when the producer does: prom-client does not say when a series began. */
  private readonly startTime = hrTime();

  constructor(
    private readonly registry: Registry,
    private readonly scope: { name: string; version: string },
  ) {}

  async collect(): Promise<CollectionResult> {
    const metrics = (await this.registry.getMetricsAsJSON()) as unknown as PromMetric[];
    return {
      resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: this.scope, metrics: toMetricData(metrics, this.startTime, hrTime()) }] },
      errors: [],
    };
  }
}
