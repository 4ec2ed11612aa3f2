/**
 * The OTLP pipelines: the metrics of the prom-client registry (read at each export by a
 * MetricProducer, so the request path records nothing twice) and, when enabled, one span per LLM
 * exchange, each sent over HTTP/protobuf or gRPC by the OpenTelemetry SDK's exporters. Everything
 * runs on the SDK's timers; a down or hanging receiver costs counted failures and a bounded span
 * queue, never a slower exchange. Shutdown makes one last export of both, bounded by the OTLP
 * timeout.
 */
import { Metadata } from '@grpc/grpc-js';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as HttpMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as HttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { Metrics } from './metrics.js';
import type { ExchangeRecord } from '../domain.js';
import { errorFields, type Logger } from '../log.js';
import { droppedSpansMeterProvider, ReportingExporter, ThrottledWarning } from './failures.js';
import { PromRegistryProducer } from './prom-producer.js';
import type { OtlpTarget, Signal, TelemetrySettings, TraceTarget } from './settings.js';
import { recordExchangeSpan } from './spans.js';

export interface Telemetry {
  /** Called once per completed exchange: its span when tracing is on, nothing otherwise. */
  exchange(record: ExchangeRecord): void;
  /** A last export of both signals, then the SDK is shut down; bounded by the OTLP timeout. */
  shutdown(): Promise<void>;
}

export const NO_TELEMETRY: Telemetry = { exchange: () => {}, shutdown: async () => {} };

const SPAN_BATCH = 512;

interface Deps {
  metrics: Metrics;
  log: Logger;
}

/** host:port of a receiver, for log lines (a URL may carry credentials; headers are never logged). */
function receiver(target: OtlpTarget): string {
  return new URL(target.url).host;
}

/** Counts a signal's failed exports and logs them at most once per export interval. */
function failureCounter(signal: Signal, target: OtlpTarget, { metrics, log }: Deps): (error: Error | undefined) => void {
  const warning = new ThrottledWarning(log, 'OTLP export failed', target.intervalMs);
  return (error) => {
    metrics.telemetryExportFailures.inc({ signal });
    warning.warn({ signal, receiver: receiver(target), error: error?.message ?? 'unknown error' });
  };
}

function metricExporter(target: OtlpTarget): PushMetricExporter {
  const common = { url: target.url, timeoutMillis: target.timeoutMs };
  if (target.protocol === 'http/protobuf') return new HttpMetricExporter({ ...common, headers: target.headers });
  return new GrpcMetricExporter({ ...common, metadata: grpcMetadata(target.headers) });
}

function spanExporter(target: OtlpTarget): SpanExporter {
  const common = { url: target.url, timeoutMillis: target.timeoutMs };
  if (target.protocol === 'http/protobuf') return new HttpTraceExporter({ ...common, headers: target.headers });
  return new GrpcTraceExporter({ ...common, metadata: grpcMetadata(target.headers) });
}

function grpcMetadata(headers: Record<string, string>): Metadata {
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return metadata;
}

function meterProvider(target: OtlpTarget, resource: Resource, scope: { name: string; version: string }, deps: Deps): MeterProvider {
  const reader = new PeriodicExportingMetricReader({
    exporter: new ReportingExporter(metricExporter(target), failureCounter('metrics', target, deps)),
    exportIntervalMillis: target.intervalMs,
    // The reader refuses a deadline beyond the interval; an export never outlives the next one.
    exportTimeoutMillis: Math.min(target.timeoutMs, target.intervalMs),
    metricProducers: [new PromRegistryProducer(deps.metrics.registry, scope)],
  });
  return new MeterProvider({ resource, readers: [reader] });
}

function tracerProvider(target: TraceTarget, resource: Resource, deps: Deps): TracerProvider {
  const queueFull = new ThrottledWarning(deps.log, 'spans dropped: the span queue is full (telemetry.traces.max_queue_size)', target.intervalMs);
  const processor = new BatchSpanProcessor({
    exporter: new ReportingExporter(spanExporter(target), failureCounter('traces', target, deps)),
    maxQueueSize: target.maxQueueSize,
    maxExportBatchSize: Math.min(SPAN_BATCH, target.maxQueueSize),
    scheduledDelayMillis: target.intervalMs,
    exportTimeoutMillis: target.timeoutMs,
    selfObsMeterProvider: droppedSpansMeterProvider((spans, reason) => {
      deps.metrics.telemetrySpansDropped.inc(spans);
      if (reason === 'queue_full') queueFull.warn({ max_queue_size: target.maxQueueSize });
    }),
  });
  // Parent-based: a traceparent's sampled flag decides; the ratio applies to exchanges without one.
  const sampler = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(target.sampleRatio) });
  return new TracerProvider({ resource, sampler, spanProcessors: [processor] });
}

/** Starts the configured pipelines (none: NO_TELEMETRY). */
export function startTelemetry(settings: TelemetrySettings, deps: Deps): Telemetry {
  const { metrics, traces } = settings;
  if (metrics === null && traces === null) return NO_TELEMETRY;
  const resource = defaultResource().merge(resourceFromAttributes(settings.resource));
  const scope = { name: 'tokenwarden', version: settings.resource['service.version'] ?? '' };
  const meters = metrics === null ? null : meterProvider(metrics, resource, scope, deps);
  const tracing = traces === null ? null : tracerProvider(traces, resource, deps);
  const tracer = tracing?.getTracer(scope.name, scope.version);
  const describe = (t: OtlpTarget | null) => (t === null ? 'off' : `${t.protocol} ${receiver(t)}`);
  deps.log.info('OTLP export started', {
    metrics: describe(metrics),
    traces: describe(traces),
    'service.name': settings.resource['service.name'],
    'service.instance.id': settings.resource['service.instance.id'],
  });
  const deadlineMs = Math.max(metrics?.timeoutMs ?? 0, traces?.timeoutMs ?? 0);
  return {
    exchange: tracer === undefined ? () => {} : (record) => recordExchangeSpan(tracer, record),
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), deadlineMs)));
      const done = Promise.all([meters?.shutdown(), tracing?.shutdown()]).then(
        () => 'done' as const,
        (err: unknown) => deps.log.warn('OTLP shutdown failed', errorFields(err)),
      );
      const outcome = await Promise.race([done, timedOut]);
      clearTimeout(timer);
      if (outcome === 'timed out') deps.log.warn('the final OTLP export did not finish in time; shutting down without it', { timeout_ms: deadlineMs });
    },
  };
}
