/**
 * `tokenwarden serve --workers N`: one primary process forks N workers with node:cluster. Every
 * worker runs the ordinary serve path (createServer) on the configured gRPC address; node:cluster
 * binds it once in the primary and hands each new connection to a worker in turn, so Envoy's
 * connections (and the streams multiplexed on them) spread over the cores.
 *
 * The admin address is served by the primary, because Prometheus must see one consistent set of
 * counters: /metrics is the sum over the workers (prom-client's AggregatorRegistry); every other
 * path is proxied to the workers' own admin servers, which share one private loopback port (the
 * health checks, inventory and budgets API read the shared store, so any worker can answer).
 * OTLP export is not aggregated: each worker pushes its own metrics and spans (a span can only come
 * from the worker that served the exchange) under its own service.instance.id (workerIndex()).
 *
 * Lifecycle: SIGTERM/SIGINT on the primary asks every worker to shut down gracefully (each flushes
 * its inventory) and exits 0 once all did; a second signal kills them. A worker that dies before it
 * is ready fails the start; one that crashes later is restarted after a growing delay, and the
 * primary gives up (exit 1) when a worker keeps crashing.
 */
import cluster, { type Worker } from 'node:cluster';
import { request, createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import { adminTokens, authenticate, type NamedToken } from './admin/auth.js';
import { parseAddress } from './config/schema.js';
import type { TokenwardenConfig } from './config/types.js';
import type { Logger } from './log.js';
import type { StartedAddresses, TokenwardenServer } from './server.js';
import { WORKER_ADMIN_ENV, WORKER_INDEX_ENV } from './worker-env.js';

export { isWorker, workerAdminAddress, workerIndex } from './worker-env.js';


const READY = 'tokenwarden:ready';
const STOP = 'tokenwarden:stop';

interface ReadyMessage {
  type: typeof READY;
  grpcAddress: string;
  adminAddress: string | null;
}

/** Crash-restart limits: how long a worker must stay up before its earlier crashes are forgiven, etc. */
export interface RestartPolicy {
  windowMs: number;
  maxCrashes: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { windowMs: 60_000, maxCrashes: 5, baseDelayMs: 500, maxDelayMs: 10_000 };

/**
 * How long to wait before restarting a worker slot whose crashes happened at `crashes` (ms epoch,
 * the latest included), or null to give up: more than `maxCrashes` within `windowMs` is a crash
 * loop that a restart will not fix. The delay doubles with each recent crash.
 */
export function restartDelay(crashes: readonly number[], now: number, policy: RestartPolicy = DEFAULT_RESTART_POLICY): number | null {
  const recent = crashes.filter((t) => now - t < policy.windowMs).length;
  if (recent > policy.maxCrashes) return null;
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, recent - 1));
}


/** In a worker: resolves when the primary asks it to shut down, or disappears. */
export function stopRequested(): Promise<string> {
  return new Promise((resolve) => {
    process.on('message', (m: unknown) => {
      if ((m as { type?: unknown } | null)?.type === STOP) resolve('shutdown request from the primary');
    });
    process.once('disconnect', () => resolve('primary process gone'));
  });
}

/** In a worker, once started: exposes its metrics to the primary's aggregation and reports ready. */
export function announceReady(server: TokenwardenServer, ready: StartedAddresses): void {
  AggregatorRegistry.setRegistries([server.metrics.registry]);
  // Constructing one is what installs prom-client's listener that answers the primary's requests.
  new AggregatorRegistry();
  const message: ReadyMessage = { type: READY, grpcAddress: ready.grpcAddress, adminAddress: ready.adminAddress };
  process.send?.(message);
}

interface Slot {
  index: number;
  worker: Worker | null;
  ready: boolean;
  crashes: number[];
}

/**
 * The primary: forks `workers` copies of this command, serves the admin front, supervises. Resolves
 * with the process exit code.
 */
export async function runPrimary(opts: { workers: number; config: TokenwardenConfig; log: Logger; policy?: RestartPolicy }): Promise<number> {
  const { workers, config, log } = opts;
  const policy = opts.policy ?? DEFAULT_RESTART_POLICY;
  if (config.store.type === 'memory') {
    log.warn(
      'with --workers and the memory store, each worker keeps its own inventory and budget counters; use store.type: redis to share them',
      { workers },
    );
  }
  const slots: Slot[] = Array.from({ length: workers }, (_, i) => ({ index: i + 1, worker: null, ready: false, crashes: [] }));
  let stopping = false;
  // The workers' admin servers all listen on this one loopback port: node:cluster binds it once in
  // this process and spreads the proxied requests over them.
  const privateAdmin = config.admin.address === '' ? '' : `127.0.0.1:${await freeLoopbackPort()}`;
  let grpcAddress = config.grpc.address;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));
  let allReady: () => void = () => {};
  const started = new Promise<void>((resolve) => (allReady = resolve));

  const live = (): Worker[] => slots.flatMap((s) => (s.worker ? [s.worker] : []));
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const w of live()) w.send({ type: STOP });
    const check = (): void => {
      if (live().length === 0) finish(code);
    };
    check();
    cluster.on('exit', check);
  };

  const fork = (slot: Slot): void => {
    const env = { [WORKER_INDEX_ENV]: String(slot.index), [WORKER_ADMIN_ENV]: privateAdmin };
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (m: unknown) => {
      const msg = m as Partial<ReadyMessage> | null;
      if (msg?.type !== READY) return;
      slot.ready = true;
      log.info('worker ready', { worker: slot.index, pid: worker.process.pid });
      grpcAddress = msg.grpcAddress ?? grpcAddress;
      if (slots.every((s) => s.ready)) allReady();
    });
    worker.on('exit', (code, signal) => {
      slot.worker = null;
      const wasReady = slot.ready;
      slot.ready = false;
      if (stopping) return;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!wasReady) {
        // A worker that cannot start (bad config, address in use) will not start on a retry either.
        log.error('worker exited before it was ready; stopping', { worker: slot.index, exit: how });
        stopAll(code === 0 || code === null ? 1 : code);
        return;
      }
      const now = Date.now();
      slot.crashes.push(now);
      slot.crashes = slot.crashes.filter((t) => now - t < policy.windowMs);
      const delay = restartDelay(slot.crashes, now, policy);
      if (delay === null) {
        log.error('worker keeps crashing; stopping', { worker: slot.index, exit: how, crashes: slot.crashes.length });
        stopAll(1);
        return;
      }
      log.error('worker exited unexpectedly; restarting', { worker: slot.index, exit: how, delay_ms: delay });
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, delay);
    });
  };

  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      process.stderr.write(`tokenwarden: ${signal} received again; killing the workers\n`);
      for (const w of live()) w.process.kill('SIGKILL');
      return;
    }
    signalled = true;
    process.stderr.write(`tokenwarden: ${signal} received; shutting down ${live().length} workers (grace ${config.grpc.shutdown_grace_ms} ms)\n`);
    stopAll(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Each worker reloads budgets itself; the primary only passes the signal on.
  process.on('SIGHUP', () => {
    for (const w of live()) w.process.kill('SIGHUP');
  });

  for (const slot of slots) fork(slot);
  const outcome = await Promise.race([started.then(() => 'started' as const), finished]);
  if (outcome !== 'started') return outcome;

  let front: Server | null = null;
  let frontAddress: string | null = null;
  if (privateAdmin !== '') {
    try {
      front = adminFront(adminTokens(config.admin.token, config.admin.tokens), privateAdmin, log);
      frontAddress = await listen(front, config.admin.address);
    } catch (error) {
      process.stderr.write(`tokenwarden: cannot listen on ${config.admin.address}: ${error instanceof Error ? error.message : String(error)}\n`);
      stopAll(1);
      return finished;
    }
  }
  process.stdout.write(`tokenwarden ready grpc=${grpcAddress} admin=${frontAddress ?? 'disabled'} workers=${workers}\n`);
  const code = await finished;
  if (front) await new Promise<void>((resolve) => front.close(() => resolve()));
  return code;
}

/** A port nothing listens on now (the admin config does not accept port 0). */
async function freeLoopbackPort(): Promise<number> {
  const probe = createHttpServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function listen(server: Server, address: string): Promise<string> {
  const parsed = parseAddress(address, false);
  if (typeof parsed === 'string' || parsed.kind !== 'tcp') throw new Error(`invalid admin address ${address}`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(parsed.port, parsed.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** The primary's admin server: aggregated /metrics here, everything else from a worker. */
function adminFront(tokens: readonly NamedToken[], workerAdmin: string, log: Logger): Server {
  const aggregator = new AggregatorRegistry();
  const target = parseAddress(workerAdmin, false);
  if (typeof target === 'string' || target.kind !== 'tcp') throw new Error(`invalid worker admin address ${workerAdmin}`);
  return createHttpServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://front').pathname;
    if (path !== '/metrics') {
      proxy(req, res, target.host, target.port);
      return;
    }
    // Any configured token (viewer or admin) may read metrics, as on a worker's own admin server.
    if (tokens.length > 0 && authenticate(req.headers.authorization, tokens) === null) {
      const presented = req.headers.authorization !== undefined;
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': presented ? 'Bearer realm="tokenwarden", error="invalid_token"' : 'Bearer realm="tokenwarden"',
      });
      res.end(JSON.stringify({ error: { code: 'unauthorized', message: presented ? 'invalid bearer token' : 'a bearer token is required', parameter: null } }));
      return;
    }
    aggregator.clusterMetrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': aggregator.contentType });
        res.end(text);
      },
      (error: unknown) => {
        log.warn('cannot collect metrics from the workers', { error: error instanceof Error ? error.message : String(error) });
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: 'metrics could not be collected from every worker', parameter: null } }));
      },
    );
  });
}

function proxy(req: IncomingMessage, res: ServerResponse, host: string, port: number): void {
  const upstream = request({ host, port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'bad_gateway', message: 'no worker answered', parameter: null } }));
  });
  req.pipe(upstream);
}
