/**
 * google.protobuf.Struct from plain JS values, for the dynamic metadata on tokenwarden's answers.
 * The metadata builders return a PlainStruct, which encodeResponse (protocol.ts) writes straight
 * from the plain object: building a Value object per field and walking them again in protobufjs
 * cost more than the rest of the answer. Read as a WireStruct (its `fields`), it is the usual one.
 */
import type { Writer } from 'protobufjs';
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

/** A Struct kept as its plain object; `fields` (the WireStruct view) is built only if read. */
export class PlainStruct implements WireStruct {
  declare readonly fields: Record<string, WireStructValue>;

  constructor(readonly plain: PlainFields) {
    // An own property, as protobufjs' encoders expect of a message field.
    Object.defineProperty(this, 'fields', { enumerable: true, get: () => toStruct(plain).fields });
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

/** Writes the fields of a Struct (undefined entries left out, as toStruct does). */
export function writeStructFields(w: Writer, obj: PlainFields): void {
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined) continue;
    w.uint32(STRUCT_FIELDS).fork();
    w.uint32(ENTRY_KEY).string(k);
    w.uint32(ENTRY_VALUE).fork();
    writeValue(w, v);
    w.ldelim();
    w.ldelim();
  }
}

function writeValue(w: Writer, v: MetadataValue): void {
  if (v === null) {
    w.uint32(VALUE_NULL).int32(0);
    return;
  }
  switch (typeof v) {
    case 'string':
      w.uint32(VALUE_STRING).string(v);
      return;
    case 'number':
      w.uint32(VALUE_NUMBER).double(v);
      return;
    case 'boolean':
      w.uint32(VALUE_BOOL).bool(v);
      return;
    default:
      if (Array.isArray(v)) {
        w.uint32(VALUE_LIST).fork();
        for (const item of v) {
          w.uint32(LIST_VALUES).fork();
          writeValue(w, item);
          w.ldelim();
        }
        w.ldelim();
        return;
      }
      w.uint32(VALUE_STRUCT).fork();
      writeStructFields(w, v);
      w.ldelim();
  }
}
