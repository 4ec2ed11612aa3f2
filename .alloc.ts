import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findScenario } from './bench/driver/scenarios.js';
import { runDriver, startTokenwarden, startServer } from './bench/processes.js';
const scenario = findScenario(process.argv[2] ?? 'chat');
const noop = process.argv[3] === 'noop';
const dir = mkdtempSync(path.join(tmpdir(), 'tw-alloc-'));
const out = `/tmp/alloc/${scenario.name}${noop ? '-noop' : ''}.heapprofile`;
process.env.ALLOC_OUT = out;
const server = noop ? await startServer('noop', ['--import', '/tmp/alloc/preload.mjs', '--import', 'tsx', 'bench/noop-server.ts', '0']) : (await startTokenwarden(scenario.setup, dir, ['--import', '/tmp/alloc/preload.mjs'])).server;
const common = ['--target', server.address, '--scenario', scenario.name, '--concurrency', '16', '--warmup', '0', '--out', '/tmp/alloc/r.json'];
await runDriver([...common, '--count', '3000']);
server.child.kill('SIGUSR2');
await new Promise((r) => setTimeout(r, 300));
await runDriver([...common, '--count', '10000']);
server.child.kill('SIGTERM');
await server.exited;
const r = JSON.parse(readFileSync('/tmp/alloc/r.json', 'utf8'));
const prof = JSON.parse(readFileSync(out, 'utf8'));
const byId = new Map<number, any>();
const parent = new Map<number, any>();
const walk = (n: any, p: any) => { byId.set(n.id, n); parent.set(n.id, p); for (const c of n.children) walk(c, n); };
walk(prof.head, null);
const self = new Map<string, number>();
const room = new Map<string, number>();
let total = 0;
const name = (n: any) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/.*node_modules\//, '').replace(/.*\/(src|dist)\//, '')}:${n.callFrame.lineNumber}`;
for (const s of prof.samples) {
  const n = byId.get(s.nodeId);
  total += s.size;
  // attribute to the first tokenwarden frame up the stack, else the leaf
  let m = n, own = null;
  while (m) { if (/\/(src|dist)\//.test(m.callFrame.url) && !m.callFrame.url.includes('node_modules')) { own = m; break; } m = parent.get(m.id); }
  const k = own ? `tw: ${name(own)}` : name(n);
  self.set(k, (self.get(k) ?? 0) + s.size);
}
console.log(`${scenario.name}${noop ? ' (no-op)' : ''}: ${r.count} exchanges; allocated ${(total / r.count / 1024).toFixed(2)} KiB per exchange`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((v / r.count).toFixed(0).padStart(7), 'B', k);
rmSync(dir, { recursive: true, force: true });
