/**
 * A real Redis Cluster for tests: 3 masters with one replica each, six redis-server processes on
 * free loopback ports (data port and cluster bus port both chosen free), no persistence, in a temp
 * directory. Created with `redis-cli --cluster create`, then awaited until every node reports
 * cluster_state:ok, all nodes agree on who serves which slots, and every replica is linked to its
 * master. close() kills every process and removes the directory; the processes are also killed if
 * the test process exits first.
 *
 * For failover tests: processes, killMaster(i), waitHealthy(); to see where keys went: masterOf(key),
 * keysPerMaster().
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { info, killAll, parseFields, REDIS_CLI_BIN, redisCommand, spawnRedis, waitFor, type RedisProcess } from './redis-process.js';

export interface ClusterMaster {
  node: RedisProcess;
  /** Slot ranges it serves, [first, last] inclusive, ascending. */
  slots: [number, number][];
  /** The replicas the cluster lists for it (running ones only). */
  replicas: RedisProcess[];
}

export interface RedisCluster {
  /** `127.0.0.1:<port>` of every node, masters and replicas (for store.redis.cluster_nodes). */
  nodes: string[];
  /** Every node's process, in the order of `nodes`. */
  processes: RedisProcess[];
  /** The current masters, by their first slot (so masters()[0] serves slot 0). */
  masters(): Promise<ClusterMaster[]>;
  /** The master that serves the key's slot. */
  masterOf(key: string): Promise<RedisProcess>;
  /** CLUSTER KEYSLOT. */
  slotOf(key: string): Promise<number>;
  /** DBSIZE of every current master, in masters() order. */
  keysPerMaster(): Promise<{ node: RedisProcess; keys: number }[]>;
  /** FLUSHALL on every master, waiting (briefly) for the replicas to apply it too. */
  flushAll(): Promise<void>;
  /** Kills masters()[i] (SIGKILL by default) and waits for the process to exit; its replicas take over after the node timeout. */
  killMaster(i: number, signal?: NodeJS.Signals): Promise<ClusterMaster>;
  /**
   * Waits until every running node says cluster_state:ok with all 16384 slots served, all running
   * nodes agree on which master serves which slots and which replicas each has, every master in it
   * is running, and every running replica is linked to its master. replicasPerMaster: also until
   * every master has exactly that many linked replicas (startup waits for 1).
   */
  waitHealthy(opts?: HealthOptions): Promise<void>;
  /** The last lines of every node's log. */
  logs(lines?: number): string;
  /** Kills every process and removes the directory (idempotent). */
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** cluster-node-timeout: how long a silent master takes to be failed over (default 2000 ms). */
  nodeTimeoutMs?: number;
  /** How long startup may take before it fails with the nodes' logs (default 30 s). */
  startTimeoutMs?: number;
}

const MASTERS = 3;
const NODES = MASTERS * 2;
const SLOTS = 16384;

export async function startRedisCluster(opts: ClusterOptions = {}): Promise<RedisCluster> {
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 2_000;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), 'tw-redis-cluster-'));
  const processes: RedisProcess[] = [];
  let closed = false;

  const logs = (lines = 15): string => processes.map((p) => p.log(lines)).join('\n');
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await killAll(processes);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const started = await Promise.allSettled(
      Array.from({ length: NODES }, (_, i) =>
        spawnRedis({
          name: `cluster node ${i}`,
          ports: 2,
          args: ([port, busPort]) => {
            const nodeDir = join(dir, `node-${i}`);
            // A retry after a port clash starts from scratch (no nodes.conf naming the old port).
            rmSync(nodeDir, { recursive: true, force: true });
            mkdirSync(nodeDir);
            return [
              '--port', String(port),
              // The bus port defaults to port + 10000, which may be taken or past 65535: choose it too.
              '--cluster-port', String(busPort),
              '--bind', '127.0.0.1',
              '--cluster-enabled', 'yes',
              '--cluster-config-file', join(nodeDir, 'nodes.conf'),
              '--cluster-node-timeout', String(nodeTimeoutMs),
              '--dir', nodeDir,
              '--save', '',
              '--appendonly', 'no',
              // A replica's first sync would otherwise wait 5 s for more replicas to join it.
              '--repl-diskless-sync-delay', '0',
            ];
          },
        }),
      ),
    );
    for (const s of started) if (s.status === 'fulfilled') processes.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;

    const addresses = processes.map((p) => p.address);
    await createCluster(addresses, startTimeoutMs, logs);
    const cluster = makeCluster(processes, logs, close);
    await cluster.waitHealthy({ timeoutMs: startTimeoutMs, replicasPerMaster: 1 });
    return cluster;
  } catch (err) {
    await close();
    throw err;
  }
}

function createCluster(addresses: string[], timeoutMs: number, logs: () => string): Promise<void> {
  const args = ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'];
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI_BIN, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const out = `${stdout}${stderr}`.trimEnd().split('\n').slice(-30).join('\n');
      reject(new Error(`${REDIS_CLI_BIN} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${out}\n${logs()}`));
    });
  });
}

export interface HealthOptions {
  /** Default 30 s; then it throws with the last reason and the end of every node's log. */
  timeoutMs?: number;
  replicasPerMaster?: number;
}

function makeCluster(processes: RedisProcess[], logs: (lines?: number) => string, close: () => Promise<void>): RedisCluster {
  const byPort = new Map(processes.map((p) => [p.port, p]));
  const running = (): RedisProcess[] => processes.filter((p) => p.running);

  /** CLUSTER NODES as the given node (default: the first running one that answers) sees it. */
  const nodesView = async (from?: RedisProcess): Promise<NodeLine[]> => {
    if (from) return parseClusterNodes(String(await redisCommand(from.port, ['CLUSTER', 'NODES'])));
    let lastErr: unknown;
    for (const p of running()) {
      try {
        return parseClusterNodes(String(await redisCommand(p.port, ['CLUSTER', 'NODES'])));
      } catch (err) {
        lastErr = err;
      }
    }
    throw new Error(`no cluster node answers CLUSTER NODES: ${(lastErr as Error | undefined)?.message ?? 'none is running'}`);
  };

  const processOf = (port: number): RedisProcess => {
    const p = byPort.get(port);
    if (!p) throw new Error(`the cluster names a node this helper did not start: port ${port}`);
    return p;
  };

  const mastersIn = (view: NodeLine[]): ClusterMaster[] =>
    view
      .filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length > 0)
      .map((n) => ({
        node: processOf(n.port),
        slots: n.slots,
        replicas: view
          .filter((r) => r.masterId === n.id && r.flags.includes('slave') && !r.flags.includes('fail'))
          .map((r) => processOf(r.port))
          .filter((r) => r.running),
      }))
      .sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);

  const masters = async (): Promise<ClusterMaster[]> => mastersIn(await nodesView());

  const anyPort = (): number => {
    const p = running()[0];
    if (!p) throw new Error('no cluster node is running');
    return p.port;
  };

  const slotOf = async (key: string): Promise<number> => Number(await redisCommand(anyPort(), ['CLUSTER', 'KEYSLOT', key]));

  /** One reason the cluster is not healthy yet, or true. */
  const health = async (replicasPerMaster: number | undefined): Promise<true | string> => {
    const nodes = running();
    const views = new Map<RedisProcess, string>();
    const roles = new Map<RedisProcess, Record<string, string>>();
    for (const p of nodes) {
      const ci = parseFields(String(await redisCommand(p.port, ['CLUSTER', 'INFO'])), ':');
      if (ci.cluster_state !== 'ok') return `${p.name} (${p.address}) says cluster_state:${ci.cluster_state}`;
      if (Number(ci.cluster_slots_ok) !== SLOTS) return `${p.name} sees ${ci.cluster_slots_ok} of ${SLOTS} slots ok`;
      if (Number(ci.cluster_known_nodes) !== processes.length) return `${p.name} knows ${ci.cluster_known_nodes} of ${processes.length} nodes`;
      // Which node serves which slots, and which replicas each has, as this node sees it.
      views.set(p, JSON.stringify(mastersIn(await nodesView(p)).map((m) => [m.node.port, m.slots, m.replicas.map((r) => r.port).sort()])));
      roles.set(p, await info(p.port, 'replication'));
    }
    const distinct = new Set(views.values());
    if (distinct.size > 1) return `the nodes disagree on the slot map: ${[...views].map(([p, v]) => `${p.name}: ${v}`).join('; ')}`;
    const ms = await masters();
    for (const m of ms) {
      const role = roles.get(m.node);
      if (!m.node.running || role?.role !== 'master') return `${m.node.name} serves slots but is ${m.node.running ? `a ${role?.role}` : 'not running'}`;
    }
    for (const [p, role] of roles) {
      if (role.role !== 'slave') continue;
      if (role.master_link_status !== 'up') return `replica ${p.name} has master_link_status:${role.master_link_status}`;
      const master = byPort.get(Number(role.master_port));
      if (!master || !ms.some((m) => m.node === master && m.replicas.includes(p))) return `replica ${p.name} follows port ${role.master_port}, but the cluster does not list it as that master's replica yet`;
    }
    if (replicasPerMaster !== undefined) {
      for (const m of ms) {
        const linked = [...roles].filter(([, r]) => r.role === 'slave' && Number(r.master_port) === m.node.port).length;
        const online = Object.entries(roles.get(m.node) ?? {}).filter(([k, v]) => /^slave\d+$/.test(k) && v.includes('state=online')).length;
        if (linked !== replicasPerMaster || online !== replicasPerMaster) return `${m.node.name} has ${linked} linked replica(s), ${online} online, want ${replicasPerMaster}`;
      }
    }
    return true;
  };

  return {
    nodes: processes.map((p) => p.address),
    processes,
    masters,
    slotOf,
    async masterOf(key) {
      const slot = await slotOf(key);
      const m = (await masters()).find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!m) throw new Error(`no master serves slot ${slot} (key ${JSON.stringify(key)})`);
      return m.node;
    },
    async keysPerMaster() {
      const ms = await masters();
      return Promise.all(ms.map(async (m) => ({ node: m.node, keys: Number(await redisCommand(m.node.port, ['DBSIZE'])) })));
    },
    async flushAll() {
      await Promise.all(
        (await masters()).map(async (m) => {
          await redisCommand(m.node.port, ['FLUSHALL']);
          const replicas = Number((await info(m.node.port, 'replication')).connected_slaves ?? 0);
          if (replicas > 0) await redisCommand(m.node.port, ['WAIT', replicas, 2_000], 3_000);
        }),
      );
    },
    async killMaster(i, signal = 'SIGKILL') {
      const ms = await masters();
      const m = ms[i];
      if (!m) throw new Error(`no master ${i}: the cluster has ${ms.length}`);
      m.node.kill(signal);
      await m.node.exited();
      return m;
    },
    waitHealthy: (o: HealthOptions = {}) =>
      waitFor('a healthy Redis Cluster', () => health(o.replicasPerMaster), {
        timeoutMs: o.timeoutMs ?? 30_000,
        logs: () => logs(),
        intervalMs: 100,
      }),
    logs,
    close,
  };
}

interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | null;
  /** Slot ranges, [first, last] inclusive, ascending (importing/migrating markers left out). */
  slots: [number, number][];
}

/** CLUSTER NODES: `<id> <ip:port@bus> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot>...`. */
function parseClusterNodes(text: string): NodeLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const f = line.trim().split(' ');
      const slots = f
        .slice(8)
        .filter((s) => !s.startsWith('['))
        .map((s): [number, number] => {
          const [a, b] = s.split('-');
          return [Number(a), Number(b ?? a)];
        })
        .sort((x, y) => x[0] - y[0]);
      return {
        id: f[0]!,
        port: Number(/:(\d+)/.exec(f[1] ?? '')?.[1]),
        flags: (f[2] ?? '').split(','),
        masterId: f[3] === '-' || f[3] === undefined ? null : f[3],
        slots,
      };
    });
}
