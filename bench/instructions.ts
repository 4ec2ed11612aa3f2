/**
 * Instructions per exchange: the server runs under valgrind's callgrind with V8's `--predictable`
 * and `--single-threaded` (no time-based heuristics: garbage collection and compilation then depend
 * on the work, not on how fast the machine ran it, and happen on the thread that is counted), the
 * load driver runs a scenario against it one exchange at a time, and callgrind's count over the
 * measured run (after a warm-up, counters zeroed in between) is divided by its exchanges. Timings on
 * a shared 2-core machine vary by tens of percent from run to run; this count repeated within about
 * 2 %, quiet or with a core kept busy, 3-4 % beside the test suite (without `--predictable` it moved
 * by 10-25 % with the load), so it is the figure to compare two commits with, back to back on a
 * quiet machine (build both, then `--checkout` the other).
 * It is a different measure from CPU time (no cache misses, no kernel time, one exchange in flight,
 * so nothing is batched); compare counts with counts.
 *
 *   npx tsx bench/instructions.ts [--scenario chat,budget-memory] [--count 600] [--warmup 300]
 *                                 [--noop] [--checkout /path/to/another/worktree]
 *
 * Needs valgrind (Debian package valgrind); each scenario takes a few minutes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchReport } from './driver/report.js';
import { findScenario } from './driver/scenarios.js';
import { runDriver, startServerUnderTest } from './processes.js';

/** The instruction count (`summary:` or `totals:` line) of a callgrind dump. */
export function dumpInstructions(text: string): number {
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(text);
  if (!m) throw new Error('no summary line in the callgrind dump');
  return Number(m[1]);
}

function callgrindControl(command: '-z' | '-d', pid: number): void {
  const r = spawnSync('callgrind_control', [command, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${command} ${pid} failed: ${r.stderr || r.error?.message}`);
}

async function measure(name: string, o: { noop: boolean; count: number; warmup: number; checkout: string | undefined; workDir: string }): Promise<number> {
  const scenario = findScenario(name);
  const outFile = path.join(o.workDir, `callgrind.${name}.${o.noop ? 'noop' : 'tw'}.%p`);
  const wrapper = ['valgrind', '--tool=callgrind', `--callgrind-out-file=${outFile}`];
  const sut = await startServerUnderTest(o.noop, scenario.setup, ['--single-threaded', '--predictable'], { wrapper, ...(o.checkout ? { cwd: o.checkout } : {}) });
  const pid = sut.server.child.pid!;
  const report = path.join(o.workDir, `${name}.json`);
  const drive = (count: number): Promise<void> =>
    runDriver(['--target', sut.server.address, '--scenario', name, '--count', String(count), '--concurrency', '1', '--timeout', '60s', '--out', report]);
  try {
    await drive(o.warmup);
    callgrindControl('-z', pid);
    await drive(o.count);
    callgrindControl('-d', pid);
  } finally {
    await sut.stop();
  }
  const exchanges = (JSON.parse(readFileSync(report, 'utf8')) as BenchReport).count;
  // The dump made by `-d` is the one numbered 1 (`<out>.<pid>.1`); the file without a number is the exit's.
  const dump = readdirSync(o.workDir).find((f) => f.startsWith(path.basename(outFile).replace('%p', '')) && f.endsWith('.1'));
  if (dump === undefined || exchanges === 0) throw new Error(`no dump or no exchanges for ${name}`);
  return dumpInstructions(readFileSync(path.join(o.workDir, dump), 'utf8')) / exchanges;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'chat' },
      count: { type: 'string', default: '600' },
      warmup: { type: 'string', default: '300' },
      noop: { type: 'boolean', default: false },
      checkout: { type: 'string' },
    },
    strict: true,
  });
  const workDir = mkdtempSync(path.join(tmpdir(), 'tw-instructions-'));
  try {
    for (const name of values.scenario.split(',')) {
      const perExchange = await measure(name, { noop: values.noop, count: Number(values.count), warmup: Number(values.warmup), checkout: values.checkout, workDir });
      console.log(`${name.padEnd(17)} ${values.noop ? 'noop' : 'tokenwarden'}  ${(perExchange / 1e6).toFixed(3)} M instructions per exchange`);
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`instructions: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
