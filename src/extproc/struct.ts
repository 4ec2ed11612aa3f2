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

function valueSize(v: MetadataValue): number {
  if (v === null) return 2;
  switch (typeof v) {
    case 'string':
      return delimited(Buffer.byteLength(v));
    case 'number':
      return 9;
    case 'boolean':
      return 2;
    default:
      if (Array.isArray(v)) {
        let list = 0;
        for (const item of v) list += delimited(valueSize(item));
        return delimited(list);
      }
      return delimited(structSize(v));
  }
}

function entrySize(k: string, v: MetadataValue): number {
  return delimited(Buffer.byteLength(k)) + delimited(valueSize(v));
}

function structSize(obj: PlainFields): number {
  let n = 0;
  for (const k in obj) {
    const v = obj[k];
    if (v !== undefined) n += delimited(entrySize(k, v));
  }
  return n;
}

/**
 * The Struct's encoding (the fields of google.protobuf.Struct, undefined entries left out, as
 * toStruct does), in one buffer sized up front: no per-field writer objects.
 */
export function encodeStruct(obj: PlainFields): Buffer {
  const buf = Buffer.allocUnsafe(structSize(obj));
  const end = writeStruct(buf, 0, obj);
  return end === buf.length ? buf : buf.subarray(0, end);
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

function writeString(buf: Buffer, at: number, tag: number, s: string): number {
  buf[at++] = tag;
  at = writeVarint(buf, at, Buffer.byteLength(s));
  return at + buf.write(s, at, 'utf8');
}

function writeStruct(buf: Buffer, at: number, obj: PlainFields): number {
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined) continue;
    buf[at++] = STRUCT_FIELDS;
    at = writeVarint(buf, at, entrySize(k, v));
    at = writeString(buf, at, ENTRY_KEY, k);
    buf[at++] = ENTRY_VALUE;
    at = writeVarint(buf, at, valueSize(v));
    at = writeValue(buf, at, v);
  }
  return at;
}

function writeValue(buf: Buffer, at: number, v: MetadataValue): number {
  if (v === null) {
    buf[at++] = VALUE_NULL;
    buf[at++] = 0;
    return at;
  }
  switch (typeof v) {
    case 'string':
      return writeString(buf, at, VALUE_STRING, v);
    case 'number':
      buf[at++] = VALUE_NUMBER;
      return buf.writeDoubleLE(v, at);
    case 'boolean':
      buf[at++] = VALUE_BOOL;
      buf[at++] = v ? 1 : 0;
      return at;
    default:
      if (Array.isArray(v)) {
        buf[at++] = VALUE_LIST;
        let list = 0;
        for (const item of v) list += delimited(valueSize(item));
        at = writeVarint(buf, at, list);
        for (const item of v) {
          buf[at++] = LIST_VALUES;
          at = writeVarint(buf, at, valueSize(item));
          at = writeValue(buf, at, item);
        }
        return at;
      }
      buf[at++] = VALUE_STRUCT;
      at = writeVarint(buf, at, structSize(v));
      return writeStruct(buf, at, v);
  }
}
