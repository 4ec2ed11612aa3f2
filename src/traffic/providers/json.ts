/**
 * Defensive accessors for parsed JSON of unknown shape. Every provider handler reads bodies through
 * these so that wrong types, nulls and arrays-instead-of-objects yield "absent", never a throw.
 */

import { detached } from '../../strings.js';

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

const EMPTY: readonly unknown[] = Object.freeze([]);

export function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : EMPTY;
}

/** `obj[key]` when `obj` is a plain object. */
export function field(obj: unknown, key: string): unknown {
  const o = asObject(obj);
  return o === undefined ? undefined : o[key];
}

/** A nested field: path(obj, 'a', 'b') is obj.a.b when every step is an object. */
export function path(obj: unknown, ...keys: string[]): unknown {
  let cur: unknown = obj;
  for (const key of keys) {
    const o = asObject(cur);
    if (o === undefined) return undefined;
    cur = o[key];
  }
  return cur;
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A non-empty string, else null (used for model names: "" means "not reported"). */
export function nonEmpty(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

/**
 * Longest model name kept (characters). Real names are under 100; a body can carry megabytes in
 * `model`, and every budget, price and policy glob would then scan all of it.
 */
export const MAX_MODEL_NAME_CHARS = 256;

/**
 * A model name from a body: a non-empty string, cut to MAX_MODEL_NAME_CHARS (a copy of its own: the
 * name outlives the request in records and metric labels, the rest of the value must not).
 */
export function modelName(value: unknown): string | null {
  const s = nonEmpty(value);
  return s === null || s.length <= MAX_MODEL_NAME_CHARS ? s : detached(s.slice(0, MAX_MODEL_NAME_CHARS));
}

/**
 * A token count as reported: a finite number >= 0, rounded to an integer. Anything else
 * (strings, negatives, NaN, huge values) counts as "not reported".
 */
export function count(value: unknown): number | null {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return null;
  if (value > Number.MAX_SAFE_INTEGER) return null;
  return Math.round(value);
}

/** The sum of the reported terms; null only when no term is reported (a missing term counts 0). */
export function sumReported(...terms: (number | null)[]): number | null {
  let total: number | null = null;
  for (const t of terms) if (t !== null) total = (total ?? 0) + t;
  return total;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
