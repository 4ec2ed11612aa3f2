/**
 * Configuration of the emulated ext_proc filter, named after Envoy's ExternalProcessor fields
 * (snake_case, durations in milliseconds), plus the runtime guards and HCM limits that change what
 * a server observes. `resolveConfig` applies Envoy's defaults.
 */
import { BodySendMode, HeaderSendMode, type WireProcessingMode } from '../../src/extproc/protocol.js';
import type { MutationRules } from './mutations.js';

export type HeaderModeName = keyof typeof HeaderSendMode;
export type BodyModeName = Exclude<keyof typeof BodySendMode, 'GRPC'>;

export interface ProcessingModeConfig {
  request_header_mode?: HeaderModeName;
  response_header_mode?: HeaderModeName;
  request_body_mode?: BodyModeName;
  response_body_mode?: BodyModeName;
  request_trailer_mode?: HeaderModeName;
  response_trailer_mode?: HeaderModeName;
}

/** A ListStringMatcher entry: a string matches exactly, a RegExp must match the whole name. */
export type NameMatcher = string | RegExp;

export interface EmulatorConfig {
  processing_mode?: ProcessingModeConfig;
  failure_mode_allow?: boolean;
  /** default 200 ms */
  message_timeout_ms?: number;
  /** default 0: override_message_timeout is always ignored */
  max_message_timeout_ms?: number;
  observability_mode?: boolean;
  /** observability mode only; default 5000 ms */
  deferred_close_timeout_ms?: number;
  send_body_without_waiting_for_header_response?: boolean;
  allow_mode_override?: boolean;
  allowed_override_modes?: ProcessingModeConfig[];
  disable_immediate_response?: boolean;
  mutation_rules?: MutationRules;
  forward_rules?: { allowed_headers?: NameMatcher[]; disallowed_headers?: NameMatcher[] };
  request_attributes?: string[];
  response_attributes?: string[];
  metadata_options?: {
    forwarding_namespaces?: { untyped?: string[] };
    receiving_namespaces?: { untyped?: string[] };
  };
  /** default 500; values outside 400..599 become 500 */
  status_on_error?: number;
  route_cache_action?: 'DEFAULT' | 'CLEAR' | 'RETAIN';
  disable_clear_route_cache?: boolean;
  allow_content_length_header?: boolean;
  /** runtime guard envoy.reloadable_features.ext_proc_graceful_grpc_close (default false) */
  graceful_close?: boolean;
  /** envoy.filters.http.ext_proc.remote_close_timeout_milliseconds (default 1000) */
  remote_close_timeout_ms?: number;
  /** runtime guard ext_proc_stream_close_optimization (default true) */
  stream_close_optimization?: boolean;
  /** runtime guard ext_proc_fail_close_spurious_resp (default true) */
  fail_close_spurious?: boolean;
  /** stream buffer limit (per_connection_buffer_limit_bytes), default 1 MiB */
  buffer_limit?: number;
  /** HCM / cluster header limits used by the mutation checks; defaults 100 and 60 KiB */
  max_headers_count?: number;
  max_headers_kb?: number;
  /** HCM stream_idle_timeout: 504 local reply (or reset) when the HTTP stream sees no activity */
  stream_idle_timeout_ms?: number;
  /** gRPC channel to the processor */
  grpc?: {
    max_send_message_length?: number;
    initial_metadata?: Record<string, string>;
    channel_options?: Record<string, string | number>;
  };
}

export interface Mode {
  request_header_mode: number;
  response_header_mode: number;
  request_body_mode: number;
  response_body_mode: number;
  request_trailer_mode: number;
  response_trailer_mode: number;
}

export interface ResolvedConfig {
  mode: Mode;
  fma: boolean;
  messageTimeoutMs: number;
  maxMessageTimeoutMs: number;
  observability: boolean;
  deferredCloseMs: number;
  sbww: boolean;
  allowModeOverride: boolean;
  allowedModes: Mode[];
  disableImmediate: boolean;
  rules: MutationRules;
  allowedHeaders: NameMatcher[];
  disallowedHeaders: NameMatcher[];
  requestAttributes: string[];
  responseAttributes: string[];
  forwardingNamespaces: string[];
  receivingNamespaces: string[];
  statusOnError: number;
  routeCacheAction: 'DEFAULT' | 'CLEAR' | 'RETAIN';
  disableClearRouteCache: boolean;
  keepContentLength: boolean;
  graceful: boolean;
  remoteCloseMs: number;
  closeOptimization: boolean;
  failCloseSpurious: boolean;
  bufferLimit: number;
  maxHeadersCount: number;
  maxHeadersKb: number;
  streamIdleTimeoutMs: number;
}

/** Numeric mode with unset fields as 0 (DEFAULT / NONE), exactly like the proto. */
export function toMode(m: ProcessingModeConfig | undefined): Mode {
  const h = (v: HeaderModeName | undefined): number => (v ? HeaderSendMode[v] : HeaderSendMode.DEFAULT);
  const b = (v: BodyModeName | undefined): number => (v ? BodySendMode[v] : BodySendMode.NONE);
  return {
    request_header_mode: h(m?.request_header_mode),
    response_header_mode: h(m?.response_header_mode),
    request_body_mode: b(m?.request_body_mode),
    response_body_mode: b(m?.response_body_mode),
    request_trailer_mode: h(m?.request_trailer_mode),
    response_trailer_mode: h(m?.response_trailer_mode),
  };
}

export function modeFromWire(m: WireProcessingMode): Mode {
  return {
    request_header_mode: m.request_header_mode ?? 0,
    response_header_mode: m.response_header_mode ?? 0,
    request_body_mode: m.request_body_mode ?? 0,
    response_body_mode: m.response_body_mode ?? 0,
    request_trailer_mode: m.request_trailer_mode ?? 0,
    response_trailer_mode: m.response_trailer_mode ?? 0,
  };
}

/** Envoy rejects a static FULL_DUPLEX_STREAMED body mode unless that direction's trailers are SEND. */
function validateMode(mode: Mode): void {
  const fd = BodySendMode.FULL_DUPLEX_STREAMED;
  if (mode.request_body_mode === fd && mode.request_trailer_mode !== HeaderSendMode.SEND) {
    throw new Error('FULL_DUPLEX_STREAMED request body mode requires request_trailer_mode SEND');
  }
  if (mode.response_body_mode === fd && mode.response_trailer_mode !== HeaderSendMode.SEND) {
    throw new Error('FULL_DUPLEX_STREAMED response body mode requires response_trailer_mode SEND');
  }
}

/** Applies defaults; throws on configurations Envoy would refuse to load. */
export function resolveConfig(c: EmulatorConfig): ResolvedConfig {
  const mode = toMode(c.processing_mode);
  validateMode(mode);
  if (c.disable_clear_route_cache && c.route_cache_action && c.route_cache_action !== 'DEFAULT') {
    throw new Error('disable_clear_route_cache and a non-DEFAULT route_cache_action are exclusive');
  }
  const soe = c.status_on_error ?? 500;
  return {
    mode,
    fma: c.failure_mode_allow ?? false,
    messageTimeoutMs: c.message_timeout_ms ?? 200,
    maxMessageTimeoutMs: c.max_message_timeout_ms ?? 0,
    observability: c.observability_mode ?? false,
    deferredCloseMs: c.deferred_close_timeout_ms ?? 5000,
    sbww: c.send_body_without_waiting_for_header_response ?? false,
    allowModeOverride: c.allow_mode_override ?? false,
    allowedModes: (c.allowed_override_modes ?? []).map(toMode),
    disableImmediate: c.disable_immediate_response ?? false,
    rules: c.mutation_rules ?? {},
    allowedHeaders: c.forward_rules?.allowed_headers ?? [],
    disallowedHeaders: c.forward_rules?.disallowed_headers ?? [],
    requestAttributes: [...new Set(c.request_attributes ?? [])],
    responseAttributes: [...new Set(c.response_attributes ?? [])],
    forwardingNamespaces: c.metadata_options?.forwarding_namespaces?.untyped ?? [],
    receivingNamespaces: c.metadata_options?.receiving_namespaces?.untyped ?? [],
    statusOnError: soe >= 400 && soe <= 599 ? soe : 500,
    routeCacheAction: c.route_cache_action ?? 'DEFAULT',
    disableClearRouteCache: c.disable_clear_route_cache ?? false,
    keepContentLength: c.allow_content_length_header ?? false,
    graceful: c.graceful_close ?? false,
    remoteCloseMs: c.remote_close_timeout_ms ?? 1000,
    closeOptimization: c.stream_close_optimization ?? true,
    failCloseSpurious: c.fail_close_spurious ?? true,
    bufferLimit: c.buffer_limit ?? 1024 * 1024,
    maxHeadersCount: c.max_headers_count ?? 100,
    maxHeadersKb: c.max_headers_kb ?? 60,
    streamIdleTimeoutMs: c.stream_idle_timeout_ms ?? 10_000,
  };
}
