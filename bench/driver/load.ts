/**
 * The load loops: closed loop (C exchanges always in flight, as fast as the server answers) or open
 * loop (exchanges start at a fixed rate, whatever the server does), bounded by duration and/or count,
 * over a few HTTP/2 connections (Envoy keeps one per worker thread). In the open loop an exchange's
 * latency counts from its scheduled start, so queueing inside the driver (at most `concurrency` in
 * flight) shows up in the figures instead of hiding (no coordinated omission).
 */
import http2 from 'node:http2';
import { prepare, runExchange, type ExchangeSink, type PreparedScenario } from './exchange.js';
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
}

export const DEFAULT_LOAD: Omit<LoadOptions, 'target' | 'scenario'> = {
  concurrency: 16,
  rps: 0,
  durationMs: 5000,
  count: 0,
  warmup: 200,
  connections: 1,
  timeoutMs: 10_000,
};

class Recorder implements ExchangeSink {
  readonly latencies = new Samples();
  readonly phases = Object.fromEntries(PHASES.map((p) => [p, new Samples()])) as Record<Phase, Samples>;
  readonly answers = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly statuses = new Map<string, number>();
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
  const sessions = await Promise.all(Array.from({ length: Math.max(1, options.connections) }, () => connect(options.target)));
  let rr = 0;
  const session = (): http2.ClientHttp2Session => sessions[rr++ % sessions.length]!;
  try {
    await closedLoop(plan, session, DISCARD, null, { ...options, durationMs: 0, count: options.warmup });
    const rec = new Recorder();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const endReason = options.rps > 0 ? await openLoop(plan, session, rec, options) : await closedLoop(plan, session, rec, rec, options);
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
      cpu,
      endReason,
      options: { ...options },
      date: new Date(),
    };
    return buildReport(data);
  } finally {
    await Promise.all(sessions.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function connect(target: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Large windows and session memory: 1 MB request bodies from many streams must not stall on
    // flow control or trip nghttp2's memory cap on the driver's side.
    const s = http2.connect(`http://${target}`, { maxSessionMemory: 512, settings: { initialWindowSize: 16 * 1024 * 1024 } });
    s.once('connect', () => {
      s.setLocalWindowSize(64 * 1024 * 1024);
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

type Bounds = Pick<LoadOptions, 'concurrency' | 'durationMs' | 'count' | 'timeoutMs'>;

function record(rec: Recorder | null, ns: number, status: string, error: string | null): void {
  if (!rec) return;
  rec.latencies.add(ns);
  bump(rec.statuses, status);
  if (error !== null) bump(rec.errors, error);
}

async function closedLoop(
  plan: PreparedScenario,
  session: () => http2.ClientHttp2Session,
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
      const r = await runExchange(session(), plan, sink, o.timeoutMs);
      record(rec, Number(process.hrtime.bigint() - t), r.status, r.error);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  return endReason;
}

function openLoop(
  plan: PreparedScenario,
  session: () => http2.ClientHttp2Session,
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
        void runExchange(session(), plan, rec, o.timeoutMs).then((r) => {
          inFlight--;
          record(rec, Number(process.hrtime.bigint() - scheduled), r.status, r.error);
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
