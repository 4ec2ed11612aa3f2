/**
 * The per-exchange metric families (src/telemetry/series.ts) must read exactly as prom-client's own
 * Counter and Histogram would for the same updates: /metrics text, the JSON the workers' primary
 * aggregates and the OTLP producer reads, and reset.
 */
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SeriesCounter, SeriesHistogram } from '../src/telemetry/series.js';

const BUCKETS = [0.01, 0.1, 1, 10];
const OBSERVATIONS: [Record<string, string>, number][] = [
  [{ provider: 'openai', model: 'gpt-4o' }, 0.005],
  [{ provider: 'openai', model: 'gpt-4o' }, 0.5],
  [{ provider: 'openai' }, 3],
  [{ provider: 'anthropic', model: 'claude "quoted" \\ back' }, 100],
  [{ provider: 'openai', model: 'gpt-4o' }, 0.01],
];

function both(): { ours: Registry; theirs: Registry; counter: SeriesCounter; histogram: SeriesHistogram } {
  const ours = new Registry();
  const theirs = new Registry();
  const counter = new SeriesCounter(ours, { name: 'x_total', help: 'Some "count".', labelNames: ['provider', 'model'] });
  const histogram = new SeriesHistogram(ours, { name: 'x_seconds', help: 'Some time.', labelNames: ['provider', 'model'], buckets: BUCKETS });
  const c = new Counter({ name: 'x_total', help: 'Some "count".', labelNames: ['provider', 'model'], registers: [theirs] });
  const h = new Histogram({ name: 'x_seconds', help: 'Some time.', labelNames: ['provider', 'model'], buckets: BUCKETS, registers: [theirs] });
  for (const [labels, v] of OBSERVATIONS) {
    counter.inc(labels, v);
    c.inc(labels, v);
    histogram.cell(labels).observe(v);
    h.observe(labels, v);
  }
  return { ours, theirs, counter, histogram };
}

describe('series families', () => {
  it('read as prom-client metrics: the /metrics text and the JSON are the same', async () => {
    const { ours, theirs } = both();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // prom-client adds an empty exemplar field to histogram values; nothing reads it without exemplars.
    const withoutExemplars = (json: unknown): unknown => JSON.parse(JSON.stringify(json, (k, v: unknown) => (k === 'exemplar' ? undefined : v)));
    expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('aggregate across workers like prom-client metrics', async () => {
    const a = both();
    const b = both();
    const ours = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]);
    const theirs = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('update a cell found once, forget everything on reset, and refuse a label they do not have', async () => {
    const { ours, counter, histogram } = both();
    const cell = counter.cell({ provider: 'openai', model: 'gpt-4o' });
    expect(counter.cell({ model: 'gpt-4o', provider: 'openai' })).toBe(cell);
    cell.inc(2);
    expect((await counter.get()).values.find((v) => v.labels.model === 'gpt-4o')?.value).toBeCloseTo(0.515 + 2, 9);
    histogram.cell({ provider: 'openai' }).observe(Number.NaN);
    expect((await histogram.get()).values.find((v) => v.metricName === 'x_seconds_count' && v.labels.model === undefined)?.value).toBe(1);
    ours.resetMetrics();
    expect((await ours.getMetricsAsJSON()).map((m) => m.values)).toEqual([[], []]);
    expect(() => counter.cell({ team: 'x' })).toThrow(/x_total has no label team/);
  });
});
