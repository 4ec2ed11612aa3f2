/**
 * The deployment files must fit together and fit the server, since nothing here can run them:
 * envoy-configs/kubernetes and envoy-configs/envoy-gateway (Kubernetes objects), the Dockerfile and
 * .dockerignore. Checked statically: ports, addresses, names, keys, probes and paths that refer to
 * each other, the embedded tokenwarden config (parseConfig) and Envoy bootstraps (validateEnvoyYaml).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { applyOverrides, FINGERPRINT_SECRET_ENV, parseConfig, type ConfigOverride } from '../src/config/load.js';
import { parseAddress } from '../src/config/schema.js';
import { defaultConfig, type TokenwardenConfig } from '../src/config/types.js';
import { formatIssues, validateEnvoyYaml } from './envoy/validate.js';
import { get, isObject, type Json, type JsonObject } from './envoy/tree.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S_DIR = path.join(ROOT, 'envoy-configs/kubernetes');
const EG_DIR = path.join(ROOT, 'envoy-configs/envoy-gateway');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');
const PACKAGE = JSON.parse(read('package.json')) as { version: string; bin: Record<string, string>; engines: { node: string } };
const DEFAULTS = defaultConfig();

// ---- Minimal shapes of the Kubernetes objects used here -------------------------------------------

interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  file: string;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  exec?: { command: string[] };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  restartPolicy?: string;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: { key: string; path: string }[] };
  emptyDir?: object;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
}
interface Deployment extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: Meta; spec: PodSpec } };
}
interface Service extends K8sObject {
  spec: { selector: Record<string, string>; ports: { name?: string; port: number; targetPort: string | number; appProtocol?: string }[] };
}
interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

function loadDir(dir: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Omit<K8sObject, 'file'> | null;
      if (value !== null) objects.push({ ...value, file });
    }
  }
  return objects;
}

const K8S = loadDir(K8S_DIR);
const EG = loadDir(EG_DIR);
const ALL = [...K8S, ...EG];
const ofKind = <T extends K8sObject>(objects: K8sObject[], kind: string): T[] => objects.filter((o) => o.kind === kind) as T[];
const deployments = ofKind<Deployment>(K8S, 'Deployment');
const services = ofKind<Service>(K8S, 'Service');
const configMaps = ofKind<ConfigMap>(K8S, 'ConfigMap');
const kustomization = K8S.find((o) => o.kind === 'Kustomization') as (K8sObject & { resources: string[] }) | undefined;

function named<T extends K8sObject>(list: T[], name: string, namespace?: string): T {
  const found = list.find((o) => o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (!found) throw new Error(`no ${name}${namespace ? ` in namespace ${namespace}` : ''}`);
  return found;
}

const podContainers = (pod: PodSpec): Container[] => [...(pod.initContainers ?? []), ...pod.containers];
const allContainers = deployments.flatMap((d) => podContainers(d.spec.template.spec).map((c) => ({ deployment: d, pod: d.spec.template.spec, container: c })));
const isTokenwarden = (c: Container): boolean => c.image.split(':')[0]!.endsWith('tokenwarden');
const isEnvoy = (c: Container): boolean => c.image.startsWith('envoyproxy/envoy');

/** The containerPort a Service targetPort or probe port names, in the given pod. */
function containerPort(pod: PodSpec, port: string | number): number | undefined {
  if (typeof port === 'number') return podContainers(pod).some((c) => c.ports?.some((p) => p.containerPort === port)) ? port : undefined;
  return podContainers(pod)
    .flatMap((c) => c.ports ?? [])
    .find((p) => p.name === port)?.containerPort;
}

/** The value after `flag` in a container's args (`--config FILE`, `-c FILE`). */
function flag(c: Container, name: string): string | undefined {
  const args = c.args ?? [];
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The ConfigMap key a container sees at `file`, through its volume mounts. */
function configMapFileAt(pod: PodSpec, c: Container, file: string): { configMap: ConfigMap; key: string } {
  for (const mount of c.volumeMounts ?? []) {
    if (!file.startsWith(`${mount.mountPath}/`)) continue;
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    if (!volume?.configMap) continue;
    const relative = file.slice(mount.mountPath.length + 1);
    const item = volume.configMap.items?.find((i) => i.path === relative);
    return { configMap: named(configMaps, volume.configMap.name), key: item?.key ?? relative };
  }
  throw new Error(`${c.name}: ${file} is not inside a mounted ConfigMap`);
}

const SECRET_ENV_VALUES = { [FINGERPRINT_SECRET_ENV]: 'test-fingerprint-secret', TOKENWARDEN_ADMIN_TOKEN: 'test-admin-token' };

const SERVE_FLAGS: Record<string, string> = { '--grpc-address': 'grpc.address', '--admin-address': 'admin.address', '--log-level': 'logging.level' };

/** What a tokenwarden container runs with: its --config file from the ConfigMap, then its flags. */
function effectiveConfig(pod: PodSpec, c: Container): TokenwardenConfig {
  expect(c.args?.[0], `${c.name}: command`).toBe('serve');
  const file = flag(c, '--config');
  if (file === undefined) throw new Error(`${c.name}: no --config`);
  const { configMap, key } = configMapFileAt(pod, c, file);
  const text = configMap.data[key];
  if (text === undefined) throw new Error(`${configMap.metadata.name} has no key ${key}`);
  const overrides: ConfigOverride[] = Object.entries(SERVE_FLAGS)
    .filter(([f]) => flag(c, f) !== undefined)
    .map(([f, p]) => ({ path: p, value: flag(c, f)!, origin: f }));
  return applyOverrides(parseConfig(text, `${configMap.metadata.name}/${key}`, SECRET_ENV_VALUES), overrides);
}

function hostPort(address: string): { host: string; port: number } {
  const parsed = parseAddress(address, false);
  if (typeof parsed === 'string' || parsed.kind !== 'tcp') throw new Error(`not a TCP address: ${address}`);
  return parsed;
}
const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');

/** Kubernetes quantities (`60Mi`, `1Gi`, `512Ki`, plain bytes) in bytes. */
function bytes(quantity: string | number): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(String(quantity));
  if (!m) throw new Error(`unsupported quantity ${quantity}`);
  return Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']!;
}

// ---- Envoy bootstraps ---------------------------------------------------------------------------------

interface Bootstrap {
  file: string;
  text: string;
  doc: JsonObject;
}

const bootstraps: Bootstrap[] = configMaps.flatMap((cm) =>
  Object.entries(cm.data)
    .filter(([key]) => key.startsWith('envoy'))
    .map(([key, text]) => ({ file: `${cm.metadata.name}/${key}`, text, doc: parse(text) as JsonObject })),
);

function listeners(doc: Json): JsonObject[] {
  const list = get(doc, 'static_resources', 'listeners');
  return (Array.isArray(list) ? list : []).filter(isObject);
}
function clusters(doc: Json): JsonObject[] {
  const list = get(doc, 'static_resources', 'clusters');
  return (Array.isArray(list) ? list : []).filter(isObject);
}
function socketAddress(node: Json | undefined): string {
  const a = get(node, 'socket_address');
  return `${String(get(a, 'address'))}:${String(get(a, 'port_value'))}`;
}
/** The single endpoint of a STATIC cluster, as host:port. */
function clusterEndpoint(doc: Json, name: string): string {
  const cluster = clusters(doc).find((c) => c['name'] === name);
  const endpoints = get(cluster, 'load_assignment', 'endpoints');
  const lb = Array.isArray(endpoints) ? get(endpoints[0], 'lb_endpoints') : undefined;
  return socketAddress(get(Array.isArray(lb) ? lb[0] : undefined, 'endpoint', 'address'));
}
function hcm(listener: JsonObject): JsonObject {
  const chains = listener['filter_chains'];
  const filters = Array.isArray(chains) ? get(chains[0], 'filters') : undefined;
  const config = Array.isArray(filters) ? get(filters[0], 'typed_config') : undefined;
  if (!isObject(config)) throw new Error(`listener ${String(listener['name'])} has no connection manager`);
  return config;
}
function extProcFilter(doc: Json): JsonObject {
  for (const l of listeners(doc)) {
    const filters = get(hcm(l), 'http_filters');
    const found = (Array.isArray(filters) ? filters : []).find((f) => get(f, 'name') === 'envoy.filters.http.ext_proc');
    const config = get(found, 'typed_config');
    if (isObject(config)) return config;
  }
  throw new Error('no ext_proc filter');
}

/** The Deployment that mounts a bootstrap, and its Envoy container. */
function envoyUsing(bootstrap: Bootstrap): { pod: PodSpec; envoy: Container } {
  for (const { pod, container } of allContainers.filter((x) => isEnvoy(x.container))) {
    const file = flag(container, '-c');
    if (file === undefined) continue;
    const { configMap, key } = configMapFileAt(pod, container, file);
    if (`${configMap.metadata.name}/${key}` === bootstrap.file) return { pod, envoy: container };
  }
  throw new Error(`no Envoy container runs ${bootstrap.file}`);
}

/** The HTTP/2 settings of the cluster that the ext_proc filter of a bootstrap sends side streams to. */
function sideStreamHttp2(doc: Json): Json | undefined {
  const name = get(extProcFilter(doc), 'grpc_service', 'envoy_grpc', 'cluster_name');
  const cluster = clusters(doc).find((c) => c['name'] === name);
  const options = get(cluster, 'typed_extension_protocol_options', 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
  return get(options, 'explicit_http_config', 'http2_protocol_options');
}

/** A runtime key's value in a bootstrap's static layers (nested keys joined with '.', a later layer wins). */
function staticRuntimeValue(doc: Json, key: string): Json | undefined {
  const layers = get(doc, 'layered_runtime', 'layers');
  let value: Json | undefined;
  for (const layer of Array.isArray(layers) ? layers : []) {
    const flat = new Map<string, Json>();
    const walk = (node: Json | undefined, prefix: string): void => {
      if (isObject(node)) for (const [k, v] of Object.entries(node)) walk(v, prefix === '' ? k : `${prefix}.${k}`);
      else if (node !== undefined && prefix !== '') flat.set(prefix, node);
    };
    walk(get(layer, 'static_layer'), '');
    if (flat.has(key)) value = flat.get(key);
  }
  return value;
}

// ---- Kubernetes ---------------------------------------------------------------------------------------

const API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  ConfigMap: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  Kustomization: 'kustomize.config.k8s.io/v1beta1',
  EnvoyExtensionPolicy: 'gateway.envoyproxy.io/v1alpha1',
  ClientTrafficPolicy: 'gateway.envoyproxy.io/v1alpha1',
  ReferenceGrant: 'gateway.networking.k8s.io/v1beta1',
};
const NAMESPACE = 'tokenwarden';

describe('deployment manifests: kinds, files, names', () => {
  it('holds only known kinds with their API versions, each named, namespaced objects in a namespace', () => {
    expect(ALL.length).toBeGreaterThan(10);
    for (const o of ALL) {
      expect(API_VERSIONS[o.kind], `${o.file}: kind ${o.kind}`).toBeDefined();
      expect(o.apiVersion, `${o.file}: ${o.kind}`).toBe(API_VERSIONS[o.kind]);
      if (o.kind === 'Kustomization') continue;
      expect(o.metadata?.name, `${o.file}: ${o.kind} name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.file}: ${o.kind} ${o.metadata.name}`).toBeTruthy();
    }
    const keys = ALL.filter((o) => o.kind !== 'Kustomization').map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('has every Kubernetes object in the tokenwarden namespace, which it creates', () => {
    expect(named(ofKind(K8S, 'Namespace'), NAMESPACE)).toBeDefined();
    for (const o of K8S.filter((x) => x.kind !== 'Namespace' && x.kind !== 'Kustomization')) expect(o.metadata.namespace, o.metadata.name).toBe(NAMESPACE);
  });

  it('lists every manifest in kustomization.yaml, and nothing else', () => {
    const files = fs.readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...(kustomization?.resources ?? [])].sort()).toEqual(files.sort());
  });

  it('starts every file with a header comment that explains it', () => {
    for (const [dir, objects] of [[K8S_DIR, K8S], [EG_DIR, EG]] as const) {
      for (const file of new Set(objects.map((o) => o.file))) {
        expect(fs.readFileSync(path.join(dir, file), 'utf8').split('\n')[0], file).toMatch(/^# tokenwarden: \S/);
      }
    }
  });
});

describe('deployment manifests: Deployments, Services, volumes, secrets', () => {
  it('selects each Deployment its own pods, and each Service some pods and ports that exist', () => {
    for (const d of deployments) expect(d.spec.template.metadata.labels, d.metadata.name).toMatchObject(d.spec.selector.matchLabels);
    for (const s of services) {
      const target = deployments.find((d) => Object.entries(s.spec.selector).every(([k, v]) => d.spec.template.metadata.labels?.[k] === v));
      expect(target, `Service ${s.metadata.name} selects no Deployment`).toBeDefined();
      for (const p of s.spec.ports) expect(containerPort(target!.spec.template.spec, p.targetPort), `${s.metadata.name}:${p.port}`).toBeDefined();
    }
  });

  it('mounts only declared volumes, from ConfigMaps and keys that exist', () => {
    for (const { deployment, pod, container } of allContainers) {
      for (const m of container.volumeMounts ?? []) {
        expect(pod.volumes?.some((v) => v.name === m.name), `${deployment.metadata.name}/${container.name}: volume ${m.name}`).toBe(true);
      }
    }
    for (const d of deployments) {
      for (const v of d.spec.template.spec.volumes ?? []) {
        if (!v.configMap) continue;
        const cm = named(configMaps, v.configMap.name, d.metadata.namespace);
        for (const item of v.configMap.items ?? []) expect(Object.keys(cm.data), `${cm.metadata.name}`).toContain(item.key);
      }
    }
  });

  it('takes secrets only from the Secret whose creation kustomization.yaml documents, with exactly its keys', () => {
    const documented = new Set([...read('envoy-configs/kubernetes/kustomization.yaml').matchAll(/--from-literal=([a-z-]+)=/g)].map((m) => m[1]));
    const secretName = /create secret generic (\S+)/.exec(read('envoy-configs/kubernetes/kustomization.yaml'))?.[1];
    const used = new Set<string>();
    for (const { container } of allContainers) {
      for (const e of container.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        expect(ref.name, `${container.name}: ${e.name}`).toBe(secretName);
        used.add(ref.key);
      }
    }
    expect([...used].sort()).toEqual([...documented].sort());
  });

  it('gives every tokenwarden container the fingerprint secret and the admin token its config reads', () => {
    const tokenwardens = allContainers.filter((x) => isTokenwarden(x.container));
    expect(tokenwardens.length).toBeGreaterThanOrEqual(3);
    for (const { deployment, pod, container } of tokenwardens) {
      const env = new Map((container.env ?? []).map((e) => [e.name, e.valueFrom?.secretKeyRef?.key]));
      const where = `${deployment.metadata.name}/${container.name}`;
      expect(env.get(FINGERPRINT_SECRET_ENV), where).toBe('fingerprint-secret');
      const { configMap, key } = configMapFileAt(pod, container, flag(container, '--config')!);
      const tokenEnv = get(parse(configMap.data[key]!) as Json, 'admin', 'token_env');
      expect(typeof tokenEnv === 'string' && env.get(tokenEnv), where).toBe('admin-token');
    }
  });
});

describe('deployment manifests: tokenwarden containers', () => {
  const tokenwardens = allContainers.filter((x) => isTokenwarden(x.container));

  it('run a configuration that tokenwarden accepts, with the shared Redis store', () => {
    for (const { deployment, pod, container } of tokenwardens) {
      const config = effectiveConfig(pod, container);
      expect(config.store.type, deployment.metadata.name).toBe('redis');
      expect(config.consumer.fingerprint_secret, deployment.metadata.name).toBe(SECRET_ENV_VALUES[FINGERPRINT_SECRET_ENV]);
      expect(config.admin.token, deployment.metadata.name).toBe(SECRET_ENV_VALUES.TOKENWARDEN_ADMIN_TOKEN);
    }
  });

  it('point at the Redis Service, and are the pods its NetworkPolicy admits', () => {
    const redis = named(services, 'tokenwarden-redis');
    const redisPods = deployments.find((d) => d.metadata.name === 'tokenwarden-redis')!.spec.template.spec;
    const policy = named(ofKind<K8sObject & { spec: JsonObject }>(K8S, 'NetworkPolicy'), 'tokenwarden-redis');
    const [rule] = get(policy.spec, 'ingress') as Json[];
    const from = get((get(rule, 'from') as Json[])[0], 'podSelector', 'matchLabels');
    const policyPort = get((get(rule, 'ports') as Json[])[0], 'port') as string;
    expect(get(policy.spec, 'podSelector', 'matchLabels')).toEqual(redis.spec.selector);
    expect(containerPort(redisPods, policyPort)).toBe(6379);
    for (const { deployment, pod, container } of tokenwardens) {
      const url = new URL(effectiveConfig(pod, container).store.redis.url);
      const servicePort = redis.spec.ports.find((p) => p.port === Number(url.port));
      expect(url.hostname, deployment.metadata.name).toBe(redis.metadata.name);
      expect(servicePort && containerPort(redisPods, servicePort.targetPort), deployment.metadata.name).toBe(6379);
      expect(deployment.spec.template.metadata.labels, deployment.metadata.name).toMatchObject(from as Record<string, string>);
    }
  });

  it('are probed on the admin server, which listens on the pod IP at the probed port', () => {
    for (const { deployment, pod, container } of tokenwardens) {
      const admin = hostPort(effectiveConfig(pod, container).admin.address);
      const where = `${deployment.metadata.name}/${container.name}`;
      expect(isLoopback(admin.host), `${where}: admin ${admin.host} is unreachable for the kubelet`).toBe(false);
      expect(container.livenessProbe?.httpGet?.path, where).toBe('/healthz');
      const probes = [container.startupProbe, container.readinessProbe, container.livenessProbe].filter((p): p is Probe => p !== undefined);
      for (const probe of probes) {
        expect(['/healthz', '/readyz'], where).toContain(probe.httpGet?.path);
        expect(containerPort(pod, probe.httpGet!.port), where).toBe(admin.port);
      }
      if (container.readinessProbe) expect(container.readinessProbe.httpGet?.path, where).toBe('/readyz');
    }
  });

  it('finish in-flight exchanges before the pod is killed', () => {
    for (const { deployment, pod, container } of tokenwardens) {
      const grace = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
      expect(effectiveConfig(pod, container).grpc.shutdown_grace_ms, deployment.metadata.name).toBeLessThan(grace);
    }
  });

  it('use the image built from this repository at its version', () => {
    for (const { container } of tokenwardens) expect(container.image).toBe(`tokenwarden:${PACKAGE.version}`);
  });

  it('serve gRPC where their Envoy (same pod) or their Service (other pods) connects', () => {
    for (const { deployment, pod, container } of tokenwardens) {
      const grpc = effectiveConfig(pod, container).grpc.address;
      const envoy = podContainers(pod).find(isEnvoy);
      if (envoy) {
        const bootstrap = bootstraps.find((b) => envoyUsing(b).envoy === envoy)!;
        const cluster = get(extProcFilter(bootstrap.doc), 'grpc_service', 'envoy_grpc', 'cluster_name') as string;
        expect(clusterEndpoint(bootstrap.doc, cluster), deployment.metadata.name).toBe(grpc);
        expect(isLoopback(hostPort(grpc).host), `${deployment.metadata.name}: same-pod gRPC stays on loopback`).toBe(true);
      } else {
        const { host, port } = hostPort(grpc);
        expect(isLoopback(host), deployment.metadata.name).toBe(false);
        const service = services.find((s) => Object.entries(s.spec.selector).every(([k, v]) => deployment.spec.template.metadata.labels?.[k] === v));
        const servicePort = service?.spec.ports.find((p) => p.name === 'grpc');
        expect(servicePort && containerPort(pod, servicePort.targetPort), deployment.metadata.name).toBe(port);
        expect(servicePort?.appProtocol).toBe('kubernetes.io/h2c');
      }
    }
  });

  it('run as native sidecars next to Envoy: tokenwarden first, no readiness probe tied to the store', () => {
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      const tokenwarden = podContainers(pod).find(isTokenwarden);
      const envoy = podContainers(pod).find(isEnvoy);
      if (!tokenwarden || !envoy) continue;
      const init = pod.initContainers ?? [];
      expect(init.indexOf(tokenwarden), d.metadata.name).toBe(0);
      expect(tokenwarden.restartPolicy, d.metadata.name).toBe('Always');
      expect(tokenwarden.readinessProbe, d.metadata.name).toBeUndefined();
      expect(tokenwarden.startupProbe?.httpGet?.path, d.metadata.name).toBe('/healthz');
      if (init.includes(envoy)) expect(envoy.restartPolicy, d.metadata.name).toBe('Always');
    }
  });
});

describe('deployment manifests: Envoy', () => {
  it('embeds bootstraps that load in Envoy (validated against its API protos)', () => {
    expect(bootstraps.map((b) => b.file).sort()).toEqual(['discovery-gateway-envoy/envoy.yaml', 'egress-envoy/envoy.yaml']);
    for (const b of bootstraps) expect(formatIssues(validateEnvoyYaml(b.text)), b.file).toBe('');
  });

  // Each embedded bootstrap is its reference file plus a health listener: the traffic part must not drift.
  const REFERENCES: Record<string, string> = {
    'egress-envoy/envoy.yaml': 'envoy-configs/sidecar.yaml',
    'discovery-gateway-envoy/envoy.yaml': 'envoy-configs/discovery-gateway.yaml',
  };
  for (const [embedded, reference] of Object.entries(REFERENCES)) {
    it(`${embedded} has the listeners and clusters of ${reference}`, () => {
      const b = bootstraps.find((x) => x.file === embedded)!;
      const ref = parse(read(reference)) as JsonObject;
      for (const l of listeners(ref)) expect(listeners(b.doc).find((x) => x['name'] === l['name']), String(l['name'])).toEqual(l);
      for (const c of clusters(ref)) expect(clusters(b.doc).find((x) => x['name'] === c['name']), String(c['name'])).toEqual(c);
      expect(b.doc['admin']).toEqual(ref['admin']);
      expect(b.doc['layered_runtime']).toEqual(ref['layered_runtime']);
    });
  }

  it('talks HTTP/2 to tokenwarden with explicit limits and closes side streams without resets, in every bootstrap', () => {
    for (const b of bootstraps) {
      // README "HTTP/2 between Envoy and tokenwarden".
      expect(sideStreamHttp2(b.doc), b.file).toMatchObject({
        max_concurrent_streams: 100,
        initial_stream_window_size: 1024 * 1024,
        initial_connection_window_size: 16 * 1024 * 1024,
        connection_keepalive: { interval: '30s', timeout: '5s' },
      });
      expect(staticRuntimeValue(b.doc, 'envoy.reloadable_features.ext_proc_graceful_grpc_close'), b.file).toBe(true);
    }
  });

  it('runs each bootstrap in an Envoy new enough for it, probed on a listener that answers with Envoy readiness', () => {
    for (const b of bootstraps) {
      const { pod, envoy } = envoyUsing(b);
      const version = /:(?:distroless-)?v1\.(\d+)\.\d+$/.exec(envoy.image);
      const needed = Math.max(31, ...[...b.text.matchAll(/# \[Envoy >= 1\.(\d+)\]/g)].map((m) => Number(m[1])));
      expect(Number(version?.[1]), `${b.file}: ${envoy.image}`).toBeGreaterThanOrEqual(needed);

      const probes = [envoy.startupProbe, envoy.readinessProbe, envoy.livenessProbe].filter((p): p is Probe => p !== undefined);
      expect(probes.length, b.file).toBeGreaterThan(0);
      for (const probe of probes) {
        const port = containerPort(pod, probe.httpGet!.port);
        const listener = listeners(b.doc).find((l) => socketAddress(l['address']) === `0.0.0.0:${port}`);
        expect(listener, `${b.file}: no listener on the probed port ${port}`).toBeDefined();
        const hosts = get(hcm(listener!), 'route_config', 'virtual_hosts') as Json[];
        const routes = get(hosts[0], 'routes') as Json[];
        const route = routes.find((r) => get(r, 'match', 'path') === probe.httpGet!.path);
        const cluster = get(route, 'route', 'cluster') as string;
        expect(clusterEndpoint(b.doc, cluster), b.file).toBe(socketAddress(get(b.doc, 'admin', 'address')));
        expect(probe.httpGet!.path).toBe('/ready');
      }
      // Only the listeners on the pod IP need container ports; the admin interface stays on loopback.
      for (const l of listeners(b.doc)) {
        const { host, port } = hostPort(socketAddress(l['address']));
        if (!isLoopback(host)) expect(containerPort(pod, port), `${b.file}: ${String(l['name'])}`).toBe(port);
      }
      expect(isLoopback(hostPort(socketAddress(get(b.doc, 'admin', 'address'))).host), b.file).toBe(true);
    }
  });

  it('exposes the discovery gateway Service on its perimeter listener', () => {
    const b = bootstraps.find((x) => x.file === 'discovery-gateway-envoy/envoy.yaml')!;
    const { pod } = envoyUsing(b);
    const perimeter = listeners(b.doc).find((l) => l['name'] === 'perimeter')!;
    const service = named(services, 'discovery-gateway');
    expect(containerPort(pod, service.spec.ports[0]!.targetPort)).toBe(hostPort(socketAddress(perimeter['address'])).port);
  });
});

describe('deployment manifests: pod security (the namespace enforces the restricted standard)', () => {
  it('labels the namespace for the restricted Pod Security Standard', () => {
    expect(named(ofKind(K8S, 'Namespace'), NAMESPACE).metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  it('runs every container non-root, without privilege escalation or capabilities, read-only, with resources', () => {
    for (const { deployment, pod, container } of allContainers) {
      const where = `${deployment.metadata.name}/${container.name}`;
      expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
      const sc = container.securityContext;
      expect(sc?.allowPrivilegeEscalation, where).toBe(false);
      expect(sc?.capabilities?.drop, where).toContain('ALL');
      expect(sc?.readOnlyRootFilesystem, where).toBe(true);
      // Images whose USER is a name need a numeric user for runAsNonRoot to be checked.
      if (sc?.runAsUser !== undefined) expect(sc.runAsUser, where).toBeGreaterThan(0);
      expect(container.resources?.requests?.['memory'], where).toBeDefined();
      expect(container.resources?.limits?.['memory'], where).toBeDefined();
    }
  });
});

// ---- Envoy Gateway ------------------------------------------------------------------------------------

describe('Envoy Gateway policy', () => {
  type Policy = K8sObject & { spec: JsonObject };
  const policy = ofKind<Policy>(EG, 'EnvoyExtensionPolicy')[0]!;
  const extProc = (get(policy.spec, 'extProc') as Json[])[0] as JsonObject;
  const sidecar = extProcFilter(parse(read('envoy-configs/sidecar.yaml')) as Json);

  it('attaches one ext_proc to Gateway API targets in its own namespace', () => {
    expect(ofKind(EG, 'EnvoyExtensionPolicy')).toHaveLength(1);
    const targets = get(policy.spec, 'targetRefs') as JsonObject[];
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) {
      expect(t['group']).toBe('gateway.networking.k8s.io');
      expect(['Gateway', 'HTTPRoute']).toContain(t['kind']);
      expect(t['namespace']).toBeUndefined();
    }
    expect(get(policy.spec, 'extProc')).toHaveLength(1);
  });

  it('sends the side streams to the tokenwarden Service gRPC port, where tokenwarden listens', () => {
    const refs = extProc['backendRefs'] as JsonObject[];
    expect(refs).toHaveLength(1);
    const ref = refs[0]!;
    expect([ref['group'], ref['kind']]).toEqual(['', 'Service']);
    const service = named(services, ref['name'] as string, ref['namespace'] as string);
    const port = service.spec.ports.find((p) => p.port === ref['port']);
    expect(port?.name).toBe('grpc');
    const deployment = deployments.find((d) => Object.entries(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels?.[k] === v))!;
    const pod = deployment.spec.template.spec;
    const tokenwarden = podContainers(pod).find(isTokenwarden)!;
    const grpc = hostPort(effectiveConfig(pod, tokenwarden).grpc.address);
    expect(containerPort(pod, port!.targetPort)).toBe(grpc.port);
  });

  it('is allowed to refer to that Service across namespaces (ReferenceGrant)', () => {
    const ref = (extProc['backendRefs'] as JsonObject[])[0]!;
    const grant = ofKind<Policy>(EG, 'ReferenceGrant').find((g) => g.metadata.namespace === ref['namespace']);
    expect(get(grant?.spec, 'from')).toContainEqual({ group: 'gateway.envoyproxy.io', kind: 'EnvoyExtensionPolicy', namespace: policy.metadata.namespace });
    expect(get(grant?.spec, 'to')).toContainEqual({ group: '', kind: 'Service', name: ref['name'] });
  });

  it('processes like envoy-configs/sidecar.yaml: buffered request, streamed response, fail open, same timeout', () => {
    const mode = sidecar['processing_mode'] as JsonObject;
    const egBody: Record<string, string> = { BUFFERED: 'Buffered', STREAMED: 'Streamed' };
    expect(get(extProc, 'processingMode', 'request', 'body')).toBe(egBody[mode['request_body_mode'] as string]);
    expect(get(extProc, 'processingMode', 'response', 'body')).toBe(egBody[mode['response_body_mode'] as string]);
    expect(get(extProc, 'processingMode', 'allowModeOverride')).toBe(sidecar['allow_mode_override']);
    expect(extProc['failOpen']).toBe(sidecar['failure_mode_allow']);
    expect(extProc['messageTimeout']).toBe(sidecar['message_timeout']);
    expect(get(extProc, 'processingMode', 'request', 'attributes')).toEqual(sidecar['request_attributes']);
  });

  it("lets tokenwarden write its metadata namespace, within Envoy Gateway's rules", () => {
    const writable = get(extProc, 'metadata', 'writableNamespaces') as string[];
    expect(writable).toEqual(get(sidecar, 'metadata_options', 'receiving_namespaces', 'untyped'));
    expect(writable).toContain(DEFAULTS.metadata.namespace);
    expect(writable.length).toBeLessThanOrEqual(8);
    for (const ns of writable) expect(ns.startsWith('envoy.filters.http')).toBe(false);
    for (const a of get(extProc, 'processingMode', 'request', 'attributes') as string[]) {
      expect(a).toMatch(/^(connection\.|source\.|destination\.|request\.|response\.|upstream\.|xds\.route_)[a-z_1-9]*$/);
    }
  });

  it('raises the buffer limits so BUFFERED prompts and rewritten bodies fit, below the gRPC message limit', () => {
    const egress = listeners(parse(read('envoy-configs/sidecar.yaml')) as Json)[0]!;
    const vhosts = get(hcm(egress), 'route_config', 'virtual_hosts') as JsonObject[];
    const sidecarLimit = Number(vhosts.find((v) => v['name'] === 'openai')?.['per_request_buffer_limit_bytes']);
    const client = ofKind<Policy>(EG, 'ClientTrafficPolicy');
    expect(client).toHaveLength(1);
    expect(get(client[0]!.spec, 'targetRefs')).toEqual(get(policy.spec, 'targetRefs'));
    expect(client[0]!.metadata.namespace).toBe(policy.metadata.namespace);
    const listenerLimit = bytes(get(client[0]!.spec, 'connection', 'bufferLimit') as string);
    expect(listenerLimit).toBe(sidecarLimit);
    expect(listenerLimit).toBeLessThan(DEFAULTS.grpc.max_receive_message_bytes);
    expect(bytes(get(extProc, 'backendSettings', 'connection', 'bufferLimit') as string)).toBeGreaterThanOrEqual(listenerLimit);
    expect(get(extProc, 'backendSettings', 'circuitBreaker', 'maxParallelRequests')).toBeGreaterThan(1024);
  });

  it('talks HTTP/2 to tokenwarden with the stream limit and windows of envoy-configs/sidecar.yaml', () => {
    const egress = parse(read('envoy-configs/sidecar.yaml')) as Json;
    const h2 = sideStreamHttp2(egress);
    const eg = get(extProc, 'backendSettings', 'http2');
    expect(get(eg, 'maxConcurrentStreams')).toBe(get(h2, 'max_concurrent_streams'));
    expect(bytes(get(eg, 'initialStreamWindowSize') as string)).toBe(get(h2, 'initial_stream_window_size'));
    expect(bytes(get(eg, 'initialConnectionWindowSize') as string)).toBe(get(h2, 'initial_connection_window_size'));
  });
});

// ---- Dockerfile ---------------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (continuations joined, comments dropped), with their stage index. */
function dockerfile(): { args: Map<string, string>; instructions: Instruction[] } {
  const lines = read('Dockerfile').replace(/\\\n/g, ' ').split('\n');
  const args = new Map<string, string>();
  const instructions: Instruction[] = [];
  let stage = -1;
  for (const line of lines.map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = op.toUpperCase();
    if (upper === 'FROM') stage++;
    if (upper === 'ARG' && stage < 0) {
      const [name = '', value = ''] = rest.split('=');
      args.set(name, value);
    }
    instructions.push({ op: upper, args: rest, stage });
  }
  return { args, instructions };
}

describe('Dockerfile', () => {
  const { args, instructions } = dockerfile();
  const froms = instructions.filter((i) => i.op === 'FROM');
  const last = froms.length - 1;
  const inStage = (stage: number, op: string): Instruction[] => instructions.filter((i) => i.stage === stage && i.op === op);
  const json = (op: string): unknown => JSON.parse(inStage(last, op).at(-1)?.args ?? 'null');
  const image = (from: Instruction): string => from.args.split(/\s+/)[0]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args.get(name) ?? '');

  it('builds on node:20-bookworm-slim in two stages, a Node that satisfies package.json engines', () => {
    expect(froms).toHaveLength(2);
    expect(froms[0]!.args).toMatch(/ AS build$/i);
    for (const f of froms) expect(image(f)).toBe('node:20-bookworm-slim');
    expect(PACKAGE.engines.node).toMatch(/^>=20\./);
  });

  it('installs with npm ci, builds, then prunes to production dependencies', () => {
    const runs = inStage(0, 'RUN').map((r) => r.args).join('\n');
    expect(runs).toMatch(/npm ci\b/);
    expect(runs).toMatch(/npm run build\b/);
    expect(runs).toMatch(/npm prune --omit=dev\b/);
  });

  it('skips install scripts only where no runtime dependency needs one', () => {
    if (!inStage(0, 'RUN').some((r) => r.args.includes('--ignore-scripts'))) return;
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript === true && p.dev !== true).map(([name]) => name);
    // protobufjs' postinstall only prints a warning about version schemes.
    expect(withScripts).toEqual(['node_modules/protobufjs']);
  });

  it('runs the package bin as a numeric non-root user, `serve` by default, exposing the default ports', () => {
    expect(json('ENTRYPOINT')).toEqual(['node', path.normalize(PACKAGE.bin['tokenwarden']!)]);
    expect(json('CMD')).toEqual(['serve']);
    const exposed = inStage(last, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map(Number).sort();
    expect(exposed).toEqual([hostPort(DEFAULTS.grpc.address).port, hostPort(DEFAULTS.admin.address).port].sort());
    const user = /^(\d+)(?::(\d+))?$/.exec(inStage(last, 'USER').at(-1)?.args ?? '');
    expect(Number(user?.[1])).toBeGreaterThan(0);
    // The Kubernetes manifests run tokenwarden as the same user.
    for (const { container } of allContainers.filter((x) => isTokenwarden(x.container))) {
      expect(container.securityContext?.runAsUser).toBe(Number(user?.[1]));
    }
  });

  it('ships what the server reads at run time: package.json, dist, node_modules, proto', () => {
    const buildDir = inStage(0, 'WORKDIR').at(-1)?.args ?? '';
    expect(inStage(last, 'WORKDIR').at(-1)?.args).toBe(buildDir);
    // Where each copy lands, relative to the working directory (a destination ending in / is a directory).
    const landed = inStage(last, 'COPY')
      .map((c) => c.args.split(/\s+/))
      .filter((c) => c[0] === '--from=build')
      .map(([, from = '', to = '']) => ({
        from: path.posix.relative(buildDir, from),
        at: path.posix.normalize(to.endsWith('/') ? path.posix.join(to, path.posix.basename(from)) : to),
      }));
    // Same place as in the build stage: the server finds them relative to dist/.
    for (const item of ['package.json', 'dist', 'node_modules', 'proto']) expect(landed, item).toContainEqual({ from: item, at: item });
    // PROTO_DIR is ../../proto/envoy-wire relative to dist/extproc/.
    expect(read('src/extproc/protocol.ts')).toContain("new URL('../../proto/envoy-wire/', import.meta.url)");
  });

  it('copies from the build context only files that exist and that .dockerignore lets through', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = new Set(ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')));
    const sources = inStage(0, 'COPY')
      .map((c) => c.args.split(/\s+/))
      .filter((c) => !c[0]!.startsWith('--from'))
      .flatMap((c) => c.slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(fs.existsSync(path.join(ROOT, source)), source).toBe(true);
      expect(allowed.has(source.replace(/\/$/, '')), `${source} is excluded by .dockerignore`).toBe(true);
    }
    for (const secretish of ['node_modules', 'dist', '.git', 'tokenwarden.yaml']) expect(allowed.has(secretish), secretish).toBe(false);
  });
});
