import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const byId = new Map(p.nodes.map((n: any) => [n.id, n]));
const self = new Map<string, number>();
const parentOf = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
for (let i = 0; i < p.samples.length; i++) {
  const n: any = byId.get(p.samples[i]);
  let key = `${n.callFrame.functionName} ${n.callFrame.url.replace(/.*node_modules\//, '').replace(/.*\/(src|dist)\//, '')}:${n.callFrame.lineNumber}`;
  if (n.callFrame.url === '' && process.argv[3]) { const par: any = byId.get(parentOf.get(n.id)!); key += ` <- ${par?.callFrame.functionName} ${par?.callFrame.url.replace(/.*\//,'')}`; }
  self.set(key, (self.get(key) ?? 0) + p.timeDeltas[i]);
}
const tot = [...self.values()].reduce((a, b) => a + b, 0);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[4] ?? 40))) console.log((100 * v / tot).toFixed(2).padStart(6), k);
