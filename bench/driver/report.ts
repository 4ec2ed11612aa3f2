/**
 * Turns raw samples into a report in ghz's JSON format (latencies in ns, histogram marks in seconds,
 * the same percentiles and 11-bucket histogram ghz computes) plus tokenwarden's own additions: the
 * per-phase round trips, the answers seen, how the RPCs ended, the HTTP/2 sessions and the driver's
 * own CPU. Pure: no I/O.
 */
import type { SessionStats } from './connections.js';
import type { CloseStyle, RpcEnd } from './exchange.js';
import { PHASES, type Phase } from './scenarios.js';

/** A growable list of ns samples (typed array: millions of chunk samples stay cheap). */
export class Samples {
  private data = new Float64Array(1024);
  private n = 0;

  add(ns: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = ns;
  }

  get count(): number {
    return this.n;
  }

  sorted(): Float64Array {
    return this.data.slice(0, this.n).sort();
  }
}

export interface RunData {
  /** Whole-exchange latencies (every exchange, failed ones included, as ghz counts them). */
  latencies: Samples;
  /** Wall time of the measured run, ns. */
  totalNs: number;
  errors: ReadonlyMap<string, number>;
  statuses: ReadonlyMap<string, number>;
  phases: Readonly<Record<Phase, Samples>>;
  answers: ReadonlyMap<string, number>;
  modeOverrides: number;
  close: CloseStyle;
  /** Completed exchanges by how their RPC ended. */
  ends: Readonly<Record<RpcEnd, number>>;
  sessions: SessionStats;
  /** process.cpuUsage() difference over the measured run, µs. */
  cpu: { user: number; system: number };
  endReason: 'normal' | 'timeout' | 'count';
  options: Record<string, unknown>;
  date: Date;
}

export interface LatencyPercentile {
  percentage: number;
  latency: number;
}
export interface Bucket {
  mark: number;
  count: number;
  frequency: number;
}
export interface PhaseStats {
  count: number;
  average: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  slowest: number;
}

export interface BenchReport {
  date: string;
  endReason: string;
  options: Record<string, unknown>;
  count: number;
  total: number;
  average: number;
  fastest: number;
  slowest: number;
  rps: number;
  errorDistribution: Record<string, number>;
  statusCodeDistribution: Record<string, number>;
  latencyDistribution: LatencyPercentile[];
  histogram: Bucket[];
  /** Ours, not ghz's: round trip per message kind (response_body is per chunk), ns. */
  phases: Partial<Record<Phase, PhaseStats>>;
  answers: Record<string, number>;
  modeOverrides: number;
  /**
   * How the completed exchanges' RPCs ended (failed ones are in errorDistribution): ended by the
   * server before the driver closed anything, by the server after the driver's END_STREAM (graceful
   * style), or reset by the driver after every answer, as Envoy resets them.
   */
  closes: { style: CloseStyle; endedByServer: number; endedAfterHalfClose: number; resetByDriver: number };
  /** The driver's HTTP/2 connections: opened (replacements included), GOAWAYs received by code, lost. */
  sessions: SessionStats;
  driver: { cpuUserUs: number; cpuSystemUs: number; cpuPerExchangeUs: number; coresUsed: number };
}

const GHZ_PERCENTAGES = [10, 25, 50, 75, 90, 95, 99];

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** ghz's histogram: 10 equal buckets from fastest to slowest plus one at slowest, marks in seconds. */
export function histogram(sorted: Float64Array): Bucket[] {
  if (sorted.length === 0) return [];
  const fastest = sorted[0]! / 1e9;
  const slowest = sorted[sorted.length - 1]! / 1e9;
  const size = (slowest - fastest) / 10;
  const marks = Array.from({ length: 11 }, (_, i) => (i === 10 ? slowest : fastest + size * i));
  const counts = new Array<number>(11).fill(0);
  let b = 0;
  for (const ns of sorted) {
    const s = ns / 1e9;
    while (b < 10 && s > marks[b]!) b++;
    counts[b]!++;
  }
  return marks.map((mark, i) => ({ mark, count: counts[i]!, frequency: counts[i]! / sorted.length }));
}

function phaseStats(samples: Samples): PhaseStats {
  const s = samples.sorted();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length,
    average: Math.round(sum / s.length),
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    p999: percentile(s, 99.9),
    slowest: s[s.length - 1]!,
  };
}

export function buildReport(d: RunData): BenchReport {
  const s = d.latencies.sorted();
  let sum = 0;
  for (const v of s) sum += v;
  const count = s.length;
  const phases: Partial<Record<Phase, PhaseStats>> = {};
  for (const p of PHASES) if (d.phases[p].count > 0) phases[p] = phaseStats(d.phases[p]);
  const cpuUs = d.cpu.user + d.cpu.system;
  return {
    date: d.date.toISOString(),
    endReason: d.endReason,
    options: d.options,
    count,
    total: Math.round(d.totalNs),
    average: count === 0 ? 0 : Math.round(sum / count),
    fastest: count === 0 ? 0 : s[0]!,
    slowest: count === 0 ? 0 : s[count - 1]!,
    rps: d.totalNs > 0 ? count / (d.totalNs / 1e9) : 0,
    errorDistribution: Object.fromEntries(d.errors),
    statusCodeDistribution: Object.fromEntries(d.statuses),
    latencyDistribution: count === 0 ? [] : GHZ_PERCENTAGES.map((percentage) => ({ percentage, latency: percentile(s, percentage) })),
    histogram: histogram(s),
    phases,
    answers: Object.fromEntries(d.answers),
    modeOverrides: d.modeOverrides,
    closes: { style: d.close, endedByServer: d.ends.server, endedAfterHalfClose: d.ends['half-close'], resetByDriver: d.ends.reset },
    sessions: d.sessions,
    driver: {
      cpuUserUs: d.cpu.user,
      cpuSystemUs: d.cpu.system,
      cpuPerExchangeUs: count === 0 ? 0 : cpuUs / count,
      coresUsed: d.totalNs > 0 ? cpuUs / (d.totalNs / 1e3) : 0,
    },
  };
}
