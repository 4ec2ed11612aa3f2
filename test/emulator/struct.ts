/**
 * Conversions between plain JS values and google.protobuf.Struct/Value as protobufjs represents
 * them (camelCase `stringValue`, `structValue`, ...; decoded messages name the set field in `kind`).
 */
import type { WireStruct, WireStructValue } from '../../src/extproc/protocol.js';

export type JsonObject = Record<string, unknown>;

export function toValue(v: unknown): WireStructValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { structValue: toStruct(v as JsonObject) };
  return { stringValue: String(v) };
}

export function toStruct(obj: JsonObject): WireStruct {
  const fields: Record<string, WireStructValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

/** Which member of the Value oneof is set: `kind` on decoded messages, own keys on plain objects. */
function valueKind(v: WireStructValue): WireStructValue['kind'] {
  if (v.kind) return v.kind;
  for (const k of ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'] as const) {
    if (Object.prototype.hasOwnProperty.call(v, k) && v[k] !== undefined && v[k] !== null) return k;
  }
  return undefined;
}

function fromValue(v: WireStructValue | null | undefined): unknown {
  if (!v) return null;
  switch (valueKind(v)) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

export function fromStruct(s: WireStruct | null | undefined): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

/** The struct held by a Value, or undefined when the Value is not a struct. */
export function structOf(v: WireStructValue | null | undefined): WireStruct | undefined {
  return v && valueKind(v) === 'structValue' ? (v.structValue ?? { fields: {} }) : undefined;
}
