/**
 * OTLP metrics end to end: real exchanges through the real server, exported by the OpenTelemetry
 * SDK over HTTP/protobuf and over gRPC to a real receiver, decoded with the OTLP protobuf
 * definitions. What arrives must be /metrics under the OTLP naming rule: a Collector's Prometheus
 * exporter would turn every name back into a /metrics family, and the histograms hold exactly the
 * counts, sums and buckets that /metrics shows.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { openAiChat } from '../support/openai-chat.js';
import { startOtlpReceiver, type MetricPoint, type OtlpReceiver } from '../support/otlp-receiver.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/wait.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition: the sample lines, and the families that have at least one. */
function parseExposition(text: string): { samples: Sample[]; families: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const family = (sample: string): string | undefined =>
    [sample, sample.replace(/_(bucket|sum|count)$/, '')].find((name) => types.has(name));
  const families = new Map<string, string>();
  for (const s of samples) {
    const name = family(s.name);
    if (name !== undefined) families.set(name, types.get(name)!);
  }
  return { samples, families };
}

/** What an OpenTelemetry Collector's Prometheus exporter names a metric: dots to underscores, unit and _total suffixes. */
function collectorName(p: MetricPoint): string {
  let name = p.name.replace(/\./g, '_');
  const unit = ({ s: 'seconds', By: 'bytes' } as Record<string, string>)[p.unit];
  if (unit !== undefined && !name.split('_').includes(unit)) name += `_${unit}`;
  if (p.type === 'sum' && p.monotonic) name += '_total';
  return name;
}

/** Attribute names as Prometheus labels (the Collector's rule). */
function collectorLabels(attributes: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k.replace(/\./g, '_'), String(v)]));
}

const sameLabels = (a: Record<string, string>, b: Record<string, string>): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

describe.each([
  ['http/protobuf', 'http'],
  ['grpc', 'grpc'],
] as const)('metrics over OTLP %s', (protocol, transport) => {
  let receiver: OtlpReceiver;
  let srv: TestServer;
  /** /metrics before and after the export that `latest` holds. */
  let before: ReturnType<typeof parseExposition>;
  let exposition: ReturnType<typeof parseExposition>;
  let latest: MetricPoint[];

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    srv = await startTestServer((c) => {
      c.telemetry.otlp.endpoint = transport === 'grpc' ? receiver.grpcUrl : receiver.httpUrl;
      c.telemetry.otlp.protocol = protocol;
      c.telemetry.otlp.headers = { 'x-tenant': 'payments' };
      c.telemetry.metrics.export_interval_ms = 100;
      // No inventory flush during the test: its histogram would change between export and scrape.
      c.store.flush_interval_ms = 600_000;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    await envoy.exchange(openAiChat({ inputTokens: 10, outputTokens: 3 }));
    await envoy.exchange(openAiChat({ inputTokens: 300, outputTokens: 40 }));
    await envoy.exchange(openAiChat({ model: 'gpt-4o', status: 503 }));
    await envoy.close();
    await srv.waitForRecords(3);
    before = parseExposition(await srv.server.metrics.registry.metrics());
    // Exports do not overlap: the second one to arrive after this point was collected after it.
    const after = receiver.exports.length;
    await until(() => receiver.exports.filter((e, i) => i >= after && e.signal === 'metrics').length >= 2, 'two exports after the exchanges');
    latest = receiver.latestMetrics();
    exposition = parseExposition(await srv.server.metrics.registry.metrics());
  });
  afterAll(async () => {
    await srv.stop();
    await receiver.close();
  });

  it(`arrives over ${transport}, with the configured headers and the resource`, () => {
    const metricsExports = receiver.exports.filter((e) => e.signal === 'metrics');
    expect(metricsExports.length).toBeGreaterThanOrEqual(2);
    for (const e of metricsExports) {
      expect(e.transport).toBe(transport);
      expect(e.headers['x-tenant']).toBe('payments');
    }
    const resource = latest[0]!.resource;
    expect(resource['service.name']).toBe('tokenwarden');
    expect(resource['service.version']).toBe(VERSION);
    expect(resource['service.instance.id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(resource['telemetry.sdk.language']).toBe('nodejs');
  });

  it('names the GenAI metrics as the conventions do, with their units and dotted attributes', () => {
    const usage = latest.filter((p) => p.name === 'gen_ai.client.token.usage');
    expect(usage.length).toBe(2);
    for (const p of usage) {
      expect(p).toMatchObject({ type: 'histogram', unit: '{token}', temporality: 'AGGREGATION_TEMPORALITY_CUMULATIVE' });
      expect(p.attributes).toMatchObject({
        'gen_ai.provider.name': 'openai',
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
        tokenwarden_api: 'chat_completions',
        tokenwarden_usage_source: 'reported',
      });
    }
    expect(usage.map((p) => [p.attributes['gen_ai.token.type'], p.histogram!.count, p.histogram!.sum]).sort()).toEqual([
      ['input', 2, 310],
      ['output', 2, 43],
    ]);
    const duration = latest.filter((p) => p.name === 'gen_ai.client.operation.duration');
    expect(duration.length).toBe(2);
    expect(duration.every((p) => p.unit === 's')).toBe(true);
    expect(duration.find((p) => p.attributes['error.type'] === '503')?.histogram?.count).toBe(1);
  });

  it('turns counters into monotonic cumulative sums without _total, gauges into gauges, unit suffixes into units', () => {
    const exchanges = latest.filter((p) => p.name === 'tokenwarden_exchanges');
    expect(exchanges.length).toBe(2);
    for (const p of exchanges) expect(p).toMatchObject({ type: 'sum', monotonic: true, temporality: 'AGGREGATION_TEMPORALITY_CUMULATIVE', unit: '' });
    expect(exchanges.map((p) => [p.attributes.outcome, p.value]).sort()).toEqual([
      ['ok', 2],
      ['upstream_error', 1],
    ]);
    expect(latest.find((p) => p.name === 'tokenwarden_process_resident_memory')).toMatchObject({ type: 'gauge', unit: 'By' });
    expect(latest.find((p) => p.name === 'tokenwarden_extproc_phase_duration')).toMatchObject({ type: 'histogram', unit: 's' });
    expect(latest.some((p) => /_total$|_seconds$|_bytes$/.test(p.name) && p.type !== 'gauge')).toBe(false);
    // Cumulative: every point of every export starts when the exporter did.
    expect(new Set(receiver.points.map((p) => p.startTimeUnixNano)).size).toBe(1);
  });

  it('comes back out of a Collector with exactly the names of /metrics', () => {
    const exported = new Set(latest.map(collectorName));
    // Families only appear (a first garbage collection adds one): /metrics before ⊆ export ⊆ /metrics after.
    expect([...before.families.keys()].filter((name) => !exported.has(name))).toEqual([]);
    expect([...exported].filter((name) => !exposition.families.has(name))).toEqual([]);
    expect(exported.size).toBeGreaterThan(40);
  });

  it('carries, per series, exactly the histogram counts, sums and buckets of /metrics', () => {
    const histograms = latest.filter((p) => p.type === 'histogram' && !p.name.startsWith('tokenwarden_process') && !p.name.startsWith('tokenwarden_nodejs'));
    expect(histograms.length).toBeGreaterThanOrEqual(6);
    for (const p of histograms) {
      const name = collectorName(p);
      const labels = collectorLabels(p.attributes);
      const one = (suffix: string) => exposition.samples.filter((s) => s.name === `${name}_${suffix}` && sameLabels(s.labels, labels));
      expect(one('count').map((s) => s.value)).toEqual([p.histogram!.count]);
      expect(one('sum').map((s) => s.value)).toEqual([p.histogram!.sum]);
      // /metrics: cumulative counts by `le`; OTLP: per-bucket counts and the finite bounds.
      const buckets = exposition.samples.filter((s) => s.name === `${name}_bucket` && sameLabels({ ...s.labels, le: '' }, { ...labels, le: '' }));
      const finite = buckets.filter((b) => b.labels.le !== '+Inf');
      expect(p.histogram!.explicitBounds).toEqual(finite.map((b) => Number(b.labels.le)));
      let cumulative = 0;
      const rebuilt = p.histogram!.bucketCounts.map((c) => (cumulative += c));
      expect(rebuilt).toEqual(buckets.map((b) => b.value));
    }
  });
});
