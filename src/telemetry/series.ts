/**
 * Counter and histogram families for the metrics updated on every exchange and message. They sit
 * in prom-client's Registry like any metric (/metrics, the workers' aggregation and the OTLP
 * producer read them through get(), in prom-client's shape), but a series is a cell looked up once
 * per label set and then updated in place: prom-client validates, copies and hashes the labels on
 * every call, which cost more per exchange than reading the exchange's usage.
 */
import type { Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

export class CounterCell {
  value = 0;

  constructor(readonly labels: Labels) {}

  inc(n = 1): void {
    this.value += n;
  }
}

export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]!) {
        this.counts[i]! += 1;
        break;
      }
    }
    this.sum += v;
    this.count += 1;
  }
}

/** Marks an absent label in a cell key (label values never contain it: they are printable text). */
const ABSENT = '\u0001';

abstract class Family<C extends { labels: Labels }> {
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, C>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as never);
  }

  /** The series of `labels` (a label left out is absent from the series, as in prom-client). */
  cell(labels: Labels = {}): C {
    let key = '';
    for (const n of this.labelNames) key += `${labels[n] ?? ABSENT}\u0000`;
    let c = this.cells.get(key);
    if (!c) {
      for (const n of Object.keys(labels)) {
        if (!this.labelNames.includes(n)) throw new Error(`${this.name} has no label ${n}`);
      }
      c = this.make({ ...labels });
      this.cells.set(key, c);
    }
    return c;
  }

  reset(): void {
    this.cells.clear();
  }

  protected all(): IterableIterator<C> {
    return this.cells.values();
  }

  protected abstract make(labels: Labels): C;
}

export class SeriesCounter extends Family<CounterCell> {
  readonly type = 'counter';

  constructor(registry: Registry, opts: { name: string; help: string; labelNames?: readonly string[] }) {
    super(registry, opts.name, opts.help, opts.labelNames ?? []);
  }

  inc(labels: Labels, n = 1): void {
    this.cell(labels).inc(n);
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const c of this.all()) values.push({ value: c.value, labels: { ...c.labels } });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  protected make(labels: Labels): CounterCell {
    return new CounterCell(labels);
  }
}

export class SeriesHistogram extends Family<HistogramCell> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(registry: Registry, opts: { name: string; help: string; labelNames?: readonly string[]; buckets: readonly number[] }) {
    super(registry, opts.name, opts.help, opts.labelNames ?? []);
    this.buckets = [...opts.buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, v: number): void {
    this.cell(labels).observe(v);
  }

  /** prom-client's histogram shape: cumulative `_bucket` per bound, then `+Inf`, `_sum` and `_count`. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.all()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i]!;
        values.push({ value: acc, labels: { le, ...c.labels }, metricName: bucket });
      });
      values.push(
        { value: c.count, labels: { le: '+Inf', ...c.labels }, metricName: bucket },
        { value: c.sum, labels: { ...c.labels }, metricName: `${this.name}_sum` },
        { value: c.count, labels: { ...c.labels }, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  protected make(labels: Labels): HistogramCell {
    return new HistogramCell(labels, this.buckets);
  }
}
