/**
 * Imports between rooms (src/<room>/ and the files at src/'s top) go one way: every room sits in one
 * layer, a room imports at run time only from its own layer or the layers below, and the graph of
 * runtime imports between rooms has no cycle. Type-only imports are left out: they vanish at run
 * time, and the domain types (config/types.ts, governance/types.ts) are read by every room. The
 * README's code map prints the layers (checked here, so it cannot go stale).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const README = fileURLToPath(new URL('../README.md', import.meta.url));

/** The layers, bottom first: a room (folder, or file at src/'s top) may import its own layer and those below. */
const LAYERS: readonly { name: string; rooms: readonly string[] }[] = [
  { name: 'foundations', rooms: ['domain', 'glob', 'strings', 'time', 'deadline', 'log', 'net', 'worker-env', 'store'] },
  { name: 'knowledge and records', rooms: ['traffic', 'metering', 'catalog', 'governance', 'inventory', 'registry', 'identity'] },
  { name: 'assembled state', rooms: ['config', 'ledger', 'live', 'stores', 'telemetry'] },
  { name: 'the two faces', rooms: ['extproc', 'admin'] },
  { name: 'composition', rooms: ['observers', 'cluster', 'demo', 'server', 'cli', 'index'] },
];

const layerOf = new Map(LAYERS.flatMap((layer, i) => layer.rooms.map((room) => [room, i] as const)));

/** How the README's code map prints the layers. */
function layerLines(): string[] {
  return LAYERS.map((layer, i) => {
    const rooms = layer.rooms.map((room) => (existsSync(path.join(SRC, room)) ? `${room}/` : `${room}.ts`));
    return `${i + 1}. ${layer.name}: ${rooms.join(' ')}`;
  });
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

const roomOf = (file: string): string => {
  const rel = path.relative(SRC, file);
  return rel.includes(path.sep) ? rel.split(path.sep)[0]! : rel.replace(/\.[jt]s$/, '');
};

/** room → rooms it imports at run time, with one file import that shows it. */
function roomGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  const IMPORT = /^(?:import|export)\s+(type\s+)?(?:[^;]*?\s+from\s+)?'(\.[^']+)'/gms;
  for (const file of files(SRC)) {
    const from = roomOf(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (m[1]) continue;
      const to = roomOf(path.resolve(path.dirname(file), m[2]!));
      if (to === from) continue;
      const out = graph.get(from) ?? new Map<string, string>();
      if (!out.has(to)) out.set(to, `${path.relative(SRC, file)} → ${m[2]}`);
      graph.set(from, out);
    }
  }
  return graph;
}

/** Every cycle's rooms, found by depth-first search (each reported once, from its first room seen). */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (room: string): void => {
    state.set(room, 'open');
    stack.push(room);
    for (const next of graph.get(room)?.keys() ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(room, 'done');
  };
  for (const room of graph.keys()) if (!state.has(room)) visit(room);
  return found;
}

describe('layering', () => {
  it('has no cycle of runtime imports between rooms', () => {
    const graph = roomGraph();
    const explained = cycles(graph).map((c) => c.slice(1).map((to, i) => graph.get(c[i]!)!.get(to)!).join('; '));
    expect(explained).toEqual([]);
  });

  it('puts every room in a layer, and imports only from its own layer or below', () => {
    const graph = roomGraph();
    const rooms = new Set([...graph.keys(), ...files(SRC).map(roomOf)]);
    expect([...rooms].filter((room) => !layerOf.has(room)), 'rooms missing from LAYERS').toEqual([]);
    expect([...layerOf.keys()].filter((room) => !rooms.has(room)), 'LAYERS names rooms that do not exist').toEqual([]);
    const upward = [...graph].flatMap(([from, out]) =>
      [...out].filter(([to]) => layerOf.get(to)! > layerOf.get(from)!).map(([to, shown]) => `${from} (layer ${layerOf.get(from)! + 1}) imports ${to} (layer ${layerOf.get(to)! + 1}): ${shown}`),
    );
    expect(upward).toEqual([]);
  });

  it('is printed in the README as it is', () => {
    const readme = readFileSync(README, 'utf8');
    const missing = layerLines().filter((line) => !readme.includes(`\n${line}\n`));
    expect(missing, `README.md's layer list differs; expected these lines:\n${layerLines().join('\n')}`).toEqual([]);
  });

  it('finds a cycle when there is one (the check itself)', () => {
    const g = new Map([
      ['a', new Map([['b', 'a→b']])],
      ['b', new Map([['c', 'b→c']])],
      ['c', new Map([['a', 'c→a']])],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c', 'a']]);
  });
});
