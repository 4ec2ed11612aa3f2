/**
 * The Envoy configs shipped in envoy-configs/ must load in Envoy (checked offline against Envoy's
 * protos by test/envoy/validate.ts) and must fit what the tokenwarden server does: the mode
 * override it sends, the metadata namespace it writes, the body modes it needs, the credential
 * headers it fingerprints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import { fromStruct, SKIP_REST_OVERRIDE } from '../src/extproc/messages.js';
import { AI_GATEWAY_NAMESPACE, exchangeMetadata } from '../src/extproc/metadata.js';
import { BodySendMode, HeaderSendMode, type WireProcessingMode } from '../src/extproc/protocol.js';
import type { ExchangeRecord } from '../src/domain.js';
import { anyType, get, isObject, visitObjects, type Json, type JsonObject } from './envoy/tree.js';
import { formatIssues, validateEnvoyYaml } from './envoy/validate.js';

const CONFIG_DIR = fileURLToPath(new URL('../envoy-configs/', import.meta.url));
const EXAMPLES_DIR = fileURLToPath(new URL('../../shared/envoy-examples/', import.meta.url));
const EXT_PROC = 'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
const PER_ROUTE = 'envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute';
const DEFAULTS = defaultConfig();

const configFiles = fs.readdirSync(CONFIG_DIR).filter((f) => f.endsWith('.yaml')).sort();
const read = (file: string): string => fs.readFileSync(path.join(CONFIG_DIR, file), 'utf8');
const load = (file: string): Json => parse(read(file)) as Json;

interface Processor {
  name: string;
  config: JsonObject;
  /** The connection manager that holds the filter. */
  hcm: JsonObject;
}

function processors(doc: Json): Processor[] {
  const found: Processor[] = [];
  visitObjects(doc, '', (obj) => {
    const filters = obj['http_filters'];
    if (!Array.isArray(filters)) return;
    for (const f of filters) {
      const cfg = get(f, 'typed_config');
      const name = get(f, 'name');
      if (isObject(cfg) && anyType(cfg) === EXT_PROC && typeof name === 'string') found.push({ name, config: cfg, hcm: obj });
    }
  });
  return found;
}

function onlyProcessor(file: string): Processor {
  const all = processors(load(file));
  if (all.length !== 1 || !all[0]) throw new Error(`${file}: expected one ext_proc filter, found ${all.length}`);
  return all[0];
}

type ModeKey = keyof WireProcessingMode;
const MODE_KEYS: readonly ModeKey[] = [
  'request_header_mode',
  'response_header_mode',
  'request_body_mode',
  'response_body_mode',
  'request_trailer_mode',
  'response_trailer_mode',
];
type Mode = Record<ModeKey, number>;

/** A YAML ProcessingMode as enum numbers (unset = 0 = DEFAULT / NONE). */
function modeNumbers(m: Json | undefined): Mode {
  const out = {} as Mode;
  for (const k of MODE_KEYS) {
    const v = get(m, k);
    const names: Record<string, number> = k.includes('body') ? BodySendMode : HeaderSendMode;
    out[k] = typeof v === 'number' ? v : typeof v === 'string' ? (names[v.toUpperCase()] ?? -1) : 0;
  }
  return out;
}

/** Effective mode after a mode_override, as Envoy >= 1.34 computes it (DEFAULT keeps static values). */
function effectiveSince134(staticMode: Mode, override: Mode): Mode {
  const out = { ...override };
  for (const k of MODE_KEYS) {
    if (!k.includes('body') && override[k] === HeaderSendMode.DEFAULT) out[k] = staticMode[k];
  }
  return out;
}

/** allowed_override_modes comparison: exact on every mode, request_header_mode ignored from 1.34. */
function isAllowed(entry: Mode, effective: Mode, compareRequestHeader: boolean): boolean {
  return MODE_KEYS.every((k) => (k === 'request_header_mode' && !compareRequestHeader) || entry[k] === effective[k]);
}

function route(vhost: Json | undefined, prefixOrPath: string): JsonObject {
  const routes = get(vhost, 'routes');
  const r = (Array.isArray(routes) ? routes : []).find(
    (x) => get(x, 'match', 'prefix') === prefixOrPath || get(x, 'match', 'path') === prefixOrPath,
  );
  if (!isObject(r)) throw new Error(`no route ${prefixOrPath}`);
  return r;
}

function vhosts(p: Processor): JsonObject[] {
  const list = get(p.hcm, 'route_config', 'virtual_hosts');
  return (Array.isArray(list) ? list : []).filter(isObject);
}

function vhost(p: Processor, name: string): JsonObject {
  const v = vhosts(p).find((x) => x['name'] === name);
  if (!v) throw new Error(`no virtual host ${name}`);
  return v;
}

/** The most specific ExtProcPerRoute for a route (route, then virtual host, then route config). */
function perRoute(p: Processor, vh: JsonObject, r: JsonObject): JsonObject | undefined {
  for (const level of [r, vh, get(p.hcm, 'route_config')]) {
    const cfg = get(level, 'typed_per_filter_config', p.name);
    if (isObject(cfg) && anyType(cfg) === PER_ROUTE) return cfg;
  }
  return undefined;
}

function enabled(p: Processor, vhostName: string, match: string): boolean {
  const vh = vhost(p, vhostName);
  return perRoute(p, vh, route(vh, match))?.['disabled'] !== true;
}

/** Every key tokenwarden writes into its namespace for a complete exchange. */
function emittedMetadataKeys(): string[] {
  const record: ExchangeRecord = {
    requestId: 'r1',
    traceparent: null,
    serverAddress: null,
    startedAt: 0,
    endedAt: 1,
    mode: 'inline',
    provider: 'openai',
    api: 'chat_completions',
    model: 'gpt-4o',
    responseModel: 'gpt-4o-2024-08-06',
    stream: true,
    consumer: { id: 'c1', resolver: 'header' },
    status: 200,
    reportedUsage: null,
    usage: {
      input_tokens: 1,
      output_tokens: 2,
      total_tokens: 3,
      cached_input_tokens: 1,
      cache_write_tokens: 1,
      reasoning_tokens: 1,
    },
    usageSource: 'reported',
    promptEstimate: { tokens: 1, method: 'exact' },
    costMicroUsd: 10,
    unpriced: false,
    error: 'invalid_json',
    completion: 'complete',
    usageInjected: false,
    blockedBy: [],
    unsanctioned: false,
    latency: null,
  };
  const metadata = fromStruct(exchangeMetadata(record, DEFAULTS.metadata));
  const ns = metadata[DEFAULTS.metadata.namespace];
  return isObject(ns) ? Object.keys(ns) : [];
}

/** Envoy StringMatcher subset used by forward_rules (exact/prefix/suffix/contains, ignore_case). */
function matches(matcher: Json, header: string): boolean {
  const ic = get(matcher, 'ignore_case') === true;
  const norm = (s: string): string => (ic ? s.toLowerCase() : s);
  const h = norm(header);
  const test = (key: string, fn: (v: string) => boolean): boolean => {
    const v = get(matcher, key);
    return typeof v === 'string' && fn(norm(v));
  };
  return (
    test('exact', (v) => h === v) ||
    test('prefix', (v) => h.startsWith(v)) ||
    test('suffix', (v) => h.endsWith(v)) ||
    test('contains', (v) => h.includes(v))
  );
}

const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const GRACEFUL_CLOSE = 'envoy.reloadable_features.ext_proc_graceful_grpc_close';

/**
 * What the cluster of tokenwarden's side streams sets in every bootstrap (README "HTTP/2 between
 * Envoy and tokenwarden"): a stream limit, so that Envoy spreads exchanges over connections;
 * bounded windows that still let a 60 MiB body rewrite through in 1 MiB steps; keepalive PINGs.
 */
const TOKENWARDEN_HTTP2 = {
  max_concurrent_streams: 100,
  initial_stream_window_size: 1024 * 1024,
  initial_connection_window_size: 16 * 1024 * 1024,
  connection_keepalive: { interval: '30s', timeout: '5s' },
};

/** Names of the clusters that ext_proc filters (and their per-route overrides) open side streams to. */
function sideStreamClusters(doc: Json): string[] {
  const names = new Set<string>();
  visitObjects(doc, '', (obj) => {
    if (anyType(obj) !== EXT_PROC && anyType(obj) !== PER_ROUTE) return;
    visitObjects(obj, '', (inner) => {
      const name = get(inner, 'envoy_grpc', 'cluster_name');
      if (typeof name === 'string') names.add(name);
    });
  });
  return [...names];
}

function http2Options(doc: Json, clusterName: string): Json | undefined {
  const list = get(doc, 'static_resources', 'clusters');
  const cluster = (Array.isArray(list) ? list : []).find((c) => get(c, 'name') === clusterName);
  return get(cluster, 'typed_extension_protocol_options', HTTP_OPTIONS, 'explicit_http_config', 'http2_protocol_options');
}

/** A Struct as Envoy's runtime reads it: nested keys joined with '.'. */
function flattenRuntime(node: Json | undefined, prefix: string, out: Map<string, Json>): Map<string, Json> {
  if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) flattenRuntime(v, prefix === '' ? k : `${prefix}.${k}`, out);
  } else if (node !== undefined && prefix !== '') {
    out.set(prefix, node);
  }
  return out;
}

/** The value of a runtime key in the bootstrap's static layers (a later layer wins). */
function staticRuntimeValue(doc: Json, key: string): Json | undefined {
  const layers = get(doc, 'layered_runtime', 'layers');
  let value: Json | undefined;
  for (const layer of Array.isArray(layers) ? layers : []) {
    const flat = flattenRuntime(get(layer, 'static_layer'), '', new Map());
    if (flat.has(key)) value = flat.get(key);
  }
  return value;
}

/** The comment block right above `layered_runtime:` (where its version marker and reason live). */
function commentAboveRuntime(text: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => /^\s*layered_runtime:/.test(l));
  const comment: string[] = [];
  for (let i = at - 1; i >= 0 && /^\s*#/.test(lines[i] ?? ''); i--) comment.unshift(lines[i]!.trim());
  return comment.join('\n');
}

describe('envoy-configs/*.yaml load in Envoy (validated against the Envoy API protos)', () => {
  it('ships the documented configs', () => {
    expect(configFiles).toEqual(
      expect.arrayContaining(['discovery-gateway.yaml', 'per-route.yaml', 'sidecar.yaml', 'unix-socket.yaml']),
    );
  });

  for (const file of configFiles) {
    it(`${file} has no schema, version-marker or ext_proc errors`, () => {
      expect(formatIssues(validateEnvoyYaml(read(file)))).toBe('');
    });

    it(`${file} starts with a header comment that explains it`, () => {
      const header = read(file).split('\n').filter((l, i, all) => all.slice(0, i + 1).every((x) => x.startsWith('#')));
      expect(header[0]).toMatch(/^# tokenwarden: /);
      expect(header.length).toBeGreaterThanOrEqual(5);
    });
  }

  const examples = fs.existsSync(EXAMPLES_DIR) ? fs.readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.yaml')) : [];
  it.skipIf(examples.length === 0)('accepts the known-valid shared examples (sanity check of the validator)', () => {
    for (const f of examples) {
      expect(formatIssues(validateEnvoyYaml(fs.readFileSync(path.join(EXAMPLES_DIR, f), 'utf8'))), f).toBe('');
    }
  });
});

describe('every bootstrap: HTTP/2 to tokenwarden, side streams closed without resets', () => {
  for (const file of configFiles) {
    it(`${file} gives the side streams' cluster explicit HTTP/2 limits, windows and keepalive`, () => {
      const doc = load(file);
      const names = sideStreamClusters(doc);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect(http2Options(doc, name), `${file}: cluster ${name}`).toMatchObject(TOKENWARDEN_HTTP2);
    });

    it(`${file} turns on the graceful close of side streams, marked as Envoy >= 1.34`, () => {
      expect(staticRuntimeValue(load(file), GRACEFUL_CLOSE)).toBe(true);
      expect(commentAboveRuntime(read(file))).toMatch(/^# \[Envoy >= 1\.34\] /);
    });
  }
});

const INLINE = ['sidecar.yaml', 'per-route.yaml', 'unix-socket.yaml'];

describe('inline configs match the tokenwarden server', () => {
  for (const file of INLINE) {
    describe(file, () => {
      const p = onlyProcessor(file);
      const staticMode = modeNumbers(p.config['processing_mode']);

      it('buffers the request body, streams the response body, sends both headers, skips trailers', () => {
        expect(staticMode).toEqual({
          request_header_mode: HeaderSendMode.SEND,
          response_header_mode: HeaderSendMode.SEND,
          request_body_mode: BodySendMode.BUFFERED,
          response_body_mode: BodySendMode.STREAMED,
          // Unset: DEFAULT means SKIP for trailers, and keeps the allow-list comparison exact.
          request_trailer_mode: HeaderSendMode.DEFAULT,
          response_trailer_mode: HeaderSendMode.DEFAULT,
        });
        expect(p.config['observability_mode']).toBeUndefined();
      });

      it('allows exactly the mode override tokenwarden sends for non-LLM traffic', () => {
        expect(p.config['allow_mode_override']).toBe(true);
        const list = p.config['allowed_override_modes'];
        expect(Array.isArray(list) && list.length).toBe(1);
        const entry = modeNumbers((list as Json[])[0]);
        const sent = Object.fromEntries(MODE_KEYS.map((k) => [k, SKIP_REST_OVERRIDE[k] ?? 0])) as Mode;
        expect(entry).toEqual(sent);
        // Envoy >= 1.34: DEFAULT header/trailer values keep the static ones; request_header_mode ignored.
        expect(isAllowed(entry, effectiveSince134(staticMode, sent), false)).toBe(true);
        // Envoy 1.32-1.33: the override replaces the mode as a whole; every field compared.
        expect(isAllowed(entry, sent, true)).toBe(true);
      });

      it('lets tokenwarden write its dynamic metadata', () => {
        const ns = get(p.config, 'metadata_options', 'receiving_namespaces', 'untyped');
        expect(ns).toEqual(expect.arrayContaining([DEFAULTS.metadata.namespace, AI_GATEWAY_NAMESPACE]));
      });

      it('never lets metering take traffic down, with bounded waits', () => {
        expect(p.config['failure_mode_allow']).toBe(true);
        expect(p.config['message_timeout']).toBe('1s');
        expect(p.config['max_message_timeout']).toMatch(/^\d+s$/);
        expect(p.config['request_attributes']).toEqual(['source.address', 'connection.uri_san_peer_certificate']);
      });

      it('buffers large prompts within the gRPC message limits of both sides', () => {
        const maxFromEnvoy = DEFAULTS.grpc.max_receive_message_bytes; // tokenwarden's receive limit
        const maxToEnvoy = get(p.config, 'grpc_service', 'envoy_grpc', 'max_receive_message_length');
        for (const vh of vhosts(p)) {
          // Hosts where some proxied route has the filter enabled (so request bodies are BUFFERED).
          const routes = (get(vh, 'routes') as Json[]).filter(isObject);
          if (!routes.some((r) => r['route'] !== undefined && perRoute(p, vh, r)?.['disabled'] !== true)) continue;
          const limit = vh['per_request_buffer_limit_bytes'];
          expect(typeof limit === 'number' && limit, String(vh['name'])).toBeGreaterThanOrEqual(32 * 1024 * 1024);
          // Headroom for headers, attributes and metadata in the same ProcessingRequest.
          expect((limit as number) + 1024 * 1024).toBeLessThanOrEqual(maxFromEnvoy);
          expect(maxToEnvoy).toBeGreaterThanOrEqual(limit as number);
        }
      });
    });
  }

  it('sidecar.yaml and per-route.yaml reach tokenwarden at its default gRPC address', () => {
    for (const file of ['sidecar.yaml', 'per-route.yaml', 'discovery-gateway.yaml']) {
      const doc = load(file);
      const cluster = (get(doc, 'static_resources', 'clusters') as Json[]).find((c) => get(c, 'name') === 'tokenwarden');
      const addr = get(cluster, 'load_assignment', 'endpoints') as Json[];
      const sock = get((get(addr[0], 'lb_endpoints') as Json[])[0], 'endpoint', 'address', 'socket_address');
      expect(`${String(get(sock, 'address'))}:${String(get(sock, 'port_value'))}`, file).toBe(DEFAULTS.grpc.address);
    }
  });

  it('unix-socket.yaml reaches tokenwarden over a Unix socket', () => {
    const doc = load('unix-socket.yaml');
    const cluster = (get(doc, 'static_resources', 'clusters') as Json[]).find((c) => get(c, 'name') === 'tokenwarden');
    const endpoints = get(cluster, 'load_assignment', 'endpoints') as Json[];
    const pipe = get((get(endpoints[0], 'lb_endpoints') as Json[])[0], 'endpoint', 'address', 'pipe', 'path');
    expect(pipe).toBe('/var/run/tokenwarden/ext_proc.sock');
    expect(read('unix-socket.yaml')).toContain('grpc.address: unix:/var/run/tokenwarden/ext_proc.sock');
  });

  it('sidecar.yaml logs the keys tokenwarden writes, and only those', () => {
    const used = [...read('sidecar.yaml').matchAll(/%DYNAMIC_METADATA\(([^:)]+):([^)]+)\)%/g)];
    const emitted = emittedMetadataKeys();
    expect(emitted).toContain('model');
    const keys = used.map((m) => m[2]);
    expect(keys).toEqual(expect.arrayContaining(['provider', 'model', 'consumer', 'input_tokens', 'output_tokens', 'cost_usd']));
    for (const m of used) {
      expect(m[1]).toBe(DEFAULTS.metadata.namespace);
      expect(emitted, `key ${m[2]}`).toContain(m[2]);
    }
  });
});

describe('discovery-gateway.yaml', () => {
  const p = onlyProcessor('discovery-gateway.yaml');

  it('mirrors traffic passively: observability mode, STREAMED bodies, fail open, deferred close', () => {
    expect(p.config['observability_mode']).toBe(true);
    expect(p.config['failure_mode_allow']).toBe(true);
    expect(p.config['deferred_close_timeout']).toMatch(/^\d+s$/);
    const mode = modeNumbers(p.config['processing_mode']);
    expect(mode.request_body_mode).toBe(BodySendMode.STREAMED);
    expect(mode.response_body_mode).toBe(BodySendMode.STREAMED);
    expect(mode.request_header_mode).toBe(HeaderSendMode.SEND);
    expect(mode.response_header_mode).toBe(HeaderSendMode.SEND);
  });

  it('forwards the credential headers tokenwarden fingerprints, and drops cookies', () => {
    const patterns = get(p.config, 'forward_rules', 'disallowed_headers', 'patterns') as Json[];
    expect(get(p.config, 'forward_rules', 'allowed_headers')).toBeUndefined();
    const fingerprinted = DEFAULTS.consumer.resolvers.flatMap((r) => (r.type === 'api_key' ? r.headers : []));
    expect(fingerprinted.length).toBeGreaterThan(0);
    for (const h of fingerprinted) expect(patterns.some((m) => matches(m, h)), h).toBe(false);
    expect(patterns.some((m) => matches(m, 'cookie'))).toBe(true);
  });
});

describe('per-route.yaml', () => {
  const p = onlyProcessor('per-route.yaml');

  it('disables ext_proc on routes that carry no inference and enables it on LLM routes', () => {
    expect(enabled(p, 'openai', '/')).toBe(true);
    expect(enabled(p, 'vllm', '/')).toBe(true);
    expect(enabled(p, 'openai', '/v1/models')).toBe(false);
    expect(enabled(p, 'openai', '/v1/files')).toBe(false);
    expect(enabled(p, 'vllm', '/health')).toBe(false);
    expect(enabled(p, 'internal', '/')).toBe(false);
  });

  it('restates the complete filter-level processing mode where it re-enables the filter', () => {
    const filterMode = modeNumbers(p.config['processing_mode']);
    for (const name of ['openai', 'vllm']) {
      const vh = vhost(p, name);
      const cfg = perRoute(p, vh, route(vh, '/'));
      expect(cfg?.['overrides'], name).toBeDefined();
      // processing_mode replaces the filter's mode as a whole; anything unset would become NONE/SKIP.
      expect(modeNumbers(get(cfg, 'overrides', 'processing_mode')), name).toEqual(filterMode);
    }
  });
});
