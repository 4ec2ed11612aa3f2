/**
 * tokenwarden's own view of each phase: `tokenwarden_extproc_phase_duration_seconds` (time from
 * receiving an ext_proc message to writing its answer) scraped from the admin /metrics before and
 * after a run. It excludes the loopback trip and the driver, so it is the processing time itself;
 * a p99 read off histogram buckets is the upper bound of the bucket it falls in.
 */
import type { Phase } from './driver/scenarios.js';

const METRIC = 'tokenwarden_extproc_phase_duration_seconds_bucket';

/** Cumulative bucket counts by phase, then by upper bound (seconds; Infinity for +Inf). */
export type PhaseBuckets = Map<string, Map<number, number>>;

export function parsePhaseBuckets(text: string): PhaseBuckets {
  const out: PhaseBuckets = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC)) continue;
    const m = /phase="([^"]+)"/.exec(line);
    const le = /le="([^"]+)"/.exec(line);
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!m || !le || !Number.isFinite(value)) continue;
    const bound = le[1] === '+Inf' ? Infinity : Number(le[1]);
    let phase = out.get(m[1]!);
    if (!phase) out.set(m[1]!, (phase = new Map()));
    phase.set(bound, value);
  }
  return out;
}

export async function scrapePhaseBuckets(adminAddress: string): Promise<PhaseBuckets> {
  const res = await fetch(`http://${adminAddress}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return parsePhaseBuckets(await res.text());
}

/**
 * The p-quantile (0..1) of `phase` over the messages counted between two scrapes, as the upper
 * bound of its bucket in seconds (Infinity past the last bucket); null when no message was counted.
 */
export function quantileBound(before: PhaseBuckets, after: PhaseBuckets, phase: Phase, q: number): number | null {
  const a = after.get(phase);
  if (!a) return null;
  const b = before.get(phase);
  const bounds = [...a.keys()].sort((x, y) => x - y);
  const counts = bounds.map((le) => (a.get(le) ?? 0) - (b?.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const i = counts.findIndex((c) => c >= q * total);
  return i === -1 ? Infinity : bounds[i]!;
}
