/**
 * Declarative schema for the YAML configuration. Each schema turns an untyped value (from YAML) into
 * a typed value or records issues; nothing here throws or does I/O. Objects come out partial (only the
 * keys the user wrote, plus per-field defaults inside list items); the loader merges them over
 * `defaultConfig()`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { PathSegment } from './errors.js';

export interface Issue {
  path: PathSegment[];
  message: string;
  /** Point at the key rather than its value (unknown and duplicate keys). */
  atKey?: boolean;
}

export interface Schema<T> {
  parse(value: unknown, path: PathSegment[], issues: Issue[]): T | undefined;
  /** What the value is, for the configuration reference (Markdown), e.g. "integer 1-100". */
  readonly label?: string;
}

export interface Defaulted<T> extends Schema<T> {
  readonly defaultValue: T;
}

export type Out<S> = S extends Schema<infer T> ? T : never;
export type Fields = Record<string, Schema<unknown>>;
type DefaultedKeys<F extends Fields> = { [K in keyof F]: F[K] extends Defaulted<unknown> ? K : never }[keyof F];
type ObjOut<F extends Fields, R extends keyof F> = {
  [K in R | DefaultedKeys<F>]: Out<F[K]>;
} & { [K in Exclude<keyof F, R | DefaultedKeys<F>>]?: Out<F[K]> };

export interface ObjSchema<F extends Fields, R extends keyof F> extends Schema<ObjOut<F, R>> {
  readonly fields: F;
}

export type Mapping = Record<string, unknown>;

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const MAX_SHOWN_CHARS = 40;

/** How a bad value is shown in a message; strings are clipped and escaped. */
function describe(value: unknown, secret = false): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'object':
      return 'a mapping';
    case 'string':
      if (secret) return 'a string';
      return JSON.stringify(value.length > MAX_SHOWN_CHARS ? `${value.slice(0, MAX_SHOWN_CHARS)}...` : value);
    case 'number':
    case 'boolean':
      return String(value);
    default:
      return typeof value;
  }
}

function expectedMessage(what: string, value: unknown, secret = false): string {
  return `expected ${what}, got ${describe(value, secret)}`;
}

function expected(path: PathSegment[], what: string, value: unknown, secret = false): Issue {
  return { path, message: expectedMessage(what, value, secret) };
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The closest candidate when it is plausibly a typo (also catches camelCase and kebab-case). */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
  const wanted = squash(input);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(wanted, squash(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(wanted.length / 3)) ? best : undefined;
}

function choiceMessage(value: string, choices: readonly string[]): string {
  const hint = suggest(value, choices);
  const list = choices.join(', ');
  return hint === undefined ? `expected one of ${list}` : `expected one of ${list} (did you mean "${hint}"?)`;
}

// ---------------------------------------------------------------------------------------------
// Scalars

export function bool(): Schema<boolean> {
  return {
    label: 'boolean',
    parse(value, path, issues) {
      if (typeof value === 'boolean') return value;
      issues.push(expected(path, 'true or false', value));
      return undefined;
    },
  };
}

function inRange(value: number, min: number, max: number, unit: string, path: PathSegment[], issues: Issue[]): boolean {
  if (value >= min && value <= max) return true;
  const suffix = unit === '' ? '' : ` ${unit}`;
  issues.push({ path, message: `must be between ${min} and ${max}${suffix}, got ${value}${suffix}` });
  return false;
}

export function int(min: number, max: number): Schema<number> {
  return {
    label: `integer ${min.toLocaleString('en-US')}-${max.toLocaleString('en-US')}`,
    parse(value, path, issues) {
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        issues.push(expected(path, 'a whole number', value));
        return undefined;
      }
      return inRange(value, min, max, '', path, issues) ? value : undefined;
    },
  };
}

export function nonNegativeNumber(): Schema<number> {
  return {
    label: 'number >= 0',
    parse(value, path, issues) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        issues.push(expected(path, 'a number >= 0', value));
        return undefined;
      }
      return value;
    },
  };
}

export function oneOf<const V extends string>(choices: readonly V[]): Schema<V> {
  return {
    label: choices.length === 2 ? `\`${choices[0]}\` or \`${choices[1]}\`` : choices.map((c) => `\`${c}\``).join(', '),
    parse(value, path, issues) {
      if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as V;
      const message =
        typeof value === 'string' ? `${choiceMessage(value, choices)}, got ${describe(value)}` : expectedMessage(`one of ${choices.join(', ')}`, value);
      issues.push({ path, message });
      return undefined;
    },
  };
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export interface TextOptions {
  minLength?: number;
  maxLength: number;
  /** Checked after lower-casing (when `lowercase`). */
  pattern?: RegExp;
  /** What the pattern means, for the message. */
  patternHint?: string;
  /** Header names and host globs are case-insensitive: store them lower-cased. */
  lowercase?: boolean;
  /** Never echo the value in messages. */
  secret?: boolean;
}

export function text(options: TextOptions): Schema<string> {
  const minLength = options.minLength ?? 0;
  return {
    label: options.minLength === undefined ? 'string' : `string (${options.minLength}-${options.maxLength} chars)`,
    parse(value, path, issues) {
      if (typeof value !== 'string') {
        issues.push(expected(path, 'a string', value, options.secret));
        return undefined;
      }
      const shown = describe(value, options.secret);
      if (value.length < minLength) {
        issues.push({ path, message: minLength === 1 ? 'must not be empty' : `must be at least ${minLength} characters` });
        return undefined;
      }
      if (value.length > options.maxLength) {
        issues.push({ path, message: `must be at most ${options.maxLength} characters, got ${value.length}` });
        return undefined;
      }
      if (CONTROL_CHARS.test(value)) {
        issues.push({ path, message: `must not contain control characters, got ${shown}` });
        return undefined;
      }
      const normalized = options.lowercase === true ? value.toLowerCase() : value;
      if (options.pattern !== undefined && !options.pattern.test(normalized)) {
        issues.push({ path, message: `expected ${options.patternHint ?? `a value matching ${options.pattern}`}, got ${shown}` });
        return undefined;
      }
      return normalized;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Sizes and durations

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const QUANTITY = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/;

/**
 * `64MiB` -> 67108864. Units (case-insensitive): B, KB/MB/GB (powers of 1000), KiB/MiB/GiB (powers of
 * 1024); no unit means bytes. Returns an error message for anything else or a fractional byte count.
 */
export function parseSize(input: string): number | string {
  const match = QUANTITY.exec(input.trim());
  const unit = (match?.[2] ?? '').toLowerCase() || 'b';
  const multiplier = SIZE_UNITS[unit];
  if (match === null || multiplier === undefined) {
    return `expected a byte count or a size such as "512KiB", "64MiB" or "1GB", got ${describe(input)}`;
  }
  const bytes = Number(match[1]) * multiplier;
  return Number.isInteger(bytes) ? bytes : `${describe(input)} is not a whole number of bytes`;
}

/** `10s` -> 10000. Units (case-insensitive): ms, s, m, h; a unit is required in strings. */
export function parseDuration(input: string): number | string {
  const match = QUANTITY.exec(input.trim());
  const multiplier = DURATION_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (match === null || multiplier === undefined) {
    return `expected milliseconds or a duration such as "500ms", "10s" or "2m", got ${describe(input)}`;
  }
  const ms = Number(match[1]) * multiplier;
  return Number.isInteger(ms) ? ms : `${describe(input)} is not a whole number of milliseconds`;
}

function quantity(
  parseString: (s: string) => number | string,
  what: string,
  unit: string,
  min: number,
  max: number,
  label: string,
): Schema<number> {
  return {
    label: label,
    parse(value, path, issues) {
      let amount: number;
      if (typeof value === 'number') {
        if (!Number.isInteger(value)) {
          issues.push({ path, message: `expected a whole number of ${what}, got ${value}` });
          return undefined;
        }
        amount = value;
      } else if (typeof value === 'string') {
        const parsed = parseString(value);
        if (typeof parsed === 'string') {
          issues.push({ path, message: parsed });
          return undefined;
        }
        amount = parsed;
      } else {
        issues.push(expected(path, `${what} (a number or a string with a unit)`, value));
        return undefined;
      }
      return inRange(amount, min, max, unit, path, issues) ? amount : undefined;
    },
  };
}

/** Buffers beyond 2 GiB are never sensible in a sidecar, and larger values overflow some Node APIs. */
export const MAX_SIZE_BYTES = 2 * 1024 ** 3;
/** setTimeout fires immediately for delays above 2^31-1 ms. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export function size(min = 1, max = MAX_SIZE_BYTES): Schema<number> {
  return quantity(parseSize, 'bytes', 'bytes', min, max, 'size');
}

export function duration(min = 0, max = MAX_DURATION_MS): Schema<number> {
  return quantity(parseDuration, 'milliseconds', 'ms', min, max, 'duration');
}

// ---------------------------------------------------------------------------------------------
// Addresses and globs

export type ParsedAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Linux `sun_path` holds 108 bytes including the terminating NUL. */
const MAX_UNIX_PATH_BYTES = 107;
const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

function parseHost(host: string): string | undefined {
  if (host === '') return 'the host is missing (use 0.0.0.0 to listen on every interface)';
  if (/^[\d.]+$/.test(host)) return isIPv4(host) ? undefined : `${describe(host)} is not a valid IPv4 address`;
  if (host.length > 253 || !host.split('.').every((label) => HOST_LABEL.test(label))) {
    return `${describe(host)} is not a valid host name or IP address`;
  }
  return undefined;
}

/**
 * Parse `host:port`, `[ipv6]:port` or (when `allowUnix`) `unix:/absolute/path` / `unix:///absolute/path`.
 * Ports are 1-65535. Returns an error message for anything else.
 */
export function parseAddress(input: string, allowUnix: boolean): ParsedAddress | string {
  if (input.startsWith('unix:')) {
    if (!allowUnix) return 'Unix sockets are not supported here; expected host:port';
    const path = input.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path.startsWith('/')) return `expected an absolute socket path such as unix:/run/tokenwarden.sock, got ${describe(input)}`;
    if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) return `the socket path is longer than the ${MAX_UNIX_PATH_BYTES}-byte Unix limit`;
    return { kind: 'unix', path };
  }
  const forms = allowUnix ? 'host:port, [ipv6]:port or unix:/path' : 'host:port or [ipv6]:port';
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(input);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (!isIPv6(host)) return `${describe(host)} is not a valid IPv6 address`;
  } else {
    const colon = input.lastIndexOf(':');
    if (colon < 0) return `expected ${forms}, got ${describe(input)} (the port is missing)`;
    host = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (host.includes(':')) return `IPv6 addresses need brackets, e.g. [::1]:50051; got ${describe(input)}`;
    const hostError = parseHost(host);
    if (hostError !== undefined) return hostError;
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return `the port must be a number from 1 to 65535, got ${describe(portText)}`;
  return { kind: 'tcp', host, port };
}

export function address(options: { allowUnix: boolean; allowEmpty: boolean }): Schema<string> {
  return {
    label: options.allowEmpty ? 'address (TCP only) or `""`' : options.allowUnix ? 'address (TCP or Unix)' : 'address',
    parse(value, path, issues) {
      if (typeof value !== 'string') {
        const hint = options.allowEmpty && value === null ? ' (use "" to disable)' : '';
        issues.push({ path, message: `${expectedMessage('an address string', value)}${hint}` });
        return undefined;
      }
      if (value === '' && options.allowEmpty) return value;
      const parsed = parseAddress(value, options.allowUnix);
      if (typeof parsed === 'string') {
        issues.push({ path, message: parsed });
        return undefined;
      }
      return value;
    },
  };
}

export const MAX_GLOB_CHARS = 256;

// ---------------------------------------------------------------------------------------------
// Collections

export function withDefault<T>(schema: Schema<T>, defaultValue: T): Defaulted<T> {
  return { parse: schema.parse, label: schema.label, defaultValue };
}

export interface ObjOptions<F extends Fields, R extends keyof F> {
  required?: readonly R[];
  /** `section:` with nothing under it means "not given" (defaults apply) rather than an error. */
  nullIsAbsent?: boolean;
  /** Cross-field rules; only run when every field parsed cleanly. */
  check?: (value: ObjOut<F, R>, path: PathSegment[], issues: Issue[]) => void;
}

export function obj<F extends Fields, R extends keyof F & string = never>(
  fields: F,
  options: ObjOptions<F, R> = {},
): ObjSchema<F, R> {
  const names = Object.keys(fields);
  return {
    fields,
    label: 'mapping',
    parse(value, path, issues) {
      if ((value === null || value === undefined) && options.nullIsAbsent === true) return undefined;
      if (!isMapping(value)) {
        issues.push(expected(path, 'a mapping', value));
        return undefined;
      }
      const before = issues.length;
      const out: Mapping = {};
      for (const key of Object.keys(value)) {
        const field = Object.hasOwn(fields, key) ? fields[key] : undefined;
        if (field === undefined) {
          const hint = suggest(key, names);
          const message = hint === undefined ? `unknown key; allowed keys: ${names.join(', ')}` : `unknown key; did you mean "${hint}"?`;
          issues.push({ path: [...path, key], message, atKey: true });
          continue;
        }
        const parsed = field.parse(value[key], [...path, key], issues);
        if (parsed !== undefined) out[key] = parsed;
      }
      for (const key of options.required ?? []) {
        if (!Object.hasOwn(value, key)) issues.push({ path: [...path, key], message: 'missing required key' });
      }
      for (const key of names) {
        const field = fields[key];
        if (!Object.hasOwn(value, key) && field !== undefined && 'defaultValue' in field) out[key] = field.defaultValue;
      }
      const result = out as ObjOut<F, R>;
      if (issues.length === before) options.check?.(result, path, issues);
      return result;
    },
  };
}

/** A mapping whose `tag` key (e.g. `type`) selects which object schema applies. */
export function tagged<V extends Record<string, Schema<unknown>>>(tag: string, variants: V): Schema<Out<V[keyof V]>> {
  const names = Object.keys(variants);
  return {
    parse(value, path, issues) {
      if (!isMapping(value)) {
        issues.push(expected(path, 'a mapping', value));
        return undefined;
      }
      const kind = value[tag];
      const variant = typeof kind === 'string' && Object.hasOwn(variants, kind) ? variants[kind] : undefined;
      if (variant === undefined) {
        const message = !Object.hasOwn(value, tag)
          ? `missing required key; expected one of ${names.join(', ')}`
          : typeof kind === 'string'
            ? `${choiceMessage(kind, names)}, got ${describe(kind)}`
            : expectedMessage(`one of ${names.join(', ')}`, kind);
        issues.push({ path: [...path, tag], message });
        return undefined;
      }
      return variant.parse(value, path, issues) as Out<V[keyof V]> | undefined;
    },
  };
}

export interface MapSchema<V> extends Schema<Record<string, V>> {
  readonly values: Schema<V>;
  /** How the reference names a key, e.g. `<owner id>`. */
  readonly placeholder: string;
}

/** A mapping whose keys are validated by `keys` (issues at the key) and whose values by `values`. */
export function mapOf<V>(keys: Schema<string>, values: Schema<V>, options: { what: string; placeholder: string }): MapSchema<V> {
  return {
    values,
    placeholder: options.placeholder,
    label: 'mapping',
    parse(value, path, issues) {
      if (!isMapping(value)) {
        issues.push({ path, message: `expected a mapping of ${options.what}` });
        return undefined;
      }
      const out: [string, V][] = [];
      for (const [name, raw] of Object.entries(value)) {
        if (keys.parse(name, [...path, name], issues) === undefined) continue;
        const parsed = values.parse(raw, [...path, name], issues);
        if (parsed !== undefined) out.push([name, parsed]);
      }
      // fromEntries defines own properties, so a `__proto__` key cannot touch the prototype.
      return Object.fromEntries(out);
    },
  };
}

export interface ListSchema<T> extends Schema<T[]> {
  readonly item: Schema<T>;
}

export function list<T>(item: Schema<T>, options: { minItems?: number; maxItems: number }): ListSchema<T> {
  return {
    item,
    label: `list (at most ${options.maxItems})`,
    parse(value, path, issues) {
      if (!Array.isArray(value)) {
        issues.push(expected(path, 'a list', value));
        return undefined;
      }
      if (value.length < (options.minItems ?? 0)) {
        issues.push({ path, message: `must have at least ${options.minItems ?? 0} item(s)` });
        return undefined;
      }
      if (value.length > options.maxItems) {
        issues.push({ path, message: `must have at most ${options.maxItems} items, got ${value.length}` });
        return undefined;
      }
      const out: T[] = [];
      value.forEach((entry, index) => {
        const parsed = item.parse(entry, [...path, index], issues);
        if (parsed !== undefined) out.push(parsed);
      });
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Declarations: one per configuration key, with its doc string and default. The TypeScript config
// types (`Config<typeof schema>`), `defaultConfig()` and the README's configuration reference
// (scripts/config-reference.ts) all derive from them.

export interface KeyDoc<T> {
  /** One line for the configuration reference (Markdown). */
  doc: string;
  /** The value used when the key is absent; also the type marker making the key required in `Config`. */
  default?: T;
  /** The type column, when the schema's own label is not precise enough (Markdown). */
  type?: string;
  /** The default column, when the value alone does not say it well (Markdown), e.g. "absent (plaintext)". */
  defaultText?: string;
  /**
   * `<key>_env` keys: read by the loader from the environment into `<key>`, so absent from the
   * resolved configuration type.
   */
  resolvedInto?: string;
}

export interface Declared<T, D extends boolean = boolean> extends Schema<T> {
  readonly key: KeyDoc<T>;
  /** Type-level only: whether the declaration has a default. */
  readonly hasDefault?: D;
}

/** Declare a key with its default: the resolved configuration always has it. */
export function key<S extends Schema<unknown>>(schema: S, doc: KeyDoc<Out<S>> & { default: Out<S> }): S & Declared<Out<S>, true>;
/** Declare a key whose schema fills in its default (`withDefault`, inside list items and optional mappings). */
export function key<S extends Defaulted<unknown>>(schema: S, doc: KeyDoc<Out<S>> & { default?: undefined }): S & Declared<Out<S>, true>;
/** Declare a key without a default: optional in the resolved configuration. */
export function key<S extends Schema<unknown>>(schema: S, doc: KeyDoc<Out<S>> & { default?: undefined }): S & Declared<Out<S>, false>;
export function key<S extends Schema<unknown>>(schema: S, doc: KeyDoc<Out<S>>): S & Declared<Out<S>> {
  const declared: KeyDoc<Out<S>> = 'defaultValue' in schema && doc.default === undefined ? { ...doc, default: schema.defaultValue as Out<S> } : doc;
  return { ...schema, parse: schema.parse.bind(schema), key: declared } as S & Declared<Out<S>>;
}

/** A section: a mapping of declared keys that always exists in the resolved configuration. */
export interface Section<F extends Fields> extends ObjSchema<F, never> {
  readonly section: true;
}

export function section<F extends Fields>(fields: F, check?: ObjOptions<F, never>['check']): Section<F> {
  const schema = obj(fields, check === undefined ? { nullIsAbsent: true } : { nullIsAbsent: true, check });
  return { ...schema, parse: schema.parse.bind(schema), section: true };
}

type EnvKeys<F extends Fields> = { [K in keyof F]: F[K] extends { key: { resolvedInto: string } } ? K : never }[keyof F];
type RequiredKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends Declared<unknown, true> ? K : F[K] extends Section<Fields> ? K : never;
}[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The resolved (defaults applied, `<key>_env` read) configuration type of a declared schema. */
export type Config<S> =
  S extends Section<infer F>
    ? Simplify<
        { [K in Exclude<RequiredKeys<F>, EnvKeys<F>>]: Config<F[K]> } & {
          [K in Exclude<keyof F, RequiredKeys<F> | EnvKeys<F>>]?: Config<F[K]>;
        }
      >
    : Out<S>;

/** The defaults of a declared schema: every section, and every key declared with a default. */
export function defaultsOf(schema: Schema<unknown>): unknown {
  if ('section' in schema) {
    const out: Mapping = {};
    for (const [name, field] of Object.entries((schema as Section<Fields>).fields)) {
      const value = defaultsOf(field);
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
  if ('key' in schema) return structuredClone((schema as Declared<unknown>).key.default);
  return undefined;
}
