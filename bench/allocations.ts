/**
 * What a server allocates per exchange, and where: the sampling heap profiler (with the objects
 * the GC collected, i.e. garbage included) over a measured run of one scenario, after a warm-up.
 * Each sample is charged to the code that asked for it (see attribute()). Allocation drives the
 * garbage collection that `bench/profile.ts` shows on the main thread and on V8's helper threads.
 *
 *   npx tsx bench/allocations.ts [--scenario chat] [--count 10000] [--noop]
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchReport } from './driver/report.js';
import { findScenario } from './driver/scenarios.js';
import { roomOf } from './profile.js';
import { runDriver, startServerUnderTest } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface HeapNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children: HeapNode[];
}
interface HeapProfile {
  head: HeapNode;
  samples: { size: number; nodeId: number }[];
}

/** Code that allocates on its own account: tokenwarden's, the no-op's or a library's (not Node's or V8's). */
const accountable = (url: string): boolean => /\/(?:dist|src|bench)\//.test(url) || url.includes('node_modules/');
const site = (f: HeapNode['callFrame']): string =>
  `${f.functionName || '(anonymous)'} ${f.url.replace(/.*node_modules\//, '').replace(/.*\/(?:src|dist|bench)\//, '')}:${f.lineNumber + 1}`;

/**
 * Bytes by room and by allocation site. A sample in V8 or Node code (JSON.parse, Buffer#toString,
 * a stream's internals) is charged to the nearest caller that is tokenwarden's, the no-op's or a
 * library's: the code that asked for it.
 */
export function attribute(profile: HeapProfile): { total: number; rooms: Map<string, number>; sites: Map<string, number> } {
  const owner = new Map<number, HeapNode>();
  const walk = (node: HeapNode, caller: HeapNode | null): void => {
    const here = accountable(node.callFrame.url) ? node : caller;
    owner.set(node.id, here ?? node);
    for (const c of node.children) walk(c, here);
  };
  walk(profile.head, null);
  const rooms = new Map<string, number>();
  const sites = new Map<string, number>();
  let total = 0;
  for (const s of profile.samples) {
    const node = owner.get(s.nodeId);
    if (!node) continue;
    total += s.size;
    const room = roomOf(node.callFrame.functionName, node.callFrame.url);
    rooms.set(room, (rooms.get(room) ?? 0) + s.size);
    const key = site(node.callFrame);
    sites.set(key, (sites.get(key) ?? 0) + s.size);
  }
  return { total, rooms, sites };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'chat' },
      count: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '16' },
      noop: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const scenario = findScenario(values.scenario);
  const outDir = path.join(ROOT, '.bench-out/allocations');
  mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `${scenario.name}${values.noop ? '.noop' : ''}.heapprofile`);
  rmSync(out, { force: true });
  process.env.TW_ALLOC_OUT = out;
  const preload = ['--import', path.join(ROOT, 'bench/alloc-sampler.mjs')];
  const sut = await startServerUnderTest(values.noop, scenario.setup, preload);
  try {
    const { server } = sut;
    const report = path.join(outDir, 'report.json');
    const args = ['--target', server.address, '--scenario', scenario.name, '--concurrency', values.concurrency, '--warmup', '3000', '--count', values.count];
    // Warm-up and measured run on the same connections (a new connection makes V8 compile again).
    await runDriver([...args, '--out', report], async () => {
      server.child.kill('SIGUSR2');
      await sleep(200);
    });
    server.child.kill('SIGUSR2');
    for (let i = 0; i < 100 && !existsSync(out); i++) await sleep(50);
    const r = JSON.parse(readFileSync(report, 'utf8')) as BenchReport;
    const { total, rooms, sites } = attribute(JSON.parse(readFileSync(out, 'utf8')) as HeapProfile);
    const n = Math.max(1, r.count);
    const who = values.noop ? 'no-op server' : 'tokenwarden';
    process.stdout.write(`${who}, ${scenario.name}: ${r.count} exchanges; ${(total / n / 1024).toFixed(1)} KiB allocated per exchange\n`);
    for (const [room, bytes] of [...rooms].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${room.padEnd(46)} ${(bytes / n).toFixed(0).padStart(7)} B\n`);
    process.stdout.write('largest sites:\n');
    for (const [where, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`  ${(bytes / n).toFixed(0).padStart(7)} B  ${where}\n`);
    process.stdout.write(`profile: ${path.relative(ROOT, out)}\n`);
  } finally {
    await sut.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`allocations: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
