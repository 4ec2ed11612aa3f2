/**
 * Walks a parsed YAML document against protobufjs message types the way Envoy's loader sees it
 * (YAML -> JSON -> proto3 JSON mapping): keys must be fields (proto name or JSON name), scalars
 * must fit their type, enums must name a value, repeated/map shapes and oneofs are checked,
 * `google.protobuf.Any` is followed through its `@type`, well-known types are shape-checked, and
 * the PGV rules in pgv.ts are applied. Elements newer than the snapshot are accepted only on lines
 * marked `# [Envoy >= 1.NN]`, and every marker must sit on a line that uses something newer.
 */
import protobuf from 'protobufjs';
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { childPath, markerMinor, type ConfigIssue } from './issues.js';
import { NEWER_ENUM_VALUES, NEWER_FIELDS, NEWER_TYPES, type NewerShape } from './newer-api.js';
import { SNAPSHOT_MINOR } from './official-protos.js';
import * as pgv from './pgv.js';

export interface WalkOutput {
  issues: ConfigIssue[];
  /** Line of every mapping key walked, by YAML path (for rules that run on the plain object). */
  lines: Map<string, number>;
}

type ScalarType = string;

/** What a value must be: a message, an enum or a scalar, with the field's PGV rules. */
interface ValueSpec {
  target: protobuf.Type | protobuf.Enum | ScalarType;
  rules: pgv.Rules;
}

const NO_RULES: pgv.Rules = new Map();

const WRAPPERS: Record<string, ScalarType> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

const DURATION = /^-?\d+(?:\.\d{1,9})?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const INTEGER = /^-?\d+$/;

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
};
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  if (typeof explicit === 'string') return explicit;
  return field.name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function snakeName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const fieldIndexCache = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldIndex(type: protobuf.Type): Map<string, protobuf.Field> {
  let idx = fieldIndexCache.get(type);
  if (!idx) {
    idx = new Map();
    for (const f of type.fieldsArray) {
      idx.set(f.name, f);
      idx.set(jsonName(f), f);
    }
    fieldIndexCache.set(type, idx);
  }
  return idx;
}

function bareName(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, '');
}

function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

class Walker {
  readonly issues: ConfigIssue[] = [];
  readonly lines = new Map<string, number>();
  /** Lines on which a marker admitted something newer than the snapshot. */
  readonly newerLines = new Set<number>();
  private readonly sourceLines: string[];

  constructor(
    private readonly root: protobuf.Root,
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    source: string,
  ) {
    this.sourceLines = source.split(/\r?\n/);
  }

  issue(path: string, line: number | undefined, message: string): void {
    this.issues.push(line === undefined ? { path, message } : { path, line, message });
  }

  lineOf(node: unknown): number | undefined {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? this.lineCounter.linePos(range[0]).line : undefined;
  }

  /** Marker minor version on a line that carries YAML content (pure comment lines are prose). */
  markerOn(line: number | undefined): number | undefined {
    if (line === undefined) return undefined;
    const text = this.sourceLines[line - 1] ?? '';
    const hash = text.indexOf('#');
    if (hash < 0 || text.slice(0, hash).trim() === '') return undefined;
    return markerMinor(text.slice(hash));
  }

  /** Every marker must admit something newer, or it is stale or wrong. */
  checkMarkers(): void {
    this.sourceLines.forEach((_text, i) => {
      const line = i + 1;
      const minor = this.markerOn(line);
      if (minor === undefined || this.newerLines.has(line)) return;
      this.issue(
        '',
        line,
        `marker [Envoy >= 1.${minor}] but nothing on this line is newer than the Envoy 1.${SNAPSHOT_MINOR} snapshot`,
      );
    });
  }

  /** Alias expansions left: bounds recursive aliases and alias bombs. */
  private aliasBudget = 10_000;

  private resolve(node: unknown): unknown {
    if (!isAlias(node)) return node;
    if (--this.aliasBudget < 0) {
      if (this.aliasBudget === -1) this.issue('', this.lineOf(node), 'too many alias expansions (recursive alias?)');
      return null;
    }
    return node.resolve(this.doc);
  }

  /**
   * Accepts a newer element on `line` if it carries a marker at least `since` (when known). A marker
   * admits one element: the outermost on its line (keys are walked before their values), so an
   * unknown key or value inside a marked field's flow mapping is still reported.
   */
  private admitNewer(path: string, line: number | undefined, what: string, since: number | undefined): boolean {
    const marker = this.markerOn(line);
    if (marker === undefined || line === undefined || this.newerLines.has(line)) return false;
    if (marker <= SNAPSHOT_MINOR) {
      this.issue(path, line, `${what} is not in the Envoy 1.${SNAPSHOT_MINOR} snapshot, but the marker says 1.${marker}`);
    } else if (since !== undefined && marker < since) {
      this.issue(path, line, `${what} first appeared in Envoy 1.${since}, but the marker says 1.${marker}`);
    }
    this.newerLines.add(line);
    return true;
  }

  message(raw: unknown, type: protobuf.Type, path: string, skipKeys: ReadonlySet<string> = new Set()): void {
    const node = this.resolve(raw);
    const name = bareName(type);
    if (name === 'google.protobuf.Any') return this.any(node, path);
    if (name.startsWith('google.protobuf.')) return this.wellKnown(node, name, path, NO_RULES);
    if (isNull(node)) return;
    if (!isMap(node)) return this.issue(path, this.lineOf(node), `expected a mapping (${name})`);

    const index = fieldIndex(type);
    const set = new Map<protobuf.Field, string>();
    let sawNewer = false;
    for (const pair of node.items) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      const line = this.lineOf(keyNode);
      if (typeof key !== 'string') {
        this.issue(path, line, 'mapping keys must be strings');
        continue;
      }
      if (skipKeys.has(key)) continue;
      const keyPath = childPath(path, key);
      if (line !== undefined) this.lines.set(keyPath, line);
      const field = index.get(key);
      if (!field) {
        if (this.unknownField(pair.value, type, key, keyPath, line)) sawNewer = true;
        continue;
      }
      const earlier = set.get(field);
      if (earlier !== undefined) {
        this.issue(keyPath, line, `field "${field.name}" is given twice (as "${earlier}" and "${key}")`);
        continue;
      }
      if (field.options?.['deprecated'] === true) {
        this.issue(keyPath, line, `"${field.name}" is deprecated in ${name}`);
      }
      if (isNull(this.resolve(pair.value))) continue;
      set.set(field, key);
      this.field(pair.value, field, keyPath);
    }
    // Required checks assume the snapshot's view of the message; a newer field may satisfy them.
    if (!sawNewer) this.requiredChecks(type, set, path, this.lineOf(node));
    for (const oneof of type.oneofsArray) {
      const present = oneof.fieldsArray.filter((f) => set.has(f));
      if (present.length > 1) {
        const names = present.map((f) => `"${f.name}"`).join(', ');
        this.issue(path, this.lineOf(node), `only one of ${names} may be set (oneof ${oneof.name})`);
      }
    }
  }

  private requiredChecks(type: protobuf.Type, set: Map<protobuf.Field, string>, path: string, line: number | undefined): void {
    for (const f of type.fieldsArray) {
      if (f.partOf || set.has(f)) continue;
      if (pgv.isRequired(pgv.fieldRules(f.options))) this.issue(path, line, `required field "${f.name}" is missing`);
    }
    for (const oneof of type.oneofsArray) {
      if (oneof.options?.['(validate.required)'] !== true || oneof.fieldsArray.some((f) => set.has(f))) continue;
      this.issue(path, line, `one of ${oneof.fieldsArray.map((f) => `"${f.name}"`).join(', ')} is required`);
    }
  }

  /** Returns true when the key was admitted as a marked newer field. */
  private unknownField(value: unknown, type: protobuf.Type, key: string, path: string, line: number | undefined): boolean {
    const name = bareName(type);
    const newer = NEWER_FIELDS.get(`${name}.${key}`) ?? NEWER_FIELDS.get(`${name}.${snakeName(key)}`);
    if (!this.admitNewer(path, line, `field "${key}"`, newer?.since)) {
      const hint = newer ? ` (added in Envoy 1.${newer.since}: mark the line "# [Envoy >= 1.${newer.since}]")` : '';
      this.issue(path, line, `unknown field "${key}" in ${name}${hint}`);
      return false;
    }
    if (newer) this.newerShape(value, newer.shape, path);
    return true;
  }

  private newerShape(value: unknown, shape: NewerShape, path: string): void {
    if (shape.kind === 'opaque') return;
    if (shape.kind === 'scalar') return this.value(value, { target: shape.type, rules: NO_RULES }, path);
    const type = this.root.lookupType(shape.type);
    if (!shape.repeated) return this.message(value, type, path);
    this.list(value, { target: type, rules: NO_RULES }, NO_RULES, path);
  }

  private field(value: unknown, field: protobuf.Field, path: string): void {
    const rules = pgv.fieldRules(field.options);
    const target = field.resolvedType ?? field.type;
    if (field instanceof protobuf.MapField) {
      return this.mapField(value, field.keyType, { target, rules: pgv.subRules(rules, 'map.values.') }, rules, path);
    }
    if (field.repeated) return this.list(value, { target, rules: pgv.subRules(rules, 'repeated.items.') }, rules, path);
    this.value(value, { target, rules }, path);
  }

  private list(raw: unknown, item: ValueSpec, rules: pgv.Rules, path: string): void {
    const node = this.resolve(raw);
    if (!isSeq(node)) return this.issue(path, this.lineOf(node), 'expected a list');
    for (const why of pgv.checkCount(node.items.length, rules, 'repeated')) this.issue(path, this.lineOf(node), why);
    node.items.forEach((it, i) => {
      const itemPath = childPath(path, i);
      const line = this.lineOf(it);
      if (line !== undefined) this.lines.set(itemPath, line);
      this.value(it, item, itemPath);
    });
  }

  private mapField(raw: unknown, keyType: string, value: ValueSpec, rules: pgv.Rules, path: string): void {
    const node = this.resolve(raw);
    if (!isMap(node)) return this.issue(path, this.lineOf(node), 'expected a mapping');
    for (const why of pgv.checkCount(node.items.length, rules, 'map')) this.issue(path, this.lineOf(node), why);
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const line = this.lineOf(pair.key);
      const keyText = typeof key === 'string' || typeof key === 'number' ? String(key) : undefined;
      if (keyText === undefined) {
        this.issue(path, line, 'map keys must be scalars');
        continue;
      }
      const keyPath = childPath(path, keyText);
      if (line !== undefined) this.lines.set(keyPath, line);
      if (keyType !== 'string' && keyType !== 'bool' && !INTEGER.test(keyText)) {
        this.issue(keyPath, line, `map key must be an integer (${keyType})`);
      }
      this.value(pair.value, value, keyPath);
    }
  }

  private value(raw: unknown, spec: ValueSpec, path: string): void {
    const node = this.resolve(raw);
    if (spec.target instanceof protobuf.Type) {
      const name = bareName(spec.target);
      // Wrappers and Duration carry PGV rules for their single value.
      if (name.startsWith('google.protobuf.') && name !== 'google.protobuf.Any') {
        return this.wellKnown(node, name, path, spec.rules);
      }
      return this.message(node, spec.target, path);
    }
    if (spec.target instanceof protobuf.Enum) return this.enumValue(node, spec.target, path);
    this.scalar(node, spec.target, path, spec.rules);
  }

  private enumValue(node: unknown, en: protobuf.Enum, path: string): void {
    const line = this.lineOf(node);
    const v = isScalar(node) ? node.value : undefined;
    const name = bareName(en);
    if (typeof v === 'number') {
      if (Object.values(en.values).includes(v)) return;
      const newer = [...NEWER_ENUM_VALUES].find(([k, e]) => k.startsWith(`${name}.`) && e.number === v);
      if (newer && this.admitNewer(path, line, `value ${v} of ${name}`, newer[1].since)) return;
    } else if (typeof v === 'string') {
      // Envoy parses enum names case-insensitively (lower-case names are upper-cased).
      if (en.values[v] !== undefined || en.values[v.toUpperCase()] !== undefined) return;
      // Unlike fields, an enum value is admitted only if newer-api.ts knows it: typos stay errors.
      const newer = NEWER_ENUM_VALUES.get(`${name}.${v.toUpperCase()}`);
      if (newer && this.admitNewer(path, line, `value "${v}" of ${name}`, newer.since)) return;
      const hint = newer ? ` (added in Envoy 1.${newer.since}: mark the line "# [Envoy >= 1.${newer.since}]")` : '';
      return this.issue(path, line, `"${v}" is not a value of ${name} (${Object.keys(en.values).join(', ')})${hint}`);
    }
    this.issue(path, line, `expected a value of ${name} (${Object.keys(en.values).join(', ')})`);
  }

  private scalar(node: unknown, type: ScalarType, path: string, rules: pgv.Rules): void {
    const line = this.lineOf(node);
    const v = isScalar(node) ? node.value : undefined;
    const bad = (what: string): void => this.issue(path, line, `expected ${what}, got ${describe(node)}`);
    if (type === 'bool') {
      if (typeof v !== 'boolean') return bad('true or false');
      for (const why of pgv.checkBool(v, rules)) this.issue(path, line, why);
      return;
    }
    if (type === 'string') {
      if (typeof v !== 'string') return bad('a string');
      for (const why of pgv.checkString(v, rules)) this.issue(path, line, why);
      return;
    }
    if (type === 'bytes') {
      if (typeof v !== 'string' || !BASE64.test(v)) bad('base64 bytes');
      return;
    }
    const num = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (type === 'double' || type === 'float') {
      if (Number.isNaN(num) && v !== 'NaN') return bad('a number');
      for (const why of pgv.checkNumber(num, rules)) this.issue(path, line, why);
      return;
    }
    const range = INT_RANGES[type];
    if (!range && !INT64.has(type)) return this.issue(path, line, `no message or enum type "${type}" is loaded`);
    const integral = typeof v === 'number' ? Number.isInteger(v) : typeof v === 'string' && INTEGER.test(v);
    if (!integral) return bad(`an integer (${type})`);
    const unsigned = type.startsWith('u') || type.startsWith('fixed');
    if ((range && (num < range[0] || num > range[1])) || (unsigned && num < 0)) {
      return this.issue(path, line, `${String(v)} is out of range for ${type}`);
    }
    for (const why of pgv.checkNumber(num, rules)) this.issue(path, line, why);
  }

  private wellKnown(node: unknown, name: string, path: string, rules: pgv.Rules): void {
    const line = this.lineOf(node);
    const wrapped = WRAPPERS[name];
    if (wrapped) return this.scalar(node, wrapped, path, rules);
    const v = isScalar(node) ? node.value : undefined;
    switch (name) {
      case 'google.protobuf.Duration':
        if (typeof v !== 'string' || !DURATION.test(v)) {
          return this.issue(path, line, `expected a duration such as "1s" or "0.25s", got ${describe(node)}`);
        }
        for (const why of pgv.checkDuration(Number(v.slice(0, -1)), rules)) this.issue(path, line, why);
        return;
      case 'google.protobuf.Timestamp':
        if (typeof v !== 'string' || !TIMESTAMP.test(v)) this.issue(path, line, 'expected an RFC 3339 timestamp');
        return;
      case 'google.protobuf.FieldMask':
        if (typeof v !== 'string') this.issue(path, line, 'expected a field mask string');
        return;
      case 'google.protobuf.Struct':
        if (!isMap(node) && !isNull(node)) this.issue(path, line, 'expected a mapping (google.protobuf.Struct)');
        return;
      case 'google.protobuf.ListValue':
        if (!isSeq(node)) this.issue(path, line, 'expected a list (google.protobuf.ListValue)');
        return;
      case 'google.protobuf.Empty':
        if (!isNull(node) && !(isMap(node) && node.items.length === 0)) this.issue(path, line, 'expected {}');
        return;
      default:
        return; // google.protobuf.Value holds any JSON value
    }
  }

  private any(node: unknown, path: string): void {
    if (!isMap(node)) return this.issue(path, this.lineOf(node), 'expected a mapping with "@type" (google.protobuf.Any)');
    const typePair = node.items.find((p) => isScalar(p.key) && p.key.value === '@type');
    if (!typePair) return this.issue(path, this.lineOf(node), 'google.protobuf.Any needs an "@type"');
    const url = isScalar(typePair.value) ? typePair.value.value : undefined;
    const line = this.lineOf(typePair.value);
    const typePath = childPath(path, '@type');
    if (line !== undefined) this.lines.set(typePath, line);
    if (typeof url !== 'string' || !url.includes('/')) {
      return this.issue(typePath, line, 'expected a type URL such as "type.googleapis.com/<message>"');
    }
    const typeName = url.slice(url.lastIndexOf('/') + 1);
    let type: protobuf.Type | undefined;
    try {
      type = this.root.lookupType(typeName);
    } catch {
      type = undefined;
    }
    if (!type) {
      if (this.admitNewer(typePath, line, `type ${typeName}`, NEWER_TYPES.get(typeName))) return;
      return this.issue(typePath, line, `"${typeName}" is not a message type of the Envoy 1.${SNAPSHOT_MINOR} API`);
    }
    const name = bareName(type);
    if (name.startsWith('google.protobuf.')) {
      // Well-known types inside Any carry their JSON form under "value".
      const valuePair = node.items.find((p) => isScalar(p.key) && p.key.value === 'value');
      for (const p of node.items) {
        const k = isScalar(p.key) ? p.key.value : undefined;
        if (k === '@type' || k === 'value') continue;
        this.issue(childPath(path, String(k)), this.lineOf(p.key), `unknown field "${String(k)}" in ${name}`);
      }
      return this.message(valuePair?.value ?? null, type, childPath(path, 'value'));
    }
    this.message(node, type, path, new Set(['@type']));
  }
}

function describe(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return node.value === null ? 'null' : JSON.stringify(node.value);
  return 'nothing';
}

/** Walks `doc` (parsed with `lineCounter` from `source`) as the message type `typeName`. */
export function walkDocument(
  root: protobuf.Root,
  doc: Document,
  lineCounter: LineCounter,
  source: string,
  typeName: string,
): WalkOutput {
  const walker = new Walker(root, doc, lineCounter, source);
  walker.message(doc.contents, root.lookupType(typeName), '');
  walker.checkMarkers();
  return { issues: walker.issues, lines: walker.lines };
}
