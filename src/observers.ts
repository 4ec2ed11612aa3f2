/**
 * How the server's parts report what happens: ext_proc streams and HTTP/2 sessions, inventory
 * flushes, budget ledger calls. Each event goes to the metrics, the log, the telemetry and the
 * embedder's hooks here, so createServer (server.ts) only wires the parts together.
 */
import type { Metrics } from './telemetry/metrics.js';
import type { HistogramCell } from './telemetry/series.js';
import type { ExchangeRecord } from './domain.js';
import type { RequestKind } from './extproc/protocol.js';
import type { ExtProcServerOptions } from './extproc/server.js';
import type { StreamObserver } from './extproc/stream.js';
import type { StoreErrorEvent } from './governance/admission.js';
import { errorFields, type Logger } from './log.js';
import { MemoryStore } from './inventory/memory.js';
import type { Recorder, RecorderEvents } from './inventory/recorder.js';
import type { InventoryStore } from './inventory/types.js';
import { ThrottledWarning } from './telemetry/failures.js';
import type { Telemetry } from './telemetry/telemetry.js';

export interface StreamObserverDeps {
  metrics: Metrics;
  recorder: Recorder;
  /** The telemetry in force (it starts with the server). */
  telemetry: () => Telemetry;
  onExchange?: (record: ExchangeRecord) => void;
  log: Logger;
}

export function streamObserver({ metrics, recorder, telemetry, onExchange, log }: StreamObserverDeps): StreamObserver {
  // A phase's series appears with its first message, as prom-client's would; looked up once, as
  // observe() runs for every message.
  const phase = (k: RequestKind): { observe(v: number): void } => {
    let cell: HistogramCell | undefined;
    return { observe: (v) => (cell ??= metrics.phaseSeconds.cell({ phase: k })).observe(v) };
  };
  const phases: Record<RequestKind, { observe(v: number): void }> = {
    request_headers: phase('request_headers'),
    request_body: phase('request_body'),
    request_trailers: phase('request_trailers'),
    response_headers: phase('response_headers'),
    response_body: phase('response_body'),
    response_trailers: phase('response_trailers'),
  };
  return {
    messageHandled: (kind, seconds) => phases[kind].observe(seconds),
    protocolError: (reason) => metrics.protocolErrors.inc({ reason }),
    nonLlmRequest: () => metrics.nonLlm.inc(),
    record: (record) => {
      recorder.record(record);
      metrics.recordExchange(record);
      telemetry().exchange(record);
      if (!onExchange) return;
      try {
        onExchange(record);
      } catch (err) {
        log.error('onExchange hook threw', errorFields(err));
      }
    },
    streamOpened: () => {
      metrics.streamsActive.inc();
      metrics.streamsTotal.inc();
    },
    streamClosed: () => metrics.streamsActive.dec(),
    streamEndedByServer: () => metrics.streamsEndedByServer.inc(),
    transitionRefused: (from, to) => metrics.streamTransitionsRefused.inc({ from, to }),
    internalError: (err) => {
      metrics.internalErrors.inc();
      log.error('error while processing an ext_proc message; answered unchanged', errorFields(err));
    },
  };
}

/** The gRPC server's own events: refused streams and HTTP/2 sessions. */
export function grpcServerEvents(metrics: Metrics, log: Logger): Pick<ExtProcServerOptions, 'streamRefused' | 'sessions' | 'sessionsUnavailable'> {
  return {
    streamRefused: () => metrics.streamsRefused.inc(),
    sessions: {
      opened: () => {
        metrics.http2SessionsOpened.inc();
        metrics.http2SessionsActive.inc();
      },
      closed: (reason, streamsInFlight) => {
        metrics.http2SessionsActive.dec();
        metrics.http2SessionsClosed.inc({ reason });
        if (streamsInFlight > 0) log.warn('HTTP/2 session to Envoy closed with streams in flight', { reason, streams_in_flight: streamsInFlight });
      },
      streamResetByPeer: () => metrics.http2StreamsResetByPeer.inc(),
    },
    sessionsUnavailable: () => log.warn('this @grpc/grpc-js version hides its HTTP/2 servers: no session metrics and no connection rotation'),
  };
}

/** The inventory's flushes: timings, failures (kept and retried), drops, the memory store's evictions. */
export function recorderEvents(metrics: Metrics, log: Logger, store: InventoryStore, pending: () => number): RecorderEvents {
  let evictionsCounted = 0;
  return {
    flushed: ({ seconds }) => {
      metrics.storeFlushSeconds.observe(seconds);
      metrics.storePending.set(pending());
      // Only a flush adds records, so only a flush evicts.
      if (store instanceof MemoryStore) {
        metrics.storeEvicted.inc(store.evictions - evictionsCounted);
        evictionsCounted = store.evictions;
      }
    },
    flushFailed: (err, pendingDeltas) => {
      metrics.storeFlushErrors.inc();
      metrics.storePending.set(pendingDeltas);
      log.warn('inventory flush failed; the batch is kept and retried', { ...errorFields(err), pending_deltas: pendingDeltas });
    },
    dropped: (deltas, requests) => {
      metrics.storeDropped.inc(requests);
      log.error('inventory deltas dropped (retry buffer full during a store outage, or not written by the shutdown deadline)', { deltas, requests });
    },
  };
}

/** The Redis ledger's settlement retries: how many wait, and those given up. */
export function ledgerEvents(metrics: Metrics, log: Logger) {
  const settlementLost = new ThrottledWarning(log, 'budget settlement given up: Redis did not take it within a minute of retries; its usage is not counted', 10_000);
  return {
    onPending: (n: number) => metrics.budgetSettlementsPending.set(n),
    onLost: () => {
      metrics.budgetSettlementsLost.inc();
      settlementLost.warn({});
    },
  };
}

/** Admission's ledger calls that failed or missed their deadline, with what was decided without them. */
export function ledgerCallFailures(metrics: Metrics, log: Logger): (e: StoreErrorEvent) => void {
  return (e) => {
    const decision = e.admitted === undefined ? 'none' : e.admitted ? 'admitted' : 'refused';
    metrics.budgetStoreErrors.inc({ op: e.op, decision });
    log.warn('budget ledger call failed', { op: e.op, decision, ...errorFields(e.error) });
  };
}
