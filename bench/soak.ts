/**
 * Soak: fixed-rate load for a long time against a `tokenwarden serve` process, to show that its
 * memory and event-loop lag stay flat (issue 7, "Limits and resources"). Not part of CI.
 *
 *   npx tsx bench/soak.ts [--duration 10m] [--rps 200] [--scenario chat-stream] [--interval 5s]
 *                         [--concurrency 256] [--connections 4] [--close envoy|graceful]
 *
 * It starts its own server (memory store, default limits), drives the bench driver's open loop
 * (bench/driver/load.ts) at `--rps` for `--duration`, and every `--interval` reads the server's own
 * /metrics: RSS (tokenwarden_process_resident_memory_bytes), heap, open streams and event-loop lag
 * (tokenwarden_nodejs_eventloop_lag_*; prom-client resets the lag histogram at each scrape, so each
 * sample covers one interval). It prints one row per sample, then a verdict per measure:
 * "stable", or "growing" when the trend after the warm-up would add more than the allowed amount.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServeProcess } from './serve-process.js';
import { parseCloseStyle, parseDuration } from './driver/args.js';
import type { CloseStyle } from './driver/exchange.js';
import { runLoad } from './driver/load.js';
import { findScenario } from './driver/scenarios.js';

const MB = 1024 * 1024;
/** The first quarter of the run is the warm-up (JIT, tokenizer, allocator pools): not judged. */
const WARM_UP_FRACTION = 0.25;
/** RSS is "growing" when its trend over the judged window adds more than this... */
const RSS_GROWTH_FRACTION = 0.1;
/** ...and more than this many bytes (small heaps fluctuate by a few MiB). */
const RSS_GROWTH_FLOOR = 16 * MB;
/** Lag is "growing" when the judged window's last third has a p99 this many times its first third's... */
const LAG_GROWTH_FACTOR = 2;
/** ...and above this (sub-millisecond jitter is noise). */
const LAG_FLOOR_SECONDS = 0.005;

export interface Sample {
  atSeconds: number;
  rss: number;
  heapUsed: number;
  streams: number;
  exchanges: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
}

interface Options {
  durationMs: number;
  rps: number;
  scenario: string;
  intervalMs: number;
  concurrency: number;
  connections: number;
  close: CloseStyle;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string', default: '10m' },
      rps: { type: 'string', default: '200' },
      scenario: { type: 'string', default: 'chat-stream' },
      interval: { type: 'string', default: '5s' },
      concurrency: { type: 'string', default: '256' },
      connections: { type: 'string', default: '4' },
      close: { type: 'string', default: 'envoy' },
    },
    strict: true,
  });
  const positive = (name: string, text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number from 1, got "${text}"`);
    return n;
  };
  findScenario(values.scenario);
  return {
    durationMs: parseDuration(values.duration),
    rps: positive('rps', values.rps),
    scenario: values.scenario,
    intervalMs: parseDuration(values.interval),
    concurrency: positive('concurrency', values.concurrency),
    connections: positive('connections', values.connections),
    close: parseCloseStyle(values.close),
  };
}

// --- sampling the server's /metrics -------------------------------------------------------

async function sample(admin: string, atSeconds: number): Promise<Sample> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const sum = (name: string): number =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((total, m) => total + Number(m[1]), 0);
  return {
    atSeconds,
    rss: read('tokenwarden_process_resident_memory_bytes'),
    heapUsed: read('tokenwarden_nodejs_heap_size_used_bytes'),
    streams: read('tokenwarden_extproc_streams_active'),
    exchanges: sum('tokenwarden_exchanges_total'),
    lagP50: read('tokenwarden_nodejs_eventloop_lag_p50_seconds'),
    lagP99: read('tokenwarden_nodejs_eventloop_lag_p99_seconds'),
    lagMax: read('tokenwarden_nodejs_eventloop_lag_max_seconds'),
  };
}

// --- the verdict (pure) ----------------------------------------------------------------------

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const num = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

export interface Verdict {
  measure: string;
  verdict: 'stable' | 'growing' | 'too short';
  detail: string;
}

export function verdicts(samples: readonly Sample[]): Verdict[] {
  const judged = samples.slice(Math.floor(samples.length * WARM_UP_FRACTION));
  if (judged.length < 6) {
    const detail = `${judged.length} samples after the warm-up; use a longer --duration or a shorter --interval`;
    return [{ measure: 'RSS', verdict: 'too short', detail }, { measure: 'event-loop lag p99', verdict: 'too short', detail }];
  }
  const span = judged[judged.length - 1]!.atSeconds - judged[0]!.atSeconds;
  const perSecond = slope(judged.map((s) => ({ x: s.atSeconds, y: s.rss })));
  const trend = perSecond * span;
  const base = median(judged.map((s) => s.rss));
  const allowed = Math.max(RSS_GROWTH_FLOOR, base * RSS_GROWTH_FRACTION);
  const third = Math.floor(judged.length / 3);
  const early = median(judged.slice(0, third).map((s) => s.lagP99));
  const late = median(judged.slice(-third).map((s) => s.lagP99));
  const lagGrowing = late > LAG_FLOOR_SECONDS && late > early * LAG_GROWTH_FACTOR;
  return [
    {
      measure: 'RSS',
      verdict: trend > allowed ? 'growing' : 'stable',
      detail: `trend ${signed(trend / MB)} MiB over ${span.toFixed(0)} s (${signed((perSecond * 60) / MB)} MiB/min), median ${(base / MB).toFixed(1)} MiB, allowed ${(allowed / MB).toFixed(1)} MiB`,
    },
    {
      measure: 'event-loop lag p99',
      verdict: lagGrowing ? 'growing' : 'stable',
      detail: `median of the first third ${ms(early)}, of the last third ${ms(late)}`,
    },
  ];
}

const signed = (n: number): string => `${n >= 0 ? '+' : ''}${n.toFixed(1)}`;
const ms = (seconds: number): string => `${(seconds * 1000).toFixed(2)} ms`;

// --- output ------------------------------------------------------------------------------------

function printRow(cells: readonly string[]): void {
  const widths = [8, 10, 10, 8, 10, 9, 9, 9];
  process.stdout.write(`${cells.map((c, i) => c.padStart(widths[i] ?? 8)).join('  ')}\n`);
}

function printSample(s: Sample, previous: Sample | null): void {
  const rate = previous === null ? NaN : (s.exchanges - previous.exchanges) / (s.atSeconds - previous.atSeconds);
  printRow([
    `${s.atSeconds.toFixed(0)}s`,
    `${(s.rss / MB).toFixed(1)}`,
    `${(s.heapUsed / MB).toFixed(1)}`,
    `${s.streams}`,
    Number.isNaN(rate) ? '-' : rate.toFixed(0),
    ms(s.lagP50).replace(' ms', ''),
    ms(s.lagP99).replace(' ms', ''),
    ms(s.lagMax).replace(' ms', ''),
  ]);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-soak-'));
  const tw = await startServeProcess(dir, 'soak');
  try {
    process.stdout.write(`tokenwarden soak: scenario ${o.scenario}, ${o.rps} exchanges/s for ${o.durationMs / 1000} s, sampled every ${o.intervalMs / 1000} s\n`);
    process.stdout.write('(lag in ms as the server measures it: prom-client samples every 10 ms, so 10 ms is the floor, i.e. no lag)\n');
    printRow(['time', 'RSS MiB', 'heap MiB', 'streams', 'exch/s', 'lag p50', 'lag p99', 'lag max']);
    const samples: Sample[] = [];
    const t0 = Date.now();
    // A first scrape resets the lag histogram, so the first row covers only its own interval.
    await sample(tw.admin, 0);
    let running = true;
    const load = runLoad({
      target: tw.grpc,
      scenario: o.scenario,
      concurrency: o.concurrency,
      rps: o.rps,
      durationMs: o.durationMs,
      count: 0,
      warmup: 0,
      connections: o.connections,
      timeoutMs: 10_000,
      close: o.close,
    }).finally(() => {
      running = false;
    });
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, o.intervalMs));
      if (!running) break;
      const s = await sample(tw.admin, (Date.now() - t0) / 1000);
      printSample(s, samples[samples.length - 1] ?? null);
      samples.push(s);
    }
    const report = await load;
    const p99 = report.latencyDistribution.find((d) => d.percentage === 99)?.latency ?? NaN;
    const errors = Object.entries(report.errorDistribution).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
    process.stdout.write(
      `\nexchanges: ${report.count} at ${report.rps.toFixed(0)}/s, p99 ${(p99 / 1e6).toFixed(2)} ms (driver-side, includes queueing), errors: ${errors}\n`,
    );
    const c = report.closes;
    const goaways = Object.entries(report.sessions.goaways).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
    process.stdout.write(
      `RPCs (close ${c.style}): ended by the server ${c.endedByServer + c.endedAfterHalfClose}, reset by the driver ${c.resetByDriver}; ` +
        `driver connections opened ${report.sessions.opened}, GOAWAYs received: ${goaways}\n`,
    );
    for (const v of verdicts(samples)) process.stdout.write(`${v.measure}: ${v.verdict} (${v.detail})\n`);
  } finally {
    await tw.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
