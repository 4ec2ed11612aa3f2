/**
 * Loads tokenwarden's wire-compatible ext_proc definitions (proto/envoy-wire) with protobufjs and
 * exposes the message types plus a gRPC service definition whose (de)serializers use protobufjs
 * directly: decoded messages keep `bytes` as Buffers and skip proto-loader's toObject copy.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { encodeStruct, PlainStruct } from './struct.js';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/envoy-wire/', import.meta.url));
export const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

const FILES = ['external_processor.proto'];

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    // google/protobuf/* come from protobufjs' bundled well-known types.
    if (target.startsWith('google/protobuf/')) return target;
    return path.join(PROTO_DIR, path.basename(target));
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  return root;
}

export const root = loadRoot();

export const ProcessingRequest = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
export const ProcessingResponse = root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
export const ProcessingMode = root.lookupType('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode');

export const HeaderSendMode = { DEFAULT: 0, SEND: 1, SKIP: 2 } as const;
export const BodySendMode = {
  NONE: 0,
  STREAMED: 1,
  BUFFERED: 2,
  BUFFERED_PARTIAL: 3,
  FULL_DUPLEX_STREAMED: 4,
  GRPC: 5,
} as const;
export type HeaderSendModeValue = (typeof HeaderSendMode)[keyof typeof HeaderSendMode];
export type BodySendModeValue = (typeof BodySendMode)[keyof typeof BodySendMode];
export const ResponseStatus = { CONTINUE: 0, CONTINUE_AND_REPLACE: 1 } as const;

/** Plain shapes of the decoded messages (keepCase, bytes as Buffer). Only what the code reads. */
export interface WireHeaderValue {
  key: string;
  value?: string;
  raw_value?: Uint8Array;
}
export interface WireHeaderMap {
  headers?: WireHeaderValue[];
}
export interface WireHttpHeaders {
  headers?: WireHeaderMap;
  end_of_stream?: boolean;
}
export interface WireHttpBody {
  body?: Uint8Array;
  end_of_stream?: boolean;
}
export interface WireHttpTrailers {
  trailers?: WireHeaderMap;
}
/** google.protobuf.Value as protobufjs' bundled well-known types name it (camelCase fields). */
export interface WireStructValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: WireStruct;
  listValue?: { values?: WireStructValue[] };
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
}
export interface WireStruct {
  fields?: Record<string, WireStructValue>;
}
export interface WireProcessingMode {
  request_header_mode?: number;
  response_header_mode?: number;
  request_body_mode?: number;
  response_body_mode?: number;
  request_trailer_mode?: number;
  response_trailer_mode?: number;
}
export interface WireProtocolConfiguration {
  request_body_mode?: number;
  response_body_mode?: number;
  send_body_without_waiting_for_header_response?: boolean;
}
export interface WireProcessingRequest {
  request_headers?: WireHttpHeaders;
  response_headers?: WireHttpHeaders;
  request_body?: WireHttpBody;
  response_body?: WireHttpBody;
  request_trailers?: WireHttpTrailers;
  response_trailers?: WireHttpTrailers;
  request?: RequestKind;
  metadata_context?: { filter_metadata?: Record<string, WireStruct> };
  attributes?: Record<string, WireStruct>;
  observability_mode?: boolean;
  protocol_config?: WireProtocolConfiguration;
}
export type RequestKind =
  | 'request_headers'
  | 'response_headers'
  | 'request_body'
  | 'response_body'
  | 'request_trailers'
  | 'response_trailers';
export type ResponseKind = RequestKind | 'immediate_response' | 'streamed_immediate_response';

export interface WireHeaderValueOption {
  header?: WireHeaderValue;
  append?: { value?: boolean };
}
export interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}
export interface WireBodyMutation {
  body?: Uint8Array;
  clear_body?: boolean;
  streamed_response?: { body?: Uint8Array; end_of_stream?: boolean };
}
export interface WireCommonResponse {
  status?: number;
  header_mutation?: WireHeaderMutation;
  body_mutation?: WireBodyMutation;
  clear_route_cache?: boolean;
}
export interface WireImmediateResponse {
  status?: { code?: number };
  headers?: WireHeaderMutation;
  body?: Uint8Array;
  grpc_status?: { status?: number };
  details?: string;
}
export interface WireProcessingResponse {
  request_headers?: { response?: WireCommonResponse };
  response_headers?: { response?: WireCommonResponse };
  request_body?: { response?: WireCommonResponse };
  response_body?: { response?: WireCommonResponse };
  request_trailers?: { header_mutation?: WireHeaderMutation };
  response_trailers?: { header_mutation?: WireHeaderMutation };
  immediate_response?: WireImmediateResponse;
  streamed_immediate_response?: {
    headers_response?: WireHttpHeaders;
    body_response?: { body?: Uint8Array; end_of_stream?: boolean };
    trailers_response?: WireHeaderMap;
  };
  response?: ResponseKind;
  dynamic_metadata?: WireStruct;
  mode_override?: WireProcessingMode;
  override_message_timeout?: { seconds?: number | Long; nanos?: number };
  request_drain?: boolean;
}
type Long = { toNumber(): number };

export function decodeRequest(buf: Buffer): WireProcessingRequest {
  return ProcessingRequest.decode(buf) as unknown as WireProcessingRequest;
}
export function encodeRequest(msg: WireProcessingRequest): Buffer {
  return asBuffer(ProcessingRequest.encode(ProcessingRequest.fromObject(msg)).finish());
}
export function decodeResponse(buf: Buffer): WireProcessingResponse {
  return ProcessingResponse.decode(buf) as unknown as WireProcessingResponse;
}
/** Answers that never change, encoded once (grpc-js copies the bytes into its own frame). */
const CONSTANT_BYTES = new WeakMap<WireProcessingResponse, Buffer>();

/** Freezes an answer that is sent as it is on every stream, and encodes it once. */
export function constantAnswer(msg: WireProcessingResponse): Readonly<WireProcessingResponse> {
  const frozen = deepFreeze(msg);
  CONSTANT_BYTES.set(frozen, asBuffer(ProcessingResponse.encode(frozen).finish()));
  return frozen;
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !Object.isFrozen(v)) deepFreeze(v as object);
  return Object.freeze(o);
}

/** Tag of ProcessingResponse.dynamic_metadata (field 8, length-delimited). */
const DYNAMIC_METADATA_TAG = 66;

/** protobufjs' finish() gives a Buffer on Node: no copy then. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The answers are built in protobufjs' own plain shape (field names, numbers, Buffers), so they are
 * encoded as they are: no fromObject copy on the hot path. Dynamic metadata built as a PlainStruct
 * is written straight from its plain object after the other fields (protobuf fields may come in
 * any order).
 */
export function encodeResponse(msg: WireProcessingResponse): Buffer {
  const constant = CONSTANT_BYTES.get(msg);
  if (constant) return constant;
  const meta = msg.dynamic_metadata;
  if (!(meta instanceof PlainStruct)) return asBuffer(ProcessingResponse.encode(msg).finish());
  msg.dynamic_metadata = undefined;
  try {
    return asBuffer(ProcessingResponse.encode(msg).uint32(DYNAMIC_METADATA_TAG).bytes(encodeStruct(meta.plain)).finish());
  } finally {
    msg.dynamic_metadata = meta;
  }
}

/** The kind of a decoded ProcessingRequest (its oneof), or undefined when empty. */
export function requestKind(msg: WireProcessingRequest): RequestKind | undefined {
  return msg.request;
}
export function responseKind(msg: WireProcessingResponse): ResponseKind | undefined {
  return msg.response;
}

export const extProcServiceDefinition: ServiceDefinition = {
  Process: {
    path: PROCESS_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: WireProcessingRequest) => encodeRequest(m),
    requestDeserialize: (b: Buffer) => decodeRequest(b),
    responseSerialize: (m: WireProcessingResponse) => encodeResponse(m),
    responseDeserialize: (b: Buffer) => decodeResponse(b),
  },
};
