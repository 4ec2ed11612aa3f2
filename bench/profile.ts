/**
 * Where tokenwarden's CPU goes, per exchange: `tokenwarden serve` (dist/ when built) runs under
 * V8's CPU profiler (`--cpu-prof`) while the load driver runs one scenario against it; the
 * samples taken during the measured run (after a warm-up run) are summed by where their code
 * lives: tokenwarden's rooms (extproc, traffic, metering, governance, store, metrics), the libraries
 * (grpc-js, protobufjs, ioredis), Node's HTTP/2 and the rest of its core, garbage collection. The
 * profile samples the main thread only; the CPU time of every thread from /proc follows it, which
 * shows what the other threads (V8's GC helpers above all) cost per exchange.
 *
 *   npx tsx bench/profile.ts [--scenario chat] [--duration 8s] [--concurrency 16] [--noop]
 *
 * `--noop` profiles the no-op server instead, for the same breakdown of the floor. The profile
 * itself is kept in .bench-out/profile/ (open it in Chrome DevTools or speedscope).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { procStatCpuUs } from './capacity-model.js';
import type { BenchReport } from './driver/report.js';
import { findScenario } from './driver/scenarios.js';
import { runDriver, startServerUnderTest, type ServerUnderTest } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The room a sample's code belongs to, from its function and script. */
export function roomOf(functionName: string, url: string): string {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)' || functionName === '(root)') return 'V8 and native (program)';
  const own = /\/(?:dist|src)\/([a-z-]+)\//.exec(url);
  if (own && !url.includes('node_modules')) {
    const room = own[1]!;
    return room === 'admin' || room === 'telemetry' ? 'tokenwarden: metrics' : `tokenwarden: ${room}`;
  }
  if (/\/(?:dist|src)\/[a-z-]+\.[jt]s$/.test(url) && !url.includes('node_modules')) return 'tokenwarden: wiring (server.ts, cli.ts)';
  if (url.includes('/bench/')) return 'no-op server code';
  if (url.includes('node_modules/@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('node_modules/protobufjs') || url.includes('node_modules/@protobufjs')) return 'protobufjs';
  if (url.includes('node_modules/ioredis') || url.includes('node_modules/redis-')) return 'ioredis';
  if (url.includes('node_modules/')) return 'other libraries';
  if (url.startsWith('node:internal/http2')) return 'Node HTTP/2';
  if (url.startsWith('node:')) return 'Node core (streams, events, buffers, timers)';
  // Functions without a script: V8 builtins and Node's C++ bindings (buffer writes, string decoding).
  return url === '' ? 'builtins and bindings' : 'other';
}

/** Main-thread time per room within [fromUs, toUs] of the monotonic clock the profile uses. */
export function breakdown(profile: CpuProfile, fromUs: number, toUs: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const rooms = new Map<string, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs || t > toUs) continue;
    const frame = byId.get(profile.samples[i]!)?.callFrame;
    if (!frame) continue;
    const room = roomOf(frame.functionName, frame.url);
    rooms.set(room, (rooms.get(room) ?? 0) + dt);
  }
  return rooms;
}

/** CPU time (user + system, µs) of each thread of a process, by what the thread does, from /proc. */
export function threadCpuUs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tasks) {
    try {
      const us = procStatCpuUs(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      const name = tid === String(pid) ? 'main thread' : threadGroup(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim());
      byName.set(name, (byName.get(name) ?? 0) + us);
    } catch {
      // The thread ended between listing and reading.
    }
  }
  return byName;
}

/** Node 20 names every thread "node"; only the profiler's own thread has a name of its own. */
function threadGroup(comm: string): string {
  if (comm.startsWith('v8:ProfEvntProc')) return 'the profiler itself';
  return "other threads (V8's GC and compiler helpers, tokenizer worker)";
}

/** The monotonic clock in µs, as V8's profiler stamps its samples (CLOCK_MONOTONIC on Linux). */
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'chat' },
      duration: { type: 'string', default: '8s' },
      concurrency: { type: 'string', default: '16' },
      noop: { type: 'boolean', default: false },
      'out-dir': { type: 'string', default: '.bench-out/profile' },
    },
    strict: true,
  });
  const scenario = findScenario(values.scenario);
  const outDir = path.resolve(ROOT, values['out-dir']);
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (f.endsWith('.cpuprofile')) rmSync(path.join(outDir, f));
  let sut: ServerUnderTest | null = await startServerUnderTest(values.noop, scenario.setup, ['--cpu-prof', '--cpu-prof-dir', outDir]);
  try {
    const { server } = sut;
    const report = path.join(outDir, 'report.json');
    const pid = server.child.pid!;
    let cpuBefore = new Map<string, number>();
    let from = 0;
    // Warm-up and measured run on the same connections (a new connection makes V8 compile again).
    const args = ['--target', server.address, '--scenario', scenario.name, '--concurrency', values.concurrency, '--warmup', '2000', '--duration', values.duration];
    await runDriver([...args, '--out', report], () => {
      cpuBefore = threadCpuUs(pid);
      from = monotonicUs();
    });
    const to = monotonicUs();
    const cpuAfter = threadCpuUs(pid);
    // The profile is written when the server exits.
    await sut.stop();
    sut = null;
    const r = JSON.parse(readFileSync(report, 'utf8')) as BenchReport;
    // The main thread's profile is the largest (the tokenizer worker writes one of its own).
    const file = readdirSync(outDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => path.join(outDir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size)[0];
    if (!file) throw new Error('no CPU profile was written');
    const rooms = breakdown(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, from, to);
    const exchanges = Math.max(1, r.count);
    const busy = [...rooms].filter(([room]) => room !== 'idle').reduce((a, [, us]) => a + us, 0);
    const who = values.noop ? 'no-op server' : 'tokenwarden';
    process.stdout.write(
      `${who}, ${scenario.name}: ${r.count} exchanges at ${r.rps.toFixed(0)}/s; main thread busy ${(busy / exchanges).toFixed(1)} µs per exchange ` +
        `(${((100 * busy) / Math.max(1, busy + (rooms.get('idle') ?? 0))).toFixed(0)}% of the run)\n`,
    );
    for (const [room, us] of [...rooms].filter(([room]) => room !== 'idle').sort((a, b) => b[1] - a[1])) {
      process.stdout.write(`  ${room.padEnd(46)} ${(us / exchanges).toFixed(1).padStart(7)} µs  ${((100 * us) / busy).toFixed(1).padStart(5)}%\n`);
    }
    // /proc counts every thread (and the kernel time of its syscalls), which the profile does not.
    process.stdout.write(`process CPU by thread (/proc, user + system), µs per exchange:\n`);
    for (const [name, after] of [...cpuAfter].sort((a, b) => b[1] - (cpuBefore.get(b[0]) ?? 0) - (a[1] - (cpuBefore.get(a[0]) ?? 0)))) {
      const us = (after - (cpuBefore.get(name) ?? 0)) / exchanges;
      process.stdout.write(`  ${name.padEnd(46)} ${us.toFixed(1).padStart(7)} µs\n`);
    }
    process.stdout.write(`profile: ${path.relative(ROOT, file)}\n`);
  } finally {
    await sut?.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`profile: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
