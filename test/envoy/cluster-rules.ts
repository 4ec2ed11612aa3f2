/**
 * Cross-references inside a static bootstrap: routes and ext_proc gRPC services must name a
 * defined cluster, and an ext_proc cluster must speak HTTP/2 (gRPC does not work over HTTP/1.1).
 * Skipped when clusters come from CDS, since they are then unknown here.
 */
import { childPath, nearestLine, type ConfigIssue } from './issues.js';
import { anyType, get, isObject, visitObjects, type Json, type JsonObject } from './tree.js';

const EXT_PROC_TYPES = new Set([
  'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
  'envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute',
]);
const HTTP_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

function speaksHttp2(cluster: JsonObject): boolean {
  const opts = get(cluster, 'typed_extension_protocol_options', HTTP_OPTIONS_KEY);
  return (
    get(opts, 'explicit_http_config', 'http2_protocol_options') !== undefined ||
    get(opts, 'auto_config') !== undefined ||
    cluster['http2_protocol_options'] !== undefined
  );
}

/** Every `cluster_name` under `grpc_service.envoy_grpc` inside ext_proc configs, with its path. */
function extProcClusterRefs(doc: Json): { name: string; path: string }[] {
  const refs: { name: string; path: string }[] = [];
  visitObjects(doc, '', (obj, path) => {
    if (!EXT_PROC_TYPES.has(anyType(obj) ?? '')) return;
    visitObjects(obj, path, (inner, innerPath) => {
      const name = get(inner, 'envoy_grpc', 'cluster_name');
      if (typeof name === 'string') refs.push({ name, path: childPath(childPath(innerPath, 'envoy_grpc'), 'cluster_name') });
    });
  });
  return refs;
}

export function clusterIssues(doc: Json, lines: ReadonlyMap<string, number>): ConfigIssue[] {
  if (get(doc, 'dynamic_resources', 'cds_config') !== undefined) return [];
  const issues: ConfigIssue[] = [];
  const report = (path: string, message: string): void => {
    const line = nearestLine(lines, path);
    issues.push(line === undefined ? { path, message } : { path, line, message });
  };
  const clusters = new Map<string, JsonObject>();
  const list = get(doc, 'static_resources', 'clusters');
  for (const c of Array.isArray(list) ? list : []) {
    if (isObject(c) && typeof c['name'] === 'string') clusters.set(c['name'], c);
  }

  visitObjects(doc, '', (obj, path) => {
    const routeCluster = get(obj, 'route', 'cluster');
    if (typeof routeCluster === 'string' && !clusters.has(routeCluster)) {
      report(childPath(childPath(path, 'route'), 'cluster'), `route targets undefined cluster "${routeCluster}"`);
    }
  });
  for (const ref of extProcClusterRefs(doc)) {
    const cluster = clusters.get(ref.name);
    if (!cluster) report(ref.path, `ext_proc uses undefined cluster "${ref.name}"`);
    else if (!speaksHttp2(cluster)) {
      report(ref.path, `ext_proc cluster "${ref.name}" is not configured for HTTP/2 (gRPC needs http2_protocol_options)`);
    }
  }
  return issues;
}
