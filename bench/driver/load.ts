/**
 * The load loops: closed loop (C exchanges always in flight, as fast as the server answers) or open
 * loop (exchanges start at a fixed rate, whatever the server does), bounded by duration and/or count,
 * over a few HTTP/2 connections (Envoy keeps one per worker thread; one the server sends away is
 * replaced, see connections.ts). In the open loop an exchange's latency counts from its scheduled
 * start, so queueing inside the driver (at most `concurrency` in flight) shows up in the figures
 * instead of hiding (no coordinated omission). Every RPC ends as Envoy ends it (`close`).
 */
import { Connections } from './connections.js';
import { prepare, runExchange, type CloseStyle, type ExchangeOptions, type ExchangeResult, type ExchangeSink, type RpcEnd } from './exchange.js';
import { buildReport, Samples, type BenchReport, type RunData } from './report.js';
import { findScenario, PHASES, type Phase } from './scenarios.js';

export interface LoadOptions {
  /** host:port of the ext_proc server. */
  target: string;
  scenario: string;
  /** Closed loop: exchanges in flight. Open loop: the most in flight before starts queue up. */
  concurrency: number;
  /** Exchanges started per second; 0 runs the closed loop. */
  rps: number;
  /** Stop starting exchanges after this long (0: no time bound). */
  durationMs: number;
  /** Stop after this many exchanges (0: no count bound). At least one bound is required. */
  count: number;
  /** Exchanges run (closed loop) and discarded before measuring, to warm both JITs up. */
  warmup: number;
  connections: number;
  /** Per exchange. */
  timeoutMs: number;
  /** How each RPC is ended once every answer arrived: Envoy's default (reset) or its graceful close. */
  close: CloseStyle;
  /** Runs between the warm-up and the measured run, on the same connections (e.g. starts a profiler's count). */
  afterWarmup?: () => Promise<void>;
}

export const DEFAULT_LOAD: Omit<LoadOptions, 'target' | 'scenario'> = {
  concurrency: 16,
  rps: 0,
  durationMs: 5000,
  count: 0,
  warmup: 200,
  connections: 1,
  timeoutMs: 10_000,
  close: 'envoy',
};

/** Tries per exchange when its stream is refused unprocessed by a connection going away. */
const MAX_ATTEMPTS = 3;

class Recorder implements ExchangeSink {
  readonly latencies = new Samples();
  readonly phases = Object.fromEntries(PHASES.map((p) => [p, new Samples()])) as Record<Phase, Samples>;
  readonly answers = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly statuses = new Map<string, number>();
  readonly ends: Record<RpcEnd, number> = { server: 0, 'half-close': 0, reset: 0 };
  modeOverrides = 0;

  phase(phase: Phase, ns: number): void {
    this.phases[phase].add(ns);
  }
  answer(kind: string): void {
    bump(this.answers, kind);
  }
  modeOverride(): void {
    this.modeOverrides++;
  }
}

/** A sink that drops everything: warm-up exchanges. */
const DISCARD: ExchangeSink = { phase() {}, answer() {}, modeOverride() {} };

const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

export async function runLoad(options: LoadOptions): Promise<BenchReport> {
  if (options.durationMs <= 0 && options.count <= 0) throw new Error('give a duration or a count (or both)');
  const plan = prepare(findScenario(options.scenario));
  const connections = new Connections(options.target, options.connections);
  await connections.open();
  const exchangeOptions: ExchangeOptions = { timeoutMs: options.timeoutMs, close: options.close };
  const play = async (sink: ExchangeSink): Promise<ExchangeResult> => {
    for (let attempt = 1; ; attempt++) {
      let session;
      try {
        session = await connections.get();
      } catch (e) {
        return { status: 'Unavailable', error: `connect: ${(e as Error).message}`, end: null };
      }
      const r = await runExchange(session, plan, sink, exchangeOptions);
      if (!r.refused || attempt === MAX_ATTEMPTS) return r;
      connections.refusedReplayed();
    }
  };
  try {
    await closedLoop(play, DISCARD, null, { ...options, durationMs: 0, count: options.warmup });
    await options.afterWarmup?.();
    connections.resetStats();
    const rec = new Recorder();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const endReason = options.rps > 0 ? await openLoop(play, rec, options) : await closedLoop(play, rec, rec, options);
    const totalNs = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(cpu0);
    const data: RunData = {
      latencies: rec.latencies,
      totalNs,
      errors: rec.errors,
      statuses: rec.statuses,
      phases: rec.phases,
      answers: rec.answers,
      modeOverrides: rec.modeOverrides,
      close: options.close,
      ends: { ...rec.ends },
      sessions: connections.stats(),
      cpu,
      endReason,
      options: { ...options },
      date: new Date(),
    };
    return buildReport(data);
  } finally {
    await connections.close();
  }
}

/** Plays one exchange on the next connection. */
type Play = (sink: ExchangeSink) => Promise<ExchangeResult>;

type Bounds = Pick<LoadOptions, 'concurrency' | 'durationMs' | 'count'>;

function record(rec: Recorder | null, ns: number, r: ExchangeResult): void {
  if (!rec) return;
  rec.latencies.add(ns);
  bump(rec.statuses, r.status);
  if (r.error !== null) bump(rec.errors, r.error);
  else if (r.end !== null) rec.ends[r.end]++;
}

async function closedLoop(
  play: Play,
  sink: ExchangeSink,
  rec: Recorder | null,
  o: Bounds,
): Promise<RunData['endReason']> {
  if (o.count <= 0 && o.durationMs <= 0) return 'count';
  const deadline = o.durationMs > 0 ? process.hrtime.bigint() + BigInt(o.durationMs) * 1_000_000n : null;
  let started = 0;
  let endReason: RunData['endReason'] = 'normal';
  const more = (): boolean => {
    if (o.count > 0 && started >= o.count) {
      endReason = 'count';
      return false;
    }
    if (deadline !== null && process.hrtime.bigint() >= deadline) {
      endReason = 'timeout';
      return false;
    }
    return true;
  };
  const worker = async (): Promise<void> => {
    while (more()) {
      started++;
      const t = process.hrtime.bigint();
      const r = await play(sink);
      record(rec, Number(process.hrtime.bigint() - t), r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  return endReason;
}

function openLoop(
  play: Play,
  rec: Recorder,
  o: Bounds & { rps: number },
): Promise<RunData['endReason']> {
  const t0 = process.hrtime.bigint();
  const intervalNs = 1e9 / o.rps;
  const limit = o.count > 0 ? o.count : Infinity;
  const lastStart = o.durationMs > 0 ? (o.durationMs * 1e6) : Infinity;
  let started = 0;
  let inFlight = 0;
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done || inFlight > 0) return;
      done = true;
      clearInterval(ticker);
      resolve(started >= limit ? 'count' : 'timeout');
    };
    const pump = (): void => {
      const elapsed = Number(process.hrtime.bigint() - t0);
      while (started < limit && started * intervalNs <= Math.min(elapsed, lastStart) && inFlight < o.concurrency) {
        const scheduled = t0 + BigInt(Math.round(started * intervalNs));
        started++;
        inFlight++;
        void play(rec).then((r) => {
          inFlight--;
          record(rec, Number(process.hrtime.bigint() - scheduled), r);
          pump();
        });
      }
      if (started >= limit || elapsed >= lastStart) {
        clearInterval(ticker);
        finish();
      }
    };
    const ticker = setInterval(pump, 1);
    pump();
  });
}
