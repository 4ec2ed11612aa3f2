/**
 * ext_proc rules that Envoy enforces beyond the proto schema (config.cc's verifyFilterConfig), plus
 * the deployment rules tokenwarden relies on: per-route configs keyed by the filter's name,
 * observability mode with STREAMED bodies and failure_mode_allow, the filter placed before the
 * router, and an allow-list that can only matter with allow_mode_override.
 */
import { childPath, nearestLine, type ConfigIssue } from './issues.js';
import { anyType, enumName, get, isObject, visitObjects, type Json, type JsonObject } from './tree.js';

const EXT_PROC = 'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
const PER_ROUTE = 'envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute';
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';
const FILTER_CONFIG = 'envoy.config.route.v3.FilterConfig';

const HEADER_MODES = ['DEFAULT', 'SEND', 'SKIP'] as const;
const BODY_MODES = ['NONE', 'STREAMED', 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED', 'GRPC'] as const;
const ROUTE_CACHE_ACTIONS = ['DEFAULT', 'CLEAR', 'RETAIN'] as const;

type Report = (path: string, message: string) => void;

function checkProcessor(cfg: JsonObject, path: string, report: Report): void {
  const mode = get(cfg, 'processing_mode');
  const body = (dir: 'request' | 'response'): string => enumName(get(mode, `${dir}_body_mode`), BODY_MODES) ?? 'NONE';
  const trailer = (dir: 'request' | 'response'): string =>
    enumName(get(mode, `${dir}_trailer_mode`), HEADER_MODES) ?? 'DEFAULT';
  const modePath = childPath(path, 'processing_mode');

  if ((cfg['grpc_service'] === undefined) === (cfg['http_service'] === undefined)) {
    report(path, 'exactly one of grpc_service or http_service must be configured');
  }
  if (cfg['http_service'] !== undefined) {
    const sends = ['request', 'response'].some((d) => {
      const dir = d as 'request' | 'response';
      return body(dir) !== 'NONE' || trailer(dir) === 'SEND';
    });
    if (sends) report(modePath, 'with http_service the processing mode cannot send bodies or trailers');
  }
  for (const dir of ['request', 'response'] as const) {
    if (body(dir) === 'FULL_DUPLEX_STREAMED' && trailer(dir) !== 'SEND') {
      report(childPath(modePath, `${dir}_trailer_mode`), `${dir}_body_mode FULL_DUPLEX_STREAMED needs ${dir}_trailer_mode: SEND`);
    }
  }
  const routeCache = enumName(cfg['route_cache_action'], ROUTE_CACHE_ACTIONS) ?? 'DEFAULT';
  if (cfg['disable_clear_route_cache'] === true && routeCache !== 'DEFAULT') {
    report(path, 'disable_clear_route_cache and a non-DEFAULT route_cache_action cannot be set together');
  }
  if (cfg['observability_mode'] === true) {
    for (const dir of ['request', 'response'] as const) {
      const b = body(dir);
      if (b !== 'NONE' && b !== 'STREAMED') {
        report(childPath(modePath, `${dir}_body_mode`), `observability_mode mirrors only STREAMED bodies; ${b} bodies are never sent`);
      }
    }
    if (cfg['failure_mode_allow'] !== true) {
      report(path, 'observability_mode needs failure_mode_allow: true (a side-stream error would otherwise fail the request)');
    }
  }
  if (Array.isArray(cfg['allowed_override_modes']) && cfg['allow_mode_override'] !== true) {
    report(childPath(path, 'allowed_override_modes'), 'allowed_override_modes has no effect without allow_mode_override: true');
  }
}

/** The ExtProcPerRoute inside a typed_per_filter_config value (directly or in a FilterConfig). */
function perRouteType(v: Json | undefined): string | undefined {
  const t = anyType(v);
  return t === FILTER_CONFIG ? anyType(get(v, 'config')) : t;
}

function checkConnectionManager(hcm: JsonObject, path: string, report: Report): void {
  const filters = Array.isArray(hcm['http_filters']) ? hcm['http_filters'] : [];
  const extProcNames = new Set<string>();
  let routerAt = -1;
  filters.forEach((f, i) => {
    const type = anyType(get(f, 'typed_config'));
    const name = get(f, 'name');
    if (type === ROUTER && routerAt < 0) routerAt = i;
    if (type !== EXT_PROC || typeof name !== 'string') return;
    extProcNames.add(name);
    if (routerAt >= 0) {
      report(childPath(childPath(path, 'http_filters'), i), `ext_proc filter "${name}" comes after the router and never runs`);
    }
  });

  visitObjects(hcm['route_config'], childPath(path, 'route_config'), (obj, objPath) => {
    const perFilter = obj['typed_per_filter_config'];
    if (!isObject(perFilter)) return;
    const mapPath = childPath(objPath, 'typed_per_filter_config');
    for (const [key, value] of Object.entries(perFilter)) {
      const type = perRouteType(value);
      if (type === PER_ROUTE && !extProcNames.has(key)) {
        const known = [...extProcNames].map((n) => `"${n}"`).join(', ') || 'none';
        const why = `key "${key}" does not name an ext_proc filter of this connection manager (ext_proc filters: ${known})`;
        report(childPath(mapPath, key), why);
      } else if (extProcNames.has(key) && type !== PER_ROUTE) {
        report(childPath(mapPath, key), `ext_proc filter "${key}" takes ${PER_ROUTE}, not ${type ?? 'an untyped value'}`);
      }
    }
  });
}

/** ext_proc issues in a bootstrap document (plain JS form). */
export function extProcIssues(doc: Json, lines: ReadonlyMap<string, number>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const report: Report = (path, message) => {
    const line = nearestLine(lines, path);
    issues.push(line === undefined ? { path, message } : { path, line, message });
  };
  visitObjects(doc, '', (obj, path) => {
    const type = anyType(obj);
    if (type === EXT_PROC) checkProcessor(obj, path, report);
    else if (type === HCM) checkConnectionManager(obj, path, report);
  });
  return issues;
}
