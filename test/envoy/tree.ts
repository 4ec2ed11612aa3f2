/** Small helpers for rules that run on the plain JS form of a YAML document. */
import { childPath } from './issues.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Calls `fn` for every object in the tree (depth first), with its YAML path. */
export function visitObjects(node: Json | undefined, path: string, fn: (obj: JsonObject, path: string) => void): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => visitObjects(v, childPath(path, i), fn));
  } else if (isObject(node)) {
    fn(node, path);
    for (const [k, v] of Object.entries(node)) visitObjects(v, childPath(path, k), fn);
  }
}

/** Message name of an Any-shaped object (`@type` after the last `/`), if any. */
export function anyType(v: Json | undefined): string | undefined {
  const url = isObject(v) ? v['@type'] : undefined;
  return typeof url === 'string' ? url.slice(url.lastIndexOf('/') + 1) : undefined;
}

export function get(obj: Json | undefined, ...keys: string[]): Json | undefined {
  let cur: Json | undefined = obj;
  for (const k of keys) cur = isObject(cur) ? cur[k] : undefined;
  return cur;
}

/** Enum value as its canonical (upper-case) name; numbers are mapped through `names`. */
export function enumName(v: Json | undefined, names: readonly string[]): string | undefined {
  if (typeof v === 'number') return names[v];
  if (typeof v === 'string') return v.toUpperCase();
  return undefined;
}
