/**
 * The subset of protoc-gen-validate rules (as protobufjs flattens them into field options, e.g.
 * `(validate.rules).uint32.lte`) that Envoy enforces at config load and that a YAML walk can check
 * on single values: string lengths, numeric and duration bounds, bool const, list/map sizes.
 */

export type Rules = ReadonlyMap<string, unknown>;

const PREFIX = '(validate.rules).';

/** PGV rules of a field, keys without the `(validate.rules).` prefix. */
export function fieldRules(options: Record<string, unknown> | undefined): Rules {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(options ?? {})) {
    if (k.startsWith(PREFIX)) out.set(k.slice(PREFIX.length), v);
  }
  return out;
}

/** Rules below a prefix (`repeated.items.`, `map.values.`), with the prefix removed. */
export function subRules(rules: Rules, prefix: string): Rules {
  const out = new Map<string, unknown>();
  for (const [k, v] of rules) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

export function isRequired(rules: Rules): boolean {
  return rules.get('message.required') === true || rules.get('duration.required') === true || rules.get('any.required') === true;
}

const NUMERIC_KIND = /^(?:u?int(?:32|64)|s?fixed(?:32|64)|sint(?:32|64)|double|float)\.(gt|gte|lt|lte|const)$/;

function boundViolation(value: number, op: string, bound: number): string | undefined {
  switch (op) {
    case 'gt':
      return value > bound ? undefined : `must be > ${bound}`;
    case 'gte':
      return value >= bound ? undefined : `must be >= ${bound}`;
    case 'lt':
      return value < bound ? undefined : `must be < ${bound}`;
    case 'lte':
      return value <= bound ? undefined : `must be <= ${bound}`;
    default:
      return value === bound ? undefined : `must be ${bound}`;
  }
}

export function checkNumber(value: number, rules: Rules): string[] {
  const out: string[] = [];
  for (const [k, v] of rules) {
    const m = NUMERIC_KIND.exec(k);
    if (!m || typeof v !== 'number') continue;
    const why = boundViolation(value, m[1] ?? '', v);
    if (why) out.push(`${value} ${why}`);
  }
  return out;
}

export function checkString(value: string, rules: Rules): string[] {
  const out: string[] = [];
  const chars = [...value].length;
  const minLen = rules.get('string.min_len');
  const maxLen = rules.get('string.max_len');
  const maxBytes = rules.get('string.max_bytes');
  if (typeof minLen === 'number' && chars < minLen) out.push(`must have at least ${minLen} character(s)`);
  if (typeof maxLen === 'number' && chars > maxLen) out.push(`must have at most ${maxLen} characters`);
  if (typeof maxBytes === 'number' && Buffer.byteLength(value) > maxBytes) out.push(`must be at most ${maxBytes} bytes`);
  return out;
}

export function checkBool(value: boolean, rules: Rules): string[] {
  const c = rules.get('bool.const');
  return typeof c === 'boolean' && value !== c ? [`only ${c} is allowed`] : [];
}

/** Seconds of a duration bound such as `duration.lte.seconds` + `duration.lte.nanos`. */
function durationBound(rules: Rules, op: string): number | undefined {
  const keys = [`duration.${op}`, `duration.${op}.seconds`, `duration.${op}.nanos`];
  if (!keys.some((k) => rules.has(k))) return undefined;
  const s = rules.get(`duration.${op}.seconds`);
  const n = rules.get(`duration.${op}.nanos`);
  return (typeof s === 'number' ? s : 0) + (typeof n === 'number' ? n / 1e9 : 0);
}

export function checkDuration(seconds: number, rules: Rules): string[] {
  const out: string[] = [];
  for (const op of ['gt', 'gte', 'lt', 'lte']) {
    const bound = durationBound(rules, op);
    if (bound === undefined) continue;
    const why = boundViolation(seconds, op, bound);
    if (why) out.push(`${seconds}s ${why.replace(/(-?[\d.]+)$/, '$1s')}`);
  }
  return out;
}

export function checkCount(count: number, rules: Rules, kind: 'repeated' | 'map'): string[] {
  const out: string[] = [];
  const min = rules.get(kind === 'repeated' ? 'repeated.min_items' : 'map.min_pairs');
  const max = rules.get(kind === 'repeated' ? 'repeated.max_items' : 'map.max_pairs');
  if (typeof min === 'number' && count < min) out.push(`needs at least ${min} entr${min === 1 ? 'y' : 'ies'}`);
  if (typeof max === 'number' && count > max) out.push(`allows at most ${max} entries`);
  return out;
}
