/**
 * google.protobuf.Struct from plain JS values, for the dynamic metadata on tokenwarden's answers.
 * The metadata builders return a PlainStruct, which encodeResponse (protocol.ts) writes straight
 * from the plain object: building a Value object per field and walking them again in protobufjs
 * cost more than the rest of the answer. Read as a WireStruct (its `fields`), it is the usual one.
 */
import type { WireStruct, WireStructValue } from './protocol.js';

export type JsonScalar = string | number | boolean | null;
export type MetadataValue = JsonScalar | MetadataValue[] | { [k: string]: MetadataValue };
export type PlainFields = { [k: string]: MetadataValue | undefined };

function toValue(v: MetadataValue): WireStructValue {
  if (v === null) return { nullValue: 0 };
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'number':
      return { numberValue: v };
    case 'boolean':
      return { boolValue: v };
    default:
      if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
      return { structValue: toStruct(v) };
  }
}

/** JS object -> google.protobuf.Struct; undefined entries are omitted. */
export function toStruct(obj: PlainFields): WireStruct {
  const fields: Record<string, WireStructValue> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined) fields[k] = toValue(v);
  }
  return { fields };
}

/**
 * A Struct kept as its plain object; `fields` (the WireStruct view) is built only if read. Encode
 * it with encodeResponse: protobufjs' own encoders look for an own `fields` property, not a getter.
 */
export class PlainStruct implements WireStruct {
  constructor(readonly plain: PlainFields) {}

  get fields(): Record<string, WireStructValue> {
    return toStruct(this.plain).fields!;
  }
}

// Wire tags (field number << 3 | wire type) of Struct, its map entries, Value and ListValue.
const STRUCT_FIELDS = 10;
const ENTRY_KEY = 10;
const ENTRY_VALUE = 18;
const VALUE_NULL = 8;
const VALUE_NUMBER = 17;
const VALUE_STRING = 26;
const VALUE_BOOL = 32;
const VALUE_STRUCT = 42;
const VALUE_LIST = 50;
const LIST_VALUES = 10;

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);
/** A length-delimited field of `n` bytes: its tag, its length, its bytes. */
const delimited = (n: number): number => 1 + varintSize(n) + n;

/** Metadata strings are short and mostly ASCII: a JS loop beats a call into Buffer for them. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

/**
 * Keys come from the code and the configured namespace, so few distinct ones: each is encoded
 * once. Bounded all the same (a nested struct's keys could come from anywhere).
 */
const keyBytes = new Map<string, Buffer>();
const MAX_CACHED_KEYS = 1024;

function encodedKey(k: string): Buffer {
  let b = keyBytes.get(k);
  if (b === undefined) {
    b = Buffer.from(k, 'utf8');
    if (keyBytes.size < MAX_CACHED_KEYS) keyBytes.set(k, b);
  }
  return b;
}

/** The byte length of a string from the size of its delimited encoding (`1 + varintSize(n) + n`). */
function stringBytes(delimitedSize: number): number {
  for (let k = 1; ; k++) {
    const n = delimitedSize - 1 - k;
    if (varintSize(n) === k) return n;
  }
}

/**
 * The sizes pass: the length of every nested message (map entry, its Value, Struct, ListValue),
 * pushed in the order the write pass needs them, so each is computed once.
 */
function structSize(obj: PlainFields, sizes: number[]): number {
  let n = 0;
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined) continue;
    const slot = sizes.length;
    sizes.push(0, 0);
    const value = valueSize(v, sizes);
    const entry = delimited(encodedKey(k).length) + delimited(value);
    sizes[slot] = entry;
    sizes[slot + 1] = value;
    n += delimited(entry);
  }
  return n;
}

/** The size of a Value's encoding (its one field, with tag). */
function valueSize(v: MetadataValue, sizes: number[]): number {
  if (v === null) return 2;
  switch (typeof v) {
    case 'string':
      return delimited(utf8Length(v));
    case 'number':
      return 9;
    case 'boolean':
      return 2;
    default: {
      const slot = sizes.length;
      sizes.push(0);
      let inner = 0;
      if (Array.isArray(v)) {
        for (const item of v) {
          const itemSlot = sizes.length;
          sizes.push(0);
          const size = valueSize(item, sizes);
          sizes[itemSlot] = size;
          inner += delimited(size);
        }
      } else {
        inner = structSize(v, sizes);
      }
      sizes[slot] = inner;
      return delimited(inner);
    }
  }
}

/**
 * The Struct's encoding (the fields of google.protobuf.Struct, undefined entries left out, as
 * toStruct does), in one buffer sized up front: no per-field writer objects.
 */
export function encodeStruct(obj: PlainFields): Buffer {
  // Encoding is synchronous: one sizes array serves every call.
  const sizes = SIZES;
  sizes.length = 0;
  const w = { buf: Buffer.allocUnsafe(structSize(obj, sizes)), at: 0, sizes, next: 0 };
  writeStruct(w, obj);
  return w.buf;
}

const SIZES: number[] = [];

interface StructWriter {
  buf: Buffer;
  at: number;
  sizes: number[];
  next: number;
}

function writeVarint(w: StructWriter, n: number): void {
  while (n >= 0x80) {
    w.buf[w.at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  w.buf[w.at++] = n;
}

/** `size`: the delimited field's size from the sizes pass (so the UTF-8 length is not counted again). */
function writeString(w: StructWriter, tag: number, s: string, size: number): void {
  w.buf[w.at++] = tag;
  const n = stringBytes(size);
  writeVarint(w, n);
  if (n !== s.length) {
    w.at += w.buf.write(s, w.at, 'utf8');
    return;
  }
  const buf = w.buf;
  let at = w.at;
  for (let i = 0; i < n; i++) buf[at++] = s.charCodeAt(i);
  w.at = at;
}

function writeStruct(w: StructWriter, obj: PlainFields): void {
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined) continue;
    const entry = w.sizes[w.next++]!;
    const value = w.sizes[w.next++]!;
    w.buf[w.at++] = STRUCT_FIELDS;
    writeVarint(w, entry);
    const key = encodedKey(k);
    w.buf[w.at++] = ENTRY_KEY;
    writeVarint(w, key.length);
    w.at += key.copy(w.buf, w.at);
    w.buf[w.at++] = ENTRY_VALUE;
    writeVarint(w, value);
    writeValue(w, v, value);
  }
}

/** `size`: the Value's encoded size, from the sizes pass. */
function writeValue(w: StructWriter, v: MetadataValue, size: number): void {
  if (v === null) {
    w.buf[w.at++] = VALUE_NULL;
    w.buf[w.at++] = 0;
    return;
  }
  switch (typeof v) {
    case 'string':
      writeString(w, VALUE_STRING, v, size);
      return;
    case 'number':
      w.buf[w.at++] = VALUE_NUMBER;
      w.at = w.buf.writeDoubleLE(v, w.at);
      return;
    case 'boolean':
      w.buf[w.at++] = VALUE_BOOL;
      w.buf[w.at++] = v ? 1 : 0;
      return;
    default: {
      const inner = w.sizes[w.next++]!;
      if (Array.isArray(v)) {
        w.buf[w.at++] = VALUE_LIST;
        writeVarint(w, inner);
        for (const item of v) {
          const itemSize = w.sizes[w.next++]!;
          w.buf[w.at++] = LIST_VALUES;
          writeVarint(w, itemSize);
          writeValue(w, item, itemSize);
        }
        return;
      }
      w.buf[w.at++] = VALUE_STRUCT;
      writeVarint(w, inner);
      writeStruct(w, v);
    }
  }
}
