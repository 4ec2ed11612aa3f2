/**
 * Imports between rooms (src/<room>/ and the files at src/'s top) go one way: the graph of runtime
 * imports between rooms has no cycle. Type-only imports are left out: they vanish at run time, and
 * the domain types (config/types.ts, governance/types.ts) are read by every room.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

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

  it('finds a cycle when there is one (the check itself)', () => {
    const g = new Map([
      ['a', new Map([['b', 'a→b']])],
      ['b', new Map([['c', 'b→c']])],
      ['c', new Map([['a', 'c→a']])],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c', 'a']]);
  });
});
