/**
 * Loads Envoy's official API protos with protobufjs: the snapshot shipped in
 * `@grpc/grpc-js-xds/deps` (byte-identical to the Envoy 1.31.0 release protos for ext_proc).
 * Used to check tokenwarden's wire definitions and Envoy YAML configs against the real API.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';

/** Minor version of the Envoy release the snapshot matches (1.31). */
export const SNAPSHOT_MINOR = 31;

const require = createRequire(import.meta.url);
const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const ENVOY_API = path.join(DEPS, 'envoy-api');

/** Include folders, in lookup order; protobufjs ships descriptor.proto and friends itself. */
export const INCLUDE_DIRS: readonly string[] = [
  ENVOY_API,
  path.join(DEPS, 'xds'),
  path.join(DEPS, 'googleapis'),
  path.join(DEPS, 'protoc-gen-validate'),
  path.dirname(require.resolve('protobufjs')),
];

/** Well-known types protobufjs bundles (used instead of files, which the deps do not contain). */
const BUNDLED = new Set(
  ['any', 'duration', 'timestamp', 'empty', 'struct', 'wrappers', 'field_mask'].map(
    (n) => `google/protobuf/${n}.proto`,
  ),
);

function findInclude(rel: string): string | undefined {
  for (const dir of INCLUDE_DIRS) {
    const p = path.join(dir, rel);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

const IMPORT_RE = /^import\s+(?:public\s+|weak\s+)?"([^"]+)"/gm;

/** True when the file and everything it imports (transitively) can be found. */
function importsResolve(rel: string, memo: Map<string, boolean>): boolean {
  if (BUNDLED.has(rel)) return true;
  const known = memo.get(rel);
  if (known !== undefined) return known;
  memo.set(rel, true); // import cycles: assume fine while the cycle is being checked
  const file = findInclude(rel);
  const ok =
    file !== undefined &&
    [...fs.readFileSync(file, 'utf8').matchAll(IMPORT_RE)].every((m) => importsResolve(m[1] ?? '', memo));
  memo.set(rel, ok);
  return ok;
}

/** Loads the given files (paths relative to the include folders) and their imports. */
export function loadOfficial(files: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => findInclude(target) ?? target;
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

function listProtos(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listProtos(p, out);
    else if (e.name.endsWith('.proto')) out.push(path.relative(ENVOY_API, p));
  }
  return out;
}

let apiRoot: protobuf.Root | undefined;

/**
 * Every v3 Envoy proto in the snapshot (bootstrap, listeners, clusters, all extensions), so any
 * `@type` a config may name resolves. A handful of files whose third-party imports (OpenCensus,
 * OpenTelemetry) are not shipped are left out. Loaded once per process (~0.5 s).
 */
export function officialApiRoot(): protobuf.Root {
  if (!apiRoot) {
    const memo = new Map<string, boolean>();
    const files = listProtos(path.join(ENVOY_API, 'envoy'))
      .filter((f) => f.split(path.sep).includes('v3'))
      .map((f) => f.split(path.sep).join('/'))
      .filter((f) => importsResolve(f, memo));
    apiRoot = loadOfficial(files);
  }
  return apiRoot;
}

/** The official ext_proc service definition and its imports. */
export function officialExtProcRoot(): protobuf.Root {
  return loadOfficial(['envoy/service/ext_proc/v3/external_processor.proto']);
}
