/**
 * The capacity bench (issue 13, parts 3 and 4): what one exchange costs Redis and the sidecar, how
 * many budget admissions one Redis shard carries, 3 sidecars on a Redis Cluster, and `serve
 * --workers` 1 against 2. About 3 minutes; --quick about 30 s (a smoke test: fewer, shorter runs).
 *
 *   npx tsx bench/capacity.ts [--quick] [--only accounting,ledger,cluster,workers] [--budgets 1,3,5]
 *       [--rps 200] [--rps-each 100] [--sidecars 3] [--duration 3s] [--accounting-budgets 0,1]
 *       [--deadline-ms 50] [--clients 3] [--step 1500ms] [--sweep-clients 1,3,10,30,100]
 *       [--out .bench-out/capacity.json]
 *
 * Sections (each starts its own redis-server or cluster, and real `tokenwarden serve` processes:
 * dist/cli.js when it is newer than src/, else the sources through tsx):
 *
 * - accounting: 1 sidecar with 0 (metering only), 1, 3 and 5 nested enforce budgets at --rps
 *   exchanges/s (the cluster section: --sidecars sidecars at --rps-each each); the bench driver
 *   (bench/driver, in this process) in an open loop (the `chat` exchange: 2 KB prompt, one JSON
 *   answer), after a closed-loop warm-up. Around the run: Redis `INFO stats/cpu/clients/commandstats`
 *   (commands, CPU), the sidecars' utime+stime from /proc, their /metrics (inventory flushes); an
 *   idle second before it gives the per-second costs that are subtracted. Then a short second pass
 *   under MONITOR attributes every client command to tokenwarden's scripts (by sha) with the commands
 *   each ran inside Redis: reservations and settlements per exchange (the request path), inventory
 *   batches (off it). MONITOR costs Redis CPU, so CPU comes from the first pass only.
 * - ledger: --clients RedisLedger clients driving reservations + settlements straight at one
 *   redis-server, open loop, at growing rates until the reservation's p99 reaches --deadline-ms
 *   (governance.ledger_timeout_ms, default 50), an error occurs or the rate is not served; per
 *   budgets-per-request count (--budgets). Then one rate through --sweep-clients connections.
 * - cluster: --sidecars sidecars with 3 budgets against a local 3-master Redis Cluster
 *   (test/support/redis-cluster.ts): the same accounting, per node.
 * - workers: `serve --workers 1` and `--workers 2` (Redis store, metered chat, no budget), closed
 *   loop, 4 driver connections: exchanges/s, CPU, Redis connections, flushes.
 *
 * On a 2-core machine everything (Redis, sidecars, the driver, the ledger load generator) shares the
 * two cores: the figures are per-exchange costs and a lower bound on capacity, not a ceiling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import { defaultConfig } from '../src/config/types.js';
import * as ledgerRedis from '../src/ledger/redis.js';
import * as ledgerScripts from '../src/ledger/script.js';
import * as inventoryScripts from '../src/inventory/redis-script.js';
import { startRedisCluster, type RedisCluster } from '../test/support/redis-cluster.js';
import { redisCommand } from '../test/support/redis-process.js';
import { startRedis } from '../test/support/redis-server.js';
import { freePort } from '../test/support/sidecar-process.js';
import { clientsSweep, ledgerCapacity, type ClientsPoint } from './capacity-ledger.js';
import {
  admissionsPerCore,
  capacityOf,
  coresAt,
  diffSnapshots,
  fmt,
  KEEP_UP,
  nestedBudgetsYaml,
  parseInfo,
  procStatCpuUs,
  redisLoad,
  scriptSha,
  scriptUsec,
  snapshotOf,
  table,
  tallyMonitor,
  usPerAdmission,
  workloadCommands,
  type ExchangeCosts,
  type Load,
  type MonitorTally,
  type RateStep,
  type RedisDelta,
  type RedisSnapshot,
  type SearchOptions,
} from './capacity-model.js';
import { parseDuration } from './driver/args.js';
import { runLoad, type LoadOptions } from './driver/load.js';
import type { BenchReport } from './driver/report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECTIONS = ['accounting', 'ledger', 'cluster', 'workers'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  quick: boolean;
  only: Set<Section>;
  budgets: number[];
  /** Exchanges/s per sidecar in the 1-sidecar runs... */
  rps: number;
  /** ...and per sidecar in the --sidecars runs. */
  rpsEach: number;
  durationMs: number;
  sidecars: number;
  deadlineMs: number;
  clients: number;
  stepMs: number;
  search: SearchOptions;
  /** Ledger clients (connections) compared at one fixed rate. */
  sweepClients: number[];
  /** Exchanges per sidecar in the MONITOR pass. */
  monitorCount: number;
  workersDurationMs: number;
  /** Only these accounting runs (1 sidecar each), instead of the default set. */
  accountingBudgets: number[] | null;
  /** After a run, wait this long for the last inventory batch (store.flush_interval_ms is 1 s) and the settlements. */
  flushWaitMs: number;
  /** Exchanges per sidecar before measuring (closed loop): V8 needs a few thousand calls to optimise the hot paths. */
  warmup: number;
  /** The idle window before each accounting run (Redis's and the sidecars' own per-second costs). */
  idleMs: number;
  out: string;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      budgets: { type: 'string' },
      rps: { type: 'string', default: '200' },
      'rps-each': { type: 'string', default: '100' },
      'sweep-clients': { type: 'string' },
      duration: { type: 'string' },
      sidecars: { type: 'string', default: '3' },
      'deadline-ms': { type: 'string', default: '50' },
      clients: { type: 'string', default: '3' },
      step: { type: 'string' },
      'accounting-budgets': { type: 'string' },
      out: { type: 'string', default: '.bench-out/capacity.json' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const only = new Set((values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()) as Section[]);
  for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`--only: unknown section "${s}"; known: ${SECTIONS.join(', ')}`);
  const budgets = (values.budgets ?? (quick ? '1,5' : '1,3,5')).split(',').map(Number);
  const deadlineMs = Number(values['deadline-ms']);
  return {
    quick,
    only,
    budgets,
    rps: Number(values.rps),
    rpsEach: Number(values['rps-each']),
    sweepClients: (values['sweep-clients'] ?? (quick ? '' : '1,3,10,30,100')).split(',').filter((x) => x !== '').map(Number),
    durationMs: parseDuration(values.duration ?? (quick ? '1s' : '3s')),
    sidecars: Number(values.sidecars),
    deadlineMs,
    clients: Number(values.clients),
    stepMs: parseDuration(values.step ?? (quick ? '500ms' : '1500ms')),
    search: quick
      ? { start: 1_000, factor: 3, refinements: 1, max: 100_000, deadlineMs }
      : { start: 1_000, factor: 1.6, refinements: 2, max: 100_000, deadlineMs },
    monitorCount: quick ? 60 : 150,
    workersDurationMs: quick ? 800 : 4_000,
    accountingBudgets: values['accounting-budgets'] === undefined ? null : values['accounting-budgets'].split(',').map(Number),
    flushWaitMs: quick ? 500 : 1_300,
    warmup: quick ? 200 : 1_500,
    idleMs: quick ? 300 : 1_000,
    out: path.resolve(ROOT, values.out),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * When the ledger sends every settlement a second time some seconds later (RESEND_FINALISE_MS, a
 * no-op in Redis that survives a failover), how long after: the accounting then waits that long
 * after the warm-up, so that the warm-up's second sends do not land in the measured pass. Null for a
 * ledger that sends each settlement once.
 */
const RESEND_MS: number | null = typeof (ledgerRedis as Record<string, unknown>).RESEND_FINALISE_MS === 'number' ? ((ledgerRedis as Record<string, unknown>).RESEND_FINALISE_MS as number) : null;
const say = (s = ''): void => void process.stdout.write(`${s}\n`);
const since = (t: number): string => `${fmt((performance.now() - t) / 1e3, 1)} s`;

// ---------------------------------------------------------------------------------------------
// tokenwarden processes

/** dist/cli.js when it is newer than every file under src/, else the sources through tsx. */
function serveEntry(): string[] {
  const dist = path.join(ROOT, 'dist/cli.js');
  if (!existsSync(dist)) return ['--import', 'tsx', 'src/cli.ts'];
  const built = statSync(dist).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs)));
  return newest(path.join(ROOT, 'src')) > built ? ['--import', 'tsx', 'src/cli.ts'] : ['dist/cli.js'];
}

interface Tokenwarden {
  child: ChildProcess;
  pid: number;
  grpc: string;
  admin: string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

async function startTokenwarden(entry: string[], configFile: string, workers = 1): Promise<Tokenwarden> {
  const args = [...entry, 'serve', '--config', configFile, '--no-watch', ...(workers > 1 ? ['--workers', String(workers)] : [])];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const { grpc, admin } = await new Promise<{ grpc: string; admin: string }>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      const m = / ready grpc=(\S+) admin=(\S+)/.exec(stdout);
      if (m) resolve({ grpc: m[1]!, admin: m[2]! });
    });
    void exited.then(() => reject(new Error(`tokenwarden exited before ready:\n${stderr}`)));
  });
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGTERM' && code !== 0) process.stderr.write(`tokenwarden (pid ${child.pid}) exited ${code ?? signal}:\n${stderr.slice(-2000)}\n`);
  });
  return {
    child,
    pid: child.pid!,
    grpc,
    admin,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function sidecarConfig(dir: string, name: string, grpcPort: number, adminPort: number, storeYaml: string, budgets: number): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `grpc: { address: "127.0.0.1:${grpcPort}" }`,
      `admin: { address: "127.0.0.1:${adminPort}" }`,
      `store: ${storeYaml}`,
      'consumer: { fingerprint_secret: bench }',
      'logging: { level: warn }',
      ...(budgets > 0 ? [nestedBudgetsYaml(budgets)] : []),
      '',
    ].join('\n'),
  );
  return file;
}

/** utime + stime of the process and its descendants (the --workers primary and its workers), µs. */
function treeCpuUs(pid: number): number {
  let total = 0;
  try {
    total += procStatCpuUs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) total += treeCpuUs(Number(child));
    }
  } catch {
    // The process (or a thread) ended meanwhile.
  }
  return total;
}

/** Sum of a metric's samples on a sidecar's /metrics (`name` exactly, any labels). */
async function metricSum(admin: string, name: string): Promise<number> {
  let text: string;
  try {
    text = await (await fetch(`http://${admin}/metrics`)).text();
  } catch (e) {
    throw new Error(`GET http://${admin}/metrics: ${(e as Error).message} (${String((e as Error).cause ?? '')})`);
  }
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

interface SidecarCounters {
  cpuUs: number;
  flushes: number;
  decisions: number;
}

async function sidecarCounters(tw: Tokenwarden): Promise<SidecarCounters> {
  const [flushes, decisions] = await Promise.all([
    metricSum(tw.admin, 'tokenwarden_store_flush_duration_seconds_count'),
    metricSum(tw.admin, 'tokenwarden_budget_decisions_total'),
  ]);
  return { cpuUs: treeCpuUs(tw.pid), flushes, decisions };
}

async function sumCounters(tws: readonly Tokenwarden[]): Promise<SidecarCounters> {
  const all = await Promise.all(tws.map(sidecarCounters));
  return all.reduce((a, b) => ({ cpuUs: a.cpuUs + b.cpuUs, flushes: a.flushes + b.flushes, decisions: a.decisions + b.decisions }), { cpuUs: 0, flushes: 0, decisions: 0 });
}

// ---------------------------------------------------------------------------------------------
// Redis

interface RedisNode {
  name: string;
  port: number;
  role: 'master' | 'replica';
}

interface RedisTarget {
  kind: 'standalone' | 'cluster';
  storeYaml: string;
  nodes: RedisNode[];
  close(): Promise<void>;
}

async function standaloneTarget(): Promise<RedisTarget> {
  const redis = await startRedis();
  return { kind: 'standalone', storeYaml: `{ type: redis, redis: { url: "${redis.url}" } }`, nodes: [{ name: 'redis', port: redis.port, role: 'master' }], close: () => redis.close() };
}

async function clusterTarget(): Promise<RedisTarget> {
  const cluster: RedisCluster = await startRedisCluster();
  const masters = await cluster.masters();
  const masterPorts = new Set(masters.map((m) => m.node.port));
  const nodes: RedisNode[] = [
    ...masters.map((m, i): RedisNode => ({ name: `master ${i} (slots ${m.slots.map(([a, b]) => `${a}-${b}`).join(',')})`, port: m.node.port, role: 'master' })),
    ...cluster.processes.filter((p) => !masterPorts.has(p.port)).map((p, i): RedisNode => ({ name: `replica ${i}`, port: p.port, role: 'replica' })),
  ];
  return { kind: 'cluster', storeYaml: `{ type: redis, redis: { cluster_nodes: [${cluster.nodes.map((n) => `"${n}"`).join(', ')}] } }`, nodes, close: () => cluster.close() };
}

async function redisSnapshot(port: number): Promise<RedisSnapshot> {
  return snapshotOf(parseInfo(String(await redisCommand(port, ['INFO', 'stats', 'cpu', 'clients', 'commandstats']))));
}

const snapshotAll = (nodes: readonly RedisNode[]): Promise<RedisSnapshot[]> => Promise.all(nodes.map((n) => redisSnapshot(n.port)));

/** Every Lua script tokenwarden defines (exported `*_LUA` strings of the store modules), by sha. */
function scriptNames(): Map<string, string> {
  const names = new Map<string, string>();
  for (const mod of [ledgerScripts, inventoryScripts] as Record<string, unknown>[]) {
    for (const [name, value] of Object.entries(mod)) if (name.endsWith('_LUA') && typeof value === 'string') names.set(scriptSha(value), name);
  }
  return names;
}

/** MONITOR on a node until stop(): the lines it printed. */
function monitor(port: number): Promise<{ stop(): Promise<string[]> }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let text = '';
    let started = false;
    socket.setEncoding('utf8');
    socket.on('error', (e) => (started ? undefined : reject(e)));
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!started && text.startsWith('+OK\r\n')) {
        started = true;
        text = text.slice(5);
        resolve({
          stop: () =>
            new Promise((done) => {
              socket.once('close', () => done(text.split('\r\n')));
              socket.end();
              socket.destroy();
            }),
        });
      }
    });
    socket.write('*1\r\n$7\r\nMONITOR\r\n');
  });
}

// ---------------------------------------------------------------------------------------------
// Accounting

interface AccountingSpec {
  label: string;
  sidecars: number;
  budgets: number;
  /** Exchanges/s per sidecar. */
  rps: number;
}

interface NodeFigures {
  name: string;
  role: RedisNode['role'];
  delta: RedisDelta;
  /** Workload commands (the bench's own INFO taken out). */
  commands: number;
  clients: number;
}

interface AccountingResult extends AccountingSpec {
  target: RedisTarget['kind'];
  exchanges: number;
  errors: number;
  /** The measured pass: the load, then the wait for the last batch (CPU and commands are over this). */
  seconds: number;
  /** The load alone (exchanges/s). */
  loadSeconds: number;
  p99Ms: number;
  nodes: NodeFigures[];
  /** Per-second costs with nothing to do: Redis CPU per node (in `nodes` order), commands, the sidecars' CPU. */
  idle: { redisCpuUsPerS: number[]; commandsPerS: number; sidecarCpuUsPerS: number };
  sidecar: SidecarCounters;
  monitor: { exchanges: number; flushes: number; decisions: number; tally: MonitorTally };
}

const loadOptions = (target: string, over: Partial<LoadOptions>): LoadOptions => ({
  target,
  scenario: 'chat',
  concurrency: 256,
  rps: 0,
  durationMs: 0,
  count: 0,
  warmup: 0,
  connections: 1,
  timeoutMs: 10_000,
  close: 'envoy',
  ...over,
});

const failures = (r: BenchReport): number => Object.values(r.errorDistribution).reduce((a, b) => a + b, 0);

async function accounting(spec: AccountingSpec, target: RedisTarget, entry: string[], o: Options, dir: string): Promise<AccountingResult> {
  const tws: Tokenwarden[] = [];
  try {
    const files: string[] = [];
    for (let i = 0; i < spec.sidecars; i++) files.push(sidecarConfig(dir, `${spec.label}-${i}`, await freePort(), await freePort(), target.storeYaml, spec.budgets));
    const startedTws = await Promise.allSettled(files.map((f) => startTokenwarden(entry, f)));
    for (const s of startedTws) if (s.status === 'fulfilled') tws.push(s.value);
    const failedStart = startedTws.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failedStart) throw failedStart.reason;
    // Where the ledger sends every settlement again RESEND_MS later, the MONITOR window waits for its
    // own exchanges' second sends and no pass starts while an earlier one's are due (--quick, a smoke
    // test, does not wait for them).
    const settleWaitMs = Math.max(o.flushWaitMs, RESEND_MS === null || o.quick ? 0 : RESEND_MS + 700);

    // Warm-up (JIT, tokenizer, scripts loaded into Redis), then let its last batch go out.
    await Promise.all(tws.map((tw) => runLoad(loadOptions(tw.grpc, { concurrency: 8, count: o.warmup }))));
    await sleep(settleWaitMs);

    // The MONITOR pass: which commands, from which script.
    const monitors = await Promise.all(target.nodes.filter((n) => n.role === 'master').map((n) => monitor(n.port)));
    const m0 = await sumCounters(tws);
    const monitored = await Promise.all(tws.map((tw) => runLoad(loadOptions(tw.grpc, { rps: spec.rps, count: o.monitorCount }))));
    await sleep(settleWaitMs);
    const m1 = await sumCounters(tws);
    const lines = (await Promise.all(monitors.map((m) => m.stop()))).flat();

    // Idle: what Redis and the sidecars do with nothing to do.
    const idle0 = await snapshotAll(target.nodes);
    const idleCpu0 = tws.reduce((a, tw) => a + treeCpuUs(tw.pid), 0);
    const idleStart = performance.now();
    await sleep(o.idleMs);
    const idleCpu1 = tws.reduce((a, tw) => a + treeCpuUs(tw.pid), 0);
    const idle1 = await snapshotAll(target.nodes);
    const idleS = (performance.now() - idleStart) / 1e3;
    const idleDeltas = target.nodes.map((_, i) => diffSnapshots(idle0[i]!, idle1[i]!));

    // The measured pass (CPU, commands): the load, then its last batch. Second sends of its
    // settlements, if any, come after it.
    const redis0 = await snapshotAll(target.nodes);
    const sc0 = await sumCounters(tws);
    const t0 = performance.now();
    const reports = await Promise.all(tws.map((tw) => runLoad(loadOptions(tw.grpc, { rps: spec.rps, durationMs: o.durationMs }))));
    const loadSeconds = (performance.now() - t0) / 1e3;
    await sleep(o.flushWaitMs);
    const seconds = (performance.now() - t0) / 1e3;
    const redis1 = await snapshotAll(target.nodes);
    const sc1 = await sumCounters(tws);

    const errors = reports.reduce((a, r) => a + failures(r), 0);
    const p99 = Math.max(...reports.map((r) => r.latencyDistribution.find((l) => l.percentage === 99)?.latency ?? 0)) / 1e6;
    return {
      ...spec,
      target: target.kind,
      exchanges: reports.reduce((a, r) => a + r.count, 0) - errors,
      errors,
      seconds,
      loadSeconds,
      p99Ms: p99,
      nodes: target.nodes.map((n, i) => {
        const delta = diffSnapshots(redis0[i]!, redis1[i]!);
        return { name: n.name, role: n.role, delta, commands: workloadCommands(delta), clients: redis1[i]!.clients - 1 };
      }),
      idle: {
        redisCpuUsPerS: idleDeltas.map((d) => d.cpuUs / idleS),
        commandsPerS: idleDeltas.reduce((a, d) => a + workloadCommands(d), 0) / idleS,
        sidecarCpuUsPerS: (idleCpu1 - idleCpu0) / idleS,
      },
      sidecar: { cpuUs: sc1.cpuUs - sc0.cpuUs, flushes: sc1.flushes - sc0.flushes, decisions: sc1.decisions - sc0.decisions },
      monitor: {
        exchanges: monitored.reduce((a, r) => a + r.count - failures(r), 0),
        flushes: m1.flushes - m0.flushes,
        decisions: m1.decisions - m0.decisions,
        tally: tallyMonitor(lines, scriptNames()),
      },
    };
  } finally {
    await Promise.all(tws.map((tw) => tw.stop()));
  }
}

const REQUEST_PATH_SCRIPTS = ['RESERVE_LUA', 'FINALISE_LUA'];
/** The ledger's second sends (and background retries), many settlements per call. */
const LEDGER_BACKGROUND_SCRIPTS = ['REFINALISE_LUA'];

/** Per-exchange figures of an accounting run. */
function perExchange(r: AccountingResult) {
  const n = Math.max(1, r.exchanges);
  const m = Math.max(1, r.monitor.exchanges);
  const t = r.monitor.tally.scripts;
  const sum = (names: string[], f: 'calls' | 'inner' | 'atOnce' | 'atOnceInner'): number => names.reduce((a, k) => a + (t[k]?.[f] ?? 0), 0);
  const inventoryNames = Object.keys(t).filter((k) => !REQUEST_PATH_SCRIPTS.includes(k) && !LEDGER_BACKGROUND_SCRIPTS.includes(k));
  // A flush is one batch script per inventory shard it touches (one without shards).
  const batches = sum(inventoryNames, 'calls');
  const flushesSeen = r.monitor.flushes > 0 ? r.monitor.flushes : batches;
  const callsPerFlush = flushesSeen > 0 ? batches / flushesSeen : 0;
  const commandsPerFlush = flushesSeen > 0 ? (batches + sum(inventoryNames, 'inner')) / flushesSeen : 0;
  const masterIndexes = r.nodes.flatMap((x, i) => (x.role === 'master' ? [i] : []));
  const masters = masterIndexes.map((i) => r.nodes[i]!);
  const redisCpuUs = masters.reduce((a, x) => a + x.delta.cpuUs, 0);
  const commands = masters.reduce((a, x) => a + x.commands, 0);
  // Redis's fixed per-second costs (serverCron, the bench's INFO) are not the exchanges'.
  const idleCpuUs = masterIndexes.reduce((a, i) => a + (r.idle.redisCpuUsPerS[i] ?? 0), 0) * r.seconds;
  return {
    reserveCalls: (t.RESERVE_LUA?.calls ?? 0) / m,
    finaliseCalls: (t.FINALISE_LUA?.calls ?? 0) / m,
    /** Second-send calls seen in the MONITOR window, each carrying many settlements (window-dependent). */
    finaliseRepeats: sum(LEDGER_BACKGROUND_SCRIPTS, 'calls') / m,
    requestPathCommands: (sum(REQUEST_PATH_SCRIPTS, 'calls') + sum(REQUEST_PATH_SCRIPTS, 'inner')) / m,
    // Flushes over the measured pass (the sidecars' metrics), per exchange; their calls and commands from MONITOR.
    inventoryCalls: (r.sidecar.flushes * callsPerFlush) / n,
    inventoryCommands: (r.sidecar.flushes * commandsPerFlush) / n,
    callsPerFlush,
    commandsPerFlush,
    otherClientCommands: Object.values(r.monitor.tally.other).reduce((a, b) => a + b, 0) / m,
    commands: commands / n,
    redisCpuUs: Math.max(0, redisCpuUs - idleCpuUs) / n,
    /**
     * Redis's time inside scripts (commandstats usec: wall time, so it exceeds the CPU when Redis is
     * preempted mid-script on a busy machine); on a quiet one the rest of the CPU is reading, parsing
     * and answering commands.
     */
    scriptUs: masters.reduce((a, x) => a + scriptUsec(x.delta), 0) / n,
    redisCpuUsRaw: redisCpuUs / n,
    sidecarCpuUs: Math.max(0, r.sidecar.cpuUs - r.idle.sidecarCpuUsPerS * r.seconds) / n,
    sidecarCpuUsRaw: r.sidecar.cpuUs / n,
    flushesPerSecondPerSidecar: r.sidecar.flushes / r.seconds / r.sidecars,
    rate: r.exchanges / r.loadSeconds,
  };
}

function printAccounting(results: readonly AccountingResult[]): void {
  say('\nPer exchange (open loop; Redis and sidecar CPU with their idle rates subtracted; script calls and commands from the MONITOR pass):');
  const rows = [
    ['run', 'target', 'ex/s', 'p99 ms', 'reserve', 'settle', 'again', 'ledger cmds', 'inv calls', 'inv cmds', 'other', 'cmds (INFO)', 'Redis µs', 'script wall µs', 'sidecar µs', 'flush/s/sc', 'calls/flush', 'cmds/flush', 'errors'],
  ];
  for (const r of results) {
    const p = perExchange(r);
    rows.push([
      r.label,
      r.target,
      fmt(p.rate, 0),
      fmt(r.p99Ms),
      fmt(p.reserveCalls),
      fmt(p.finaliseCalls),
      fmt(p.finaliseRepeats),
      fmt(p.requestPathCommands, 1),
      fmt(p.inventoryCalls, 3),
      fmt(p.inventoryCommands, 2),
      fmt(p.otherClientCommands, 3),
      fmt(p.commands, 1),
      fmt(p.redisCpuUs, 0),
      fmt(p.scriptUs, 0),
      fmt(p.sidecarCpuUs, 0),
      fmt(p.flushesPerSecondPerSidecar, 2),
      fmt(p.callsPerFlush, 1),
      fmt(p.commandsPerFlush, 0),
      String(r.errors),
    ]);
  }
  say(table(rows));
  for (const r of results) {
    if (r.target !== 'cluster' && r.nodes.length === 1) continue;
    const n = Math.max(1, r.exchanges);
    say(`\n${r.label}, per node, per exchange (${fmt(r.exchanges, 0)} exchanges; CPU with each node's idle rate included):`);
    say(
      table([
        ['node', 'commands/ex', 'CPU µs/ex', 'connections', 'top commands'],
        ...r.nodes.map((x) => [
          x.name,
          fmt(x.commands / n, 1),
          fmt(x.delta.cpuUs / n, 0),
          String(x.clients),
          Object.entries(x.delta.calls)
            .filter(([c]) => c !== 'info')
            .sort((a, b) => b[1] - a[1])
            .slice(0, 4)
            .map(([c, n]) => `${c} ${n}`)
            .join(', '),
        ]),
      ]),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Ledger

interface LedgerResult {
  budgets: number;
  counters: number;
  steps: RateStep[];
  capacity: number;
  usPerAdmission: number | null;
}

interface LedgerSection {
  searches: LedgerResult[];
  /** The same rate through more or fewer connections. */
  sweep: { budgets: number; rate: number; points: ClientsPoint[] } | null;
}

const STEP_HEAD = ['rate/s', 'achieved/s', 'p50 ms', 'p99 ms', 'errors', 'Redis cores', 'Redis µs/adm', 'generator cores', 'ok'];

async function ledgerSection(o: Options): Promise<LedgerSection> {
  const target = await standaloneTarget();
  const searches: LedgerResult[] = [];
  let sweep: LedgerSection['sweep'] = null;
  try {
    const port = target.nodes[0]!.port;
    const snapshot = (): Promise<RedisSnapshot> => redisSnapshot(port);
    const configFor = (b: number) => parseConfig(`store: ${target.storeYaml}\n${nestedBudgetsYaml(b)}\n`, `capacity bench (${b} budgets)`);
    for (const b of o.budgets) {
      const config = configFor(b);
      const counters = config.budgets.reduce((a, x) => a + x.limits.length, 0);
      say(`\nLedger, ${b} budget(s) per request (${counters} counters per decision), ${o.clients} clients, open loop, ${fmt(o.stepMs / 1e3, 1)} s per step:`);
      say(stepRow(STEP_HEAD));
      const run = await ledgerCapacity({ redis: config.store.redis, budgets: config.budgets, clients: o.clients, stepMs: o.stepMs, search: o.search, snapshot, secondSettle: RESEND_MS !== null, onStep: (s) => say(stepRow(stepCells(s, o.deadlineMs))) });
      const result = { budgets: b, counters, steps: run.steps, capacity: capacityOf(run.steps, o.deadlineMs), usPerAdmission: usPerAdmission(run.steps, o.deadlineMs) };
      searches.push(result);
      const us = result.usPerAdmission;
      const peak = run.steps.reduce<RateStep | null>((a, x) => (a === null || x.redisCores > a.redisCores ? x : a), null);
      say(`  → largest rate with p99 < ${o.deadlineMs} ms: ${fmt(result.capacity, 0)}/s; Redis CPU per admission there ${us === null ? '?' : `${fmt(us, 0)} µs → one Redis core ≈ ${fmt(admissionsPerCore(us), 0)} admissions/s`}`);
      if (peak) say(`    Redis CPU peaked at ${fmt(peak.redisCores)} cores (offered ${fmt(peak.rate, 0)}/s, served ${fmt(peak.achieved, 0)}/s; the generator ${fmt(peak.generatorCores)} cores)`);
    }
    if (o.sweepClients.length > 0) {
      // At about half the capacity of the middle budget count: loaded, but under the deadline.
      const mid = searches[Math.floor(searches.length / 2)] ?? null;
      const budgets = mid?.budgets ?? 3;
      const rate = Math.max(500, Math.round((mid ? mid.capacity / 2 : 2_000) / 100) * 100);
      const config = configFor(budgets);
      say(`\nLedger, ${budgets} budget(s), ${fmt(rate, 0)} admissions/s through more or fewer connections (sidecars):`);
      say(stepRow(['clients', ...STEP_HEAD]));
      const points = await clientsSweep({ redis: config.store.redis, budgets: config.budgets, clientCounts: o.sweepClients, rate, stepMs: o.stepMs, snapshot, secondSettle: RESEND_MS !== null });
      for (const p of points) say(stepRow([String(p.clients), ...stepCells(p.step, o.deadlineMs)]));
      sweep = { budgets, rate, points };
    }
  } finally {
    await target.close();
  }
  return { searches, sweep };
}

function stepCells(s: RateStep, deadlineMs: number): string[] {
  const ok = s.errors === 0 && s.p99Ms < deadlineMs && s.achieved >= KEEP_UP * s.rate;
  return [fmt(s.rate, 0), fmt(s.achieved, 0), fmt(s.p50Ms), fmt(s.p99Ms), String(s.errors), fmt(s.redisCores), fmt(s.redisUsPerAdmission, 0), fmt(s.generatorCores), ok ? 'yes' : 'no'];
}

/** A fixed-width row, so that step rows printed one by one line up. */
function stepRow(cells: readonly string[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(9) : c.padStart(i === cells.length - 1 ? 3 : 12))).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Workers

interface WorkersResult {
  workers: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  sidecarCores: number;
  sidecarUsPerExchange: number;
  redisConnections: number;
  redisCommandsPerS: number;
  redisCores: number;
  flushesPerS: number;
}

async function workersSection(o: Options, entry: string[], dir: string): Promise<WorkersResult[]> {
  const target = await standaloneTarget();
  const out: WorkersResult[] = [];
  try {
    for (const workers of [1, 2]) {
      const file = sidecarConfig(dir, `workers-${workers}`, await freePort(), await freePort(), target.storeYaml, 0);
      const tw = await startTokenwarden(entry, file, workers);
      try {
        const closed = { concurrency: 32, connections: 4 };
        await runLoad(loadOptions(tw.grpc, { ...closed, count: o.warmup * workers }));
        await sleep(o.flushWaitMs);
        const r0 = await redisSnapshot(target.nodes[0]!.port);
        const c0 = await sidecarCounters(tw);
        const t0 = performance.now();
        const report = await runLoad(loadOptions(tw.grpc, { ...closed, durationMs: o.workersDurationMs }));
        const seconds = (performance.now() - t0) / 1e3;
        const c1 = await sidecarCounters(tw);
        const r1 = await redisSnapshot(target.nodes[0]!.port);
        const d = diffSnapshots(r0, r1);
        const errors = failures(report);
        const p = (q: number): number => (report.latencyDistribution.find((l) => l.percentage === q)?.latency ?? 0) / 1e6;
        const result: WorkersResult = {
          workers,
          rps: report.rps,
          p50Ms: p(50),
          p99Ms: p(99),
          errors,
          sidecarCores: (c1.cpuUs - c0.cpuUs) / 1e6 / seconds,
          sidecarUsPerExchange: (c1.cpuUs - c0.cpuUs) / Math.max(1, report.count),
          redisConnections: r1.clients - 1,
          redisCommandsPerS: workloadCommands(d) / seconds,
          redisCores: d.cpuUs / 1e6 / seconds,
          flushesPerS: (c1.flushes - c0.flushes) / seconds,
        };
        out.push(result);
      } finally {
        await tw.stop();
      }
    }
  } finally {
    await target.close();
  }
  say('\nserve --workers N (Redis store, metered chat, no budget; closed loop, concurrency 32, 4 driver connections):');
  say(
    table([
      ['workers', 'exchanges/s', 'p50 ms', 'p99 ms', 'errors', 'sidecar cores', 'sidecar µs/ex', 'Redis conns', 'Redis cmds/s', 'Redis cores', 'flushes/s'],
      ...out.map((r) => [String(r.workers), fmt(r.rps, 0), fmt(r.p50Ms), fmt(r.p99Ms), String(r.errors), fmt(r.sidecarCores), fmt(r.sidecarUsPerExchange, 0), String(r.redisConnections), fmt(r.redisCommandsPerS, 0), fmt(r.redisCores, 3), fmt(r.flushesPerS, 2)]),
    ]),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// The model

/** Sidecar counts × exchanges/s each for the modelled rows. */
const MODEL_LOADS: readonly Load[] = [
  { sidecars: 3, rps: 100 },
  { sidecars: 10, rps: 100 },
  { sidecars: 20, rps: 100 },
  { sidecars: 50, rps: 100 },
  { sidecars: 100, rps: 100 },
];

function printModel(accountingResults: readonly AccountingResult[], ledger: readonly LedgerResult[], deadlineMs: number): void {
  const standalone = (b: number) => accountingResults.find((r) => r.target === 'standalone' && r.sidecars === 1 && r.budgets === b);
  const inventoryRun = standalone(0) ?? accountingResults[0];
  const inv = inventoryRun ? perExchange(inventoryRun) : null;
  // Redis CPU per flush: only from a run without budgets (all of Redis's work is then the inventory's).
  const base = standalone(0);
  // The CPU above Redis's idle rate, or at least the time in the batch script (commandstats): a
  // flush a second is lost in the idle rate's noise.
  const cpuUsPerFlush =
    base && base.sidecar.flushes > 0
      ? Math.max(base.nodes[0]!.delta.cpuUs - (base.idle.redisCpuUsPerS[0] ?? 0) * base.seconds, scriptUsec(base.nodes[0]!.delta)) / base.sidecar.flushes
      : 0;
  say(`\nCapacity of one ledger shard (p99 of the reservation < ${deadlineMs} ms):`);
  const rows = [['budgets', 'counters', 'cmds/admission', 'largest rate', 'Redis µs/adm there', 'one Redis core (1e6/µs)']];
  for (const l of ledger) {
    const acc = standalone(l.budgets);
    rows.push([
      String(l.budgets),
      String(l.counters),
      acc ? fmt(perExchange(acc).requestPathCommands, 0) : '?',
      `${fmt(l.capacity, 0)}/s`,
      l.usPerAdmission === null ? '?' : fmt(l.usPerAdmission, 0),
      l.usPerAdmission === null ? '?' : `${fmt(admissionsPerCore(l.usPerAdmission), 0)}/s`,
    ]);
  }
  say(table(rows));
  if (inv) {
    say(
      `inventory: ${fmt(inv.commandsPerFlush, 0)} commands per flush (1 key per batch here), ${fmt(inv.flushesPerSecondPerSidecar, 2)} flushes/s per sidecar` +
        (base ? `, ≈ ${fmt(cpuUsPerFlush, 0)} µs of Redis CPU each` : ' (run the 0-budget accounting for its CPU)'),
    );
  }
  say('\nModel: N sidecars × R exchanges/s → Redis commands/s and cores (ledger CPU read off the curve above; "-" past one shard):');
  const head = ['load', ...ledger.map((l) => `${l.budgets} budget${l.budgets === 1 ? '' : 's'}`)];
  const modelRows = [head];
  for (const load of MODEL_LOADS) {
    modelRows.push([
      `${load.sidecars} × ${load.rps}/s`,
      ...ledger.map((l) => {
        const acc = standalone(l.budgets);
        const costs: ExchangeCosts = {
          requestPathCommands: acc ? perExchange(acc).requestPathCommands : NaN,
          // Every flush interval has something to flush at these rates.
          flushesPerSecond: 1_000 / defaultConfig().store.flush_interval_ms,
          commandsPerFlush: inv?.commandsPerFlush ?? 0,
          cpuUsPerFlush,
        };
        const x = redisLoad(costs, load, (rate) => coresAt(l.steps, rate, deadlineMs));
        return `${fmt(x.commandsPerSecond, 0)} cmds/s, ${x.cores === null ? '-' : `${fmt(x.cores)} cores`}`;
      }),
    ]);
  }
  say(table(modelRows));
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const entry = serveEntry();
  const started = performance.now();
  say(`capacity bench: ${cpus().length} vCPU (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; tokenwarden from ${entry.join(' ')}${o.quick ? '; --quick' : ''}`);
  if (RESEND_MS !== null) {
    say(
      `the ledger sends every settlement again ${RESEND_MS} ms later, many in one call: "again" counts these calls (MONITOR), ` +
        'the accounting CPU leaves them out, the ledger section sends them after 150 ms and counts them',
    );
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-capacity-'));
  const report: Record<string, unknown> = { date: new Date().toISOString(), cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgBefore: loadavg(), entry, resendFinaliseMs: RESEND_MS, options: { ...o, only: [...o.only] } };
  const accountingResults: AccountingResult[] = [];
  // --quick starts the cluster (6 processes, a few seconds) while the other sections run.
  let cluster: Promise<RedisTarget> | null = o.only.has('cluster') && o.quick ? clusterTarget() : null;
  cluster?.catch(() => {});
  try {
    if (o.only.has('accounting')) {
      const target = await standaloneTarget();
      try {
        const one = (b: number): AccountingSpec => ({ label: `1 sidecar, ${b} budget${b === 1 ? '' : 's'}`, sidecars: 1, budgets: b, rps: o.rps });
        const specs: AccountingSpec[] = o.accountingBudgets
          ? o.accountingBudgets.map(one)
          : o.quick
            ? [one(1)]
            : [0, ...o.budgets].map(one);
        for (const spec of specs) {
          const t = performance.now();
          say(`accounting: ${spec.label} at ${spec.rps}/s each…`);
          accountingResults.push(await accounting(spec, target, entry, o, dir));
          say(`  (${since(t)})`);
        }
      } finally {
        await target.close();
      }
    }
    const tLedger = performance.now();
    const ledger = o.only.has('ledger') ? await ledgerSection(o) : null;
    if (ledger) say(`  (ledger: ${since(tLedger)})`);
    report.ledger = ledger;
    if (o.only.has('cluster')) {
      if (!cluster) say('cluster: starting a 3-master Redis Cluster…');
      const target = await (cluster ?? clusterTarget());
      cluster = null;
      try {
        const spec = { label: `${o.sidecars} sidecars, 3 budgets, cluster`, sidecars: o.sidecars, budgets: 3, rps: o.rpsEach };
        const t = performance.now();
        say(`accounting: ${spec.label} at ${spec.rps}/s each…`);
        accountingResults.push(await accounting(spec, target, entry, o, dir));
        say(`  (${since(t)})`);
      } finally {
        await target.close();
      }
    }
    if (accountingResults.length > 0) printAccounting(accountingResults);
    report.accounting = accountingResults.map((r) => ({ ...r, perExchange: perExchange(r) }));
    if (ledger) printModel(accountingResults, ledger.searches, o.deadlineMs);
    const tWorkers = performance.now();
    if (o.only.has('workers')) {
      report.workers = await workersSection(o, entry, dir);
      say(`  (workers: ${since(tWorkers)})`);
    }
  } finally {
    if (cluster) await (await cluster).close();
    rmSync(dir, { recursive: true, force: true });
  }
  report.loadavgAfter = loadavg();
  mkdirSync(path.dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
  say(`\n${fmt((performance.now() - started) / 1e3, 0)} s; load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')}; report: ${path.relative(ROOT, o.out)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    process.stderr.write(`capacity bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
