/**
 * Where tokenwarden's CPU goes, per exchange: `tokenwarden serve` (dist/ when built) runs under
 * V8's CPU profiler (`--cpu-prof`) while the load driver runs one scenario against it; the
 * samples taken during the measured run (after a warm-up run) are summed by where their code
 * lives: tokenwarden's rooms (extproc, traffic, metering, governance, store, metrics), the libraries
 * (grpc-js, protobufjs, ioredis), Node's HTTP/2 and the rest of its core, garbage collection. The
 * main thread only: the tokenizer worker and V8's GC helper threads are not sampled (`npm run
 * bench` reports the whole process's CPU).
 *
 *   npx tsx bench/profile.ts [--scenario chat] [--duration 8s] [--concurrency 16] [--noop]
 *
 * `--noop` profiles the no-op server instead, for the same breakdown of the floor. The profile
 * itself is kept in .bench-out/profile/ (open it in Chrome DevTools or speedscope).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchReport } from './driver/report.js';
import { BENCH_BUDGETS_YAML, findScenario } from './driver/scenarios.js';
import { startRedis, type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/sidecar-process.js';

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

function runDriver(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/driver/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`driver exited ${code}: ${stderr.trim()}`))));
  });
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
  const configDir = mkdtempSync(path.join(tmpdir(), 'tw-profile-'));
  let redis: RedisServer | null = null;
  try {
    let args: string[];
    if (values.noop) {
      args = ['--import', 'tsx', 'bench/noop-server.ts', '0'];
    } else {
      redis = scenario.setup.store === 'redis' ? await startRedis() : null;
      const file = path.join(configDir, 'config.yaml');
      const store = redis ? `{ type: redis, redis: { url: "${redis.url}" } }` : '{ type: memory }';
      writeFileSync(file, [`store: ${store}`, ...(scenario.setup.budget ? [BENCH_BUDGETS_YAML] : [])].join('\n') + '\n');
      const entry = existsSync(path.join(ROOT, 'dist/cli.js')) ? ['dist/cli.js'] : ['--import', 'tsx', 'src/cli.ts'];
      const grpc = `127.0.0.1:${await freePort()}`;
      args = [...entry, 'serve', '--config', file, '--grpc-address', grpc, '--admin-address', `127.0.0.1:${await freePort()}`, '--log-level', 'warn', '--no-watch'];
    }
    const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', outDir, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = / ready grpc=(\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then(() => reject(new Error(`the server exited before it was ready:\n${out}`)));
    });
    const report = path.join(outDir, 'report.json');
    const common = ['--target', address, '--scenario', scenario.name, '--concurrency', values.concurrency];
    await runDriver([...common, '--count', '2000', '--warmup', '0', '--out', report]);
    const from = monotonicUs();
    await runDriver([...common, '--duration', values.duration, '--warmup', '0', '--out', report]);
    const to = monotonicUs();
    child.kill('SIGTERM');
    await exited;
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
    process.stdout.write(`profile: ${path.relative(ROOT, file)}\n`);
  } finally {
    await redis?.close();
    rmSync(configDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`profile: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
