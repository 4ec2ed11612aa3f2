/** Small builders and readers for ext_proc messages (header maps, answers, Structs). */
import type {
  WireHeaderMap,
  WireHeaderValue,
  WireHeaderMutation,
  WireProcessingMode,
  WireProcessingRequest,
  WireProcessingResponse,
  WireStruct,
  WireStructValue,
  RequestKind,
} from './protocol.js';
import { BodySendMode, HeaderSendMode } from './protocol.js';
import type { MetadataValue } from './struct.js';

const MAX_HEADER_VALUE_BYTES = 16 * 1024;

function headerValue(h: WireHeaderValue): string {
  const raw = h.raw_value;
  if (raw && raw.length > 0) {
    const n = Math.min(raw.length, MAX_HEADER_VALUE_BYTES);
    // protobufjs decodes bytes as Buffers on Node: read them in place.
    return Buffer.isBuffer(raw) ? raw.toString('utf8', 0, n) : Buffer.from(raw.buffer, raw.byteOffset, n).toString('utf8');
  }
  return (h.value ?? '').slice(0, MAX_HEADER_VALUE_BYTES);
}

/**
 * A message's headers as a lower-case name -> value map, read lazily: get() and has() scan the
 * list (a few dozen entries at most) and decode only the value asked for; recognition reads a
 * handful of the headers a request carries. Iterating builds the whole map once. Envoy sends
 * values in raw_value (bytes); older Envoys used `value`. The first occurrence of a repeated name
 * wins (the ones we read are not repeated).
 */
export class HeaderView implements ReadonlyMap<string, string> {
  private all: Map<string, string> | null = null;

  constructor(private readonly list: readonly WireHeaderValue[]) {}

  private find(name: string): WireHeaderValue | undefined {
    for (const h of this.list) {
      const key = h.key;
      if (key && (key === name || key.toLowerCase() === name)) return h;
    }
    return undefined;
  }

  get(name: string): string | undefined {
    if (this.all) return this.all.get(name);
    const h = this.find(name);
    return h === undefined ? undefined : headerValue(h);
  }

  has(name: string): boolean {
    return this.all ? this.all.has(name) : this.find(name) !== undefined;
  }

  private map(): Map<string, string> {
    if (this.all) return this.all;
    const out = new Map<string, string>();
    for (const h of this.list) {
      const key = h.key?.toLowerCase();
      if (key && !out.has(key)) out.set(key, headerValue(h));
    }
    this.all = out;
    return out;
  }

  get size(): number {
    return this.map().size;
  }
  forEach(fn: (value: string, key: string, map: ReadonlyMap<string, string>) => void, thisArg?: unknown): void {
    this.map().forEach((v, k) => fn.call(thisArg, v, k, this));
  }
  entries(): MapIterator<[string, string]> {
    return this.map().entries();
  }
  keys(): MapIterator<string> {
    return this.map().keys();
  }
  values(): MapIterator<string> {
    return this.map().values();
  }
  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.map()[Symbol.iterator]();
  }
}

const NO_HEADERS: readonly WireHeaderValue[] = [];

/** The headers of a message (see HeaderView). */
export function headerMap(map: WireHeaderMap | undefined): ReadonlyMap<string, string> {
  return new HeaderView(map?.headers ?? NO_HEADERS);
}

/** A header mutation that sets headers (values in raw_value, overwrite) and removes others. */
export function headerMutation(set: Record<string, string>, remove: string[] = []): WireHeaderMutation {
  return {
    set_headers: Object.entries(set).map(([key, value]) => ({
      header: { key, raw_value: Buffer.from(value, 'utf8') },
      append: { value: false },
    })),
    remove_headers: remove,
  };
}

/**
 * Whether no other response message can follow `msg` (spec §1.2): the response ended (headers or
 * body with end_of_stream, trailers), or Envoy sends no body (`responseBodyMode` NONE) or only one
 * chunk (BUFFERED_PARTIAL, the rest flowing unprocessed). `responseBodyMode` comes from
 * protocol_config (Envoy >= 1.34); undefined when unknown.
 */
export function endsResponse(msg: WireProcessingRequest, responseBodyMode?: number): boolean {
  switch (msg.request) {
    case 'response_headers':
      return msg.response_headers?.end_of_stream === true || responseBodyMode === BodySendMode.NONE;
    case 'response_body':
      return msg.response_body?.end_of_stream === true || responseBodyMode === BodySendMode.BUFFERED_PARTIAL;
    case 'response_trailers':
      return true;
    default:
      return false;
  }
}

/** The "no change" answer for a message kind. */
export function emptyAnswer(kind: RequestKind): WireProcessingResponse {
  switch (kind) {
    case 'request_headers':
      return { request_headers: {} };
    case 'response_headers':
      return { response_headers: {} };
    case 'request_body':
      return { request_body: {} };
    case 'response_body':
      return { response_body: {} };
    case 'request_trailers':
      return { request_trailers: {} };
    case 'response_trailers':
      return { response_trailers: {} };
  }
}

/**
 * mode_override for traffic that is not LLM traffic: keep the static header/trailer modes
 * (DEFAULT), skip the response headers and both bodies. Envoy then needs no further message for the
 * request (one round trip). `allowed_override_modes` in Envoy must list exactly this entry.
 */
export const SKIP_REST_OVERRIDE: Readonly<WireProcessingMode> = Object.freeze({
  request_header_mode: HeaderSendMode.DEFAULT,
  response_header_mode: HeaderSendMode.SKIP,
  request_body_mode: BodySendMode.NONE,
  response_body_mode: BodySendMode.NONE,
  request_trailer_mode: HeaderSendMode.DEFAULT,
  response_trailer_mode: HeaderSendMode.DEFAULT,
});

/** google.protobuf.Struct -> plain JS object. */
export function fromStruct(s: WireStruct | undefined): Record<string, MetadataValue> {
  const out: Record<string, MetadataValue> = {};
  if (!s?.fields) return out;
  for (const [k, v] of Object.entries(s.fields)) out[k] = fromValue(v);
  return out;
}

/** Decoded messages carry proto3 defaults on their prototype, so the oneof name decides. */
export function fromValue(v: WireStructValue): MetadataValue {
  const kind = v.kind ?? ownKind(v);
  switch (kind) {
    case 'stringValue':
      return v.stringValue ?? '';
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'boolValue':
      return v.boolValue ?? false;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

const VALUE_KINDS = ['stringValue', 'numberValue', 'boolValue', 'structValue', 'listValue', 'nullValue'] as const;

function ownKind(v: WireStructValue): WireStructValue['kind'] {
  return VALUE_KINDS.find((k) => Object.prototype.hasOwnProperty.call(v, k));
}

/** Envoy attributes (`attributes["envoy.filters.http.ext_proc"]`) flattened to strings. */
export function attributeMap(attrs: Record<string, WireStruct> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const s = attrs?.['envoy.filters.http.ext_proc'];
  if (!s?.fields) return out;
  for (const [k, v] of Object.entries(s.fields)) {
    const val = fromValue(v);
    if (val !== null && typeof val !== 'object') out.set(k, String(val));
  }
  return out;
}
