/**
 * Instructions per exchange: the server runs under valgrind's callgrind with V8's `--predictable`
 * and `--single-threaded` (no time-based heuristics: garbage collection and compilation then depend
 * on the work, not on how fast the machine ran it, and happen on the thread that is counted), the
 * load driver runs a scenario against it one exchange at a time, and callgrind's count over the
 * measured run is divided by its exchanges.
 *
 * The warm-up runs uninstrumented (fast) and long, and counting starts after it: V8 keeps compiling
 * hot functions for the first few thousand exchanges (TurboFan, on this thread), and a count taken
 * after 300 exchanges was two thirds compilation, which moves with any change to a function's shape
 * while the steady state does not. What V8's compilers and collector still spend in the measured run
 * is reported beside the total, so a difference can be told apart from late compilation.
 *
 * Timings on a shared 2-core machine vary by tens of percent from run to run; this count repeats
 * within about 1 %, so it is the figure to compare two commits with (build both, then `--checkout`
 * the other). It is a different measure from CPU time (no cache misses, no kernel time, one exchange
 * in flight, so nothing is batched); compare counts with counts.
 *
 *   npx tsx bench/instructions.ts [--scenario chat,budget-memory] [--count 1000] [--warmup 5000]
 *                                 [--noop] [--checkout /path/to/another/worktree] [--keep DIR]
 *
 * `--keep DIR` keeps each measured run's callgrind dump (`DIR/callgrind.<scenario>.<tw|noop>`) for
 * `callgrind_annotate`: the count by native function (V8's builtins, compiler and collector,
 * libuv); code V8 compiled at run time shows as unknown addresses.
 *
 * Needs valgrind (Debian package valgrind); each scenario takes a few minutes.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** Where the count of a dump went, by who spent it (exclusive costs of native functions). */
export interface InstructionShares {
  total: number;
  /** V8's parser, bytecode generator and optimising compilers. */
  compiling: number;
  /** V8's garbage collector. */
  collecting: number;
}

const COMPILING = /v8::internal::(?:compiler|maglev|baseline|interpreter::BytecodeGenerator|Parser|Scanner|Compiler)\b/;
const COLLECTING = /v8::internal::(?:Heap|Scavenger|MarkCompact|ConcurrentMarking|MarkingVisitor|Sweeper|Evacuat|MemoryAllocator|GCTracer)|v8::internal::\w*(?:Marking|Scaveng|Collector)\w*::/;

/**
 * Splits a callgrind dump's cost by function. In the format, `fn=` starts a function's block (a name
 * given once with a number, `(12) name`, later by the number alone), its cost lines follow, and the
 * line after a `calls=` line is the inclusive cost of a call, which belongs to the callee.
 */
export function dumpShares(text: string): InstructionShares {
  const names = new Map<string, string>();
  const shares: InstructionShares = { total: dumpInstructions(text), compiling: 0, collecting: 0 };
  let kind: 'compiling' | 'collecting' | null = null;
  let callCost = false;
  for (const line of text.split('\n')) {
    const named = /^c?fn=\((\d+)\)(?: (.*))?/.exec(line);
    if (named) {
      if (named[2] !== undefined) names.set(named[1]!, named[2]);
      if (line.startsWith('fn=')) {
        const name = names.get(named[1]!) ?? '';
        kind = COMPILING.test(name) ? 'compiling' : COLLECTING.test(name) ? 'collecting' : null;
      }
      continue;
    }
    if (line.startsWith('calls=')) {
      callCost = true;
      continue;
    }
    if (!/^[\d+*-]/.test(line)) continue;
    if (callCost) callCost = false;
    else if (kind !== null) shares[kind] += Number(line.split(' ')[1] ?? 0);
  }
  return shares;
}

function callgrindControl(command: string[], pid: number): void {
  const r = spawnSync('callgrind_control', [...command, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${command.join(' ')} ${pid} failed: ${r.stderr || r.error?.message}`);
}

interface MeasureOptions {
  noop: boolean;
  count: number;
  warmup: number;
  checkout: string | undefined;
  workDir: string;
  keep: string | undefined;
}

/** Instructions per exchange of one scenario's measured run, and their shares. */
async function measure(name: string, o: MeasureOptions): Promise<InstructionShares> {
  const scenario = findScenario(name);
  const outFile = path.join(o.workDir, `callgrind.${name}.${o.noop ? 'noop' : 'tw'}.%p`);
  // Uninstrumented until the warm-up is over: it then runs several times faster.
  const wrapper = ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${outFile}`];
  const sut = await startServerUnderTest(o.noop, scenario.setup, ['--single-threaded', '--predictable'], { wrapper, ...(o.checkout ? { cwd: o.checkout } : {}) });
  const pid = sut.server.child.pid!;
  const report = path.join(o.workDir, `${name}.json`);
  const args = ['--target', sut.server.address, '--scenario', name, '--warmup', String(o.warmup), '--count', String(o.count)];
  try {
    // One driver, one connection: a new connection's first exchanges make V8 compile again.
    await runDriver([...args, '--concurrency', '1', '--timeout', '60s', '--out', report], () => {
      callgrindControl(['--instr=on'], pid);
      callgrindControl(['-z'], pid);
    });
    callgrindControl(['-d'], pid);
  } finally {
    await sut.stop();
  }
  const exchanges = (JSON.parse(readFileSync(report, 'utf8')) as BenchReport).count;
  // The dump made by `-d` is the one numbered 1 (`<out>.<pid>.1`); the file without a number is the exit's.
  const dump = readdirSync(o.workDir).find((f) => f.startsWith(path.basename(outFile).replace('%p', '')) && f.endsWith('.1'));
  if (dump === undefined || exchanges === 0) throw new Error(`no dump or no exchanges for ${name}`);
  if (o.keep !== undefined) {
    mkdirSync(o.keep, { recursive: true });
    copyFileSync(path.join(o.workDir, dump), path.join(o.keep, `callgrind.${name}.${o.noop ? 'noop' : 'tw'}`));
  }
  const shares = dumpShares(readFileSync(path.join(o.workDir, dump), 'utf8'));
  return { total: shares.total / exchanges, compiling: shares.compiling / exchanges, collecting: shares.collecting / exchanges };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'chat' },
      count: { type: 'string', default: '1000' },
      warmup: { type: 'string', default: '5000' },
      noop: { type: 'boolean', default: false },
      checkout: { type: 'string' },
      keep: { type: 'string' },
    },
    strict: true,
  });
  const workDir = mkdtempSync(path.join(tmpdir(), 'tw-instructions-'));
  try {
    for (const name of values.scenario.split(',')) {
      const options = { noop: values.noop, count: Number(values.count), warmup: Number(values.warmup), checkout: values.checkout, workDir, keep: values.keep };
      const per = await measure(name, options);
      const m = (n: number): string => (n / 1e6).toFixed(3);
      console.log(
        `${name.padEnd(17)} ${values.noop ? 'noop' : 'tokenwarden'}  ${m(per.total)} M instructions per exchange` +
          ` (of which V8 compiling ${m(per.compiling)} M, collecting garbage ${m(per.collecting)} M)`,
      );
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
