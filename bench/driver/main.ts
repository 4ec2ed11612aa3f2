/**
 * The load driver as its own process, so its CPU is not the server's:
 *
 *   npx tsx bench/driver/main.ts --target 127.0.0.1:50051 --scenario chat [--concurrency 16]
 *       [--rps 0] [--duration 5s] [--count 0] [--warmup 200] [--connections 1] [--timeout 10s]
 *       [--close envoy|graceful] [--out FILE] [--hold]
 *   npx tsx bench/driver/main.ts --list
 *
 * --close: how each RPC ends after its last answer, as Envoy ends it (default `envoy`: END_STREAM then
 * RST_STREAM(CANCEL) at once unless the server already ended it; `graceful`: END_STREAM, up to 1 s for
 * the server's trailers, then the reset).
 * --hold: after the warm-up, print "warm" on stdout and wait for a line on stdin before the measured
 * run, which then uses the same connections (bench/instructions.ts starts counting in between).
 * Writes the report (ghz's JSON format plus per-phase figures) to --out, or to stdout.
 */
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseDriverArgs } from './args.js';
import { runLoad } from './load.js';
import { SCENARIOS } from './scenarios.js';

async function main(): Promise<void> {
  const { out, list, hold, ...options } = parseDriverArgs(process.argv.slice(2));
  if (list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(18)} ${s.description}\n`);
    return;
  }
  const report = await runLoad(hold ? { ...options, afterWarmup: warmThenWait } : options);
  const text = JSON.stringify(report, null, 2);
  if (out === null) process.stdout.write(`${text}\n`);
  else {
    writeFileSync(out, `${text}\n`);
    const p99 = report.latencyDistribution.find((l) => l.percentage === 99)?.latency ?? 0;
    const c = report.closes;
    const goaways = Object.entries(report.sessions.goaways).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
    process.stderr.write(
      `${options.scenario}: ${report.count} exchanges, ${report.rps.toFixed(0)}/s, p99 ${(p99 / 1e6).toFixed(2)} ms; ` +
        `ended by server ${c.endedByServer + c.endedAfterHalfClose}, reset by driver ${c.resetByDriver}; GOAWAYs: ${goaways} -> ${out}\n`,
    );
  }
}

/** Says the warm-up is over and waits for the go-ahead (one line on stdin, or stdin closed: no hang without a parent). */
async function warmThenWait(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => {
    lines.once('line', () => resolve());
    lines.once('close', () => resolve());
  });
  process.stdout.write('warm\n');
  await go;
  lines.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`bench driver: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
