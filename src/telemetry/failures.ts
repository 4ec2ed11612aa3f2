/**
 * What an unreachable or hanging Collector costs: nothing on the request path (exports run on the
 * SDK's timers, spans wait in a bounded queue), one counter increment per failed export and per
 * dropped span, and at most one log line per signal and export interval however many exports
 * fail, so that an outage does not flood the log.
 */
import { createNoopMeter, type Counter, type Meter, type MeterProvider } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { Logger } from '../log.js';

/** A warning logged at most once per interval; the lines not logged are counted in the next one. */
export class ThrottledWarning {
  private lastLogged = -Infinity;
  private notLogged = 0;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = this.now();
    if (now - this.lastLogged < this.intervalMs) {
      this.notLogged += 1;
      return;
    }
    this.log.warn(this.message, { ...fields, not_logged_since_last: this.notLogged });
    this.lastLogged = now;
    this.notLogged = 0;
  }
}

interface Exporter<T> {
  export(items: T, done: (result: ExportResult) => void): void;
  forceFlush?(): Promise<void>;
  shutdown(): Promise<void>;
}

/** An OTLP exporter whose failed exports are reported (a PushMetricExporter or a SpanExporter). */
export class ReportingExporter<T> implements Exporter<T> {
  constructor(
    private readonly inner: Exporter<T>,
    private readonly failed: (error: Error | undefined) => void,
  ) {}

  export(items: T, done: (result: ExportResult) => void): void {
    this.inner.export(items, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.failed(result.error);
      done(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

/** The batch span processor's count of spans it finished, with `error.type` when it gave up on them. */
const SPANS_PROCESSED = 'otel.sdk.processor.span.processed';

/**
 * The batch span processor's self-observability meter, reduced to the one number tokenwarden
 * needs: spans it dropped, because its queue was full (`error.type` queue_full) or because their
 * export failed. This is the processor's public hook for its drop count.
 */
export function droppedSpansMeterProvider(dropped: (spans: number, reason: string) => void): MeterProvider {
  const noop = createNoopMeter();
  const counter: Counter = {
    add(spans, attributes) {
      const reason = attributes?.['error.type'];
      if (reason !== undefined) dropped(spans, String(reason));
    },
  };
  const meter: Meter = Object.create(noop) as Meter;
  meter.createCounter = ((name, options) => (name === SPANS_PROCESSED ? counter : noop.createCounter(name, options))) as Meter['createCounter'];
  return { getMeter: () => meter };
}
