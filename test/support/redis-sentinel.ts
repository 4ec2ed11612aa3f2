/**
 * A real Redis Sentinel deployment for tests: a master, one replica, and three sentinels
 * (`redis-server <conf> --sentinel`, quorum 2), all on free loopback ports with no persistence, in a
 * temp directory. Startup waits until every sentinel knows the master, the replica (linked) and the
 * two other sentinels. close() kills every process and removes the directory; the processes are
 * also killed if the test process exits first.
 *
 * The data nodes run from config files, so the REPLICAOF and CONFIG REWRITE that the sentinels send
 * on a failover stick across a restart(), as in a real deployment.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { info, killAll, pairs, redisCommand, RedisReplyError, spawnRedis, waitFor, type RedisProcess, type Reply } from './redis-process.js';

export interface RedisSentinel {
  /** `127.0.0.1:<port>` of the three sentinels (for store.redis.sentinels). */
  sentinels: string[];
  /** The monitored master's name (for store.redis.sentinel_master). */
  masterName: string;
  /** The data node that started as master, and the one that started as its replica. */
  master: RedisProcess;
  replica: RedisProcess;
  sentinelProcesses: RedisProcess[];
  /** The data node every sentinel currently reports as master (throws while they disagree). */
  currentMaster(): Promise<RedisProcess>;
  /**
   * SENTINEL FAILOVER, then waits until every sentinel reports the other data node as master and it
   * says role:master (about 1 s). With waitForReplica, also until the old master (when running) is
   * its linked replica: the sentinels turn it into one only about 10 s after the failover, and until
   * then it still takes writes from clients connected to it.
   */
  failover(opts?: { waitForReplica?: boolean; timeoutMs?: number }): Promise<{ from: RedisProcess; to: RedisProcess }>;
  /**
   * Waits until the sentinels agree on a running master, every other running data node is its linked
   * replica and known to every sentinel, and the sentinels know each other. With fresh, also until
   * every sentinel has seen each replica's link up (their replica INFO is refreshed every 10 s).
   */
  waitHealthy(opts?: { timeoutMs?: number; fresh?: boolean }): Promise<void>;
  /** FLUSHALL on the current master, waiting (briefly) for the replica to apply it too. */
  flushAll(): Promise<void>;
  /** The last lines of every process's log. */
  logs(lines?: number): string;
  /** Kills every process and removes the directory (idempotent). */
  close(): Promise<void>;
}

export interface SentinelOptions {
  masterName?: string;
  /** sentinel down-after-milliseconds (default 1000). */
  downAfterMs?: number;
  /** sentinel failover-timeout (default 5000). */
  failoverTimeoutMs?: number;
  /** How long startup may take before it fails with the logs (default 30 s). */
  startTimeoutMs?: number;
}

const SENTINELS = 3;
const QUORUM = 2;

export async function startRedisSentinel(opts: SentinelOptions = {}): Promise<RedisSentinel> {
  const masterName = opts.masterName ?? 'tokenwarden';
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), 'tw-redis-sentinel-'));
  const processes: RedisProcess[] = [];
  let closed = false;
  const logs = (lines = 15): string => processes.map((p) => p.log(lines)).join('\n');
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await killAll(processes);
    rmSync(dir, { recursive: true, force: true });
  };

  /** A fresh directory with a config file (rewritten by a retry after a port clash). */
  const conf = (name: string, lines: string[]): string => {
    const d = join(dir, name);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    const file = join(d, name.startsWith('sentinel') ? 'sentinel.conf' : 'redis.conf');
    writeFileSync(file, `${[...lines, `dir ${d}`].join('\n')}\n`);
    return file;
  };
  const dataNode = (name: string, replicaOf?: number): Promise<RedisProcess> =>
    spawnRedis({
      name,
      ports: 1,
      args: ([port]) => [
        conf(name, [
          `port ${port}`,
          'bind 127.0.0.1',
          'save ""',
          'appendonly no',
          // A replica's first sync would otherwise wait 5 s for more replicas to join it.
          'repl-diskless-sync-delay 0',
          ...(replicaOf ? [`replicaof 127.0.0.1 ${replicaOf}`] : []),
        ]),
      ],
    }).then((p) => {
      processes.push(p);
      return p;
    });

  try {
    const master = await dataNode('master');
    const replica = await dataNode('replica', master.port);
    // allSettled: if one fails, the others have still finished starting (and are in `processes`) before close() runs.
    const started = await Promise.allSettled(
      Array.from({ length: SENTINELS }, (_, i) =>
        spawnRedis({
          name: `sentinel ${i}`,
          ports: 1,
          args: ([port]) => [
            conf(`sentinel-${i}`, [
              `port ${port}`,
              'bind 127.0.0.1',
              'sentinel resolve-hostnames no',
              `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${QUORUM}`,
              `sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs ?? 1_000}`,
              `sentinel failover-timeout ${masterName} ${opts.failoverTimeoutMs ?? 5_000}`,
              `sentinel parallel-syncs ${masterName} 1`,
            ]),
            '--sentinel',
          ],
        }).then((p) => {
          processes.push(p);
          return p;
        }),
      ),
    );
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const sentinelProcesses = started.map((r) => (r as PromiseFulfilledResult<RedisProcess>).value);
    const deployment = makeSentinel({ masterName, master, replica, sentinelProcesses, logs, close });
    await deployment.waitHealthy({ timeoutMs: startTimeoutMs, fresh: true });
    return deployment;
  } catch (err) {
    await close();
    throw err;
  }
}

interface Parts {
  masterName: string;
  master: RedisProcess;
  replica: RedisProcess;
  sentinelProcesses: RedisProcess[];
  logs(lines?: number): string;
  close(): Promise<void>;
}

function makeSentinel({ masterName, master, replica, sentinelProcesses, logs, close }: Parts): RedisSentinel {
  const dataNodes = [master, replica];
  const sentinel = (port: number, ...args: string[]): Promise<Reply> => redisCommand(port, ['SENTINEL', ...args]);
  const liveSentinels = (): RedisProcess[] => sentinelProcesses.filter((s) => s.running);

  /** The master port each running sentinel reports. */
  const reported = async (): Promise<Map<RedisProcess, number>> => {
    const out = new Map<RedisProcess, number>();
    for (const s of liveSentinels()) {
      const addr = (await sentinel(s.port, 'GET-MASTER-ADDR-BY-NAME', masterName)) as Reply[] | null;
      out.set(s, Number(addr?.[1]));
    }
    return out;
  };

  const currentMaster = async (): Promise<RedisProcess> => {
    const ports = new Set((await reported()).values());
    if (ports.size !== 1) throw new Error(`the sentinels disagree on the master: ${[...(await reported())].map(([s, p]) => `${s.name}: ${p}`).join(', ')}`);
    const port = [...ports][0];
    const node = dataNodes.find((d) => d.port === port);
    if (!node) throw new Error(`the sentinels report a master this helper did not start: port ${port}`);
    return node;
  };

  /**
   * One reason the deployment with this master is not settled yet, or true. Sentinels refresh a
   * replica's INFO only every 10 s, so their view of its link is only checked when fresh is asked
   * (at startup, where it is fresh at once).
   */
  const health = async (want: RedisProcess, fresh: boolean): Promise<true | string> => {
    const replicas = dataNodes.filter((d) => d !== want && d.running);
    if (!want.running) return `${want.name} is not running`;
    const role = await info(want.port, 'replication');
    if (role.role !== 'master') return `${want.name} says role:${role.role}`;
    for (const r of replicas) {
      const ri = await info(r.port, 'replication');
      if (ri.role !== 'slave' || Number(ri.master_port) !== want.port) return `${r.name} is not yet a replica of ${want.name} (role:${ri.role}, master_port:${ri.master_port})`;
      if (ri.master_link_status !== 'up') return `${r.name} has master_link_status:${ri.master_link_status}`;
    }
    for (const s of liveSentinels()) {
      const m = pairs(await sentinel(s.port, 'MASTER', masterName));
      if (Number(m.port) !== want.port) return `${s.name} reports the master at port ${String(m.port)}, want ${want.port} (${want.name})`;
      if (m.flags !== 'master') return `${s.name} flags the master ${String(m.flags)}`;
      const others = Number(m['num-other-sentinels']);
      if (others !== SENTINELS - 1) return `${s.name} knows ${others} other sentinel(s), want ${SENTINELS - 1}`;
      const known = ((await sentinel(s.port, 'REPLICAS', masterName)) as Reply[]).map(pairs);
      for (const r of replicas) {
        const k = known.find((x) => Number(x.port) === r.port);
        if (!k) return `${s.name} does not know ${r.name} yet`;
        if (k.flags !== 'slave') return `${s.name} flags ${r.name} ${String(k.flags)}`;
        if (fresh && (k['master-link-status'] !== 'ok' || Number(k['master-port']) !== want.port))
          return `${s.name} sees ${r.name} with link ${String(k['master-link-status'])} to master port ${String(k['master-port'])}`;
      }
    }
    return true;
  };

  const waitHealthy = async (o: { timeoutMs?: number; fresh?: boolean } = {}): Promise<void> => {
    const timeoutMs = o.timeoutMs ?? 30_000;
    let want: RedisProcess | undefined;
    await waitFor(
      'the sentinels to agree on a running master',
      async () => {
        want = await currentMaster();
        return want.running ? true : `they report ${want.name}, which is not running`;
      },
      { timeoutMs, logs: () => logs() },
    );
    await waitFor(`a settled Sentinel deployment (master ${want!.name})`, () => health(want!, o.fresh ?? false), { timeoutMs, logs: () => logs(), intervalMs: 100 });
  };

  return {
    sentinels: sentinelProcesses.map((s) => s.address),
    masterName,
    master,
    replica,
    sentinelProcesses,
    currentMaster,
    waitHealthy,
    async failover(o = {}) {
      const timeoutMs = o.timeoutMs ?? 30_000;
      const from = await currentMaster();
      const to = dataNodes.find((d) => d !== from)!;
      const asker = liveSentinels()[0];
      if (!asker) throw new Error('no sentinel is running');
      // A sentinel refuses while it judges no replica fit (e.g. just after a restart) or while a
      // failover is under way (e.g. an automatic one after the master died): retry until the deadline,
      // unless the sentinels have meanwhile moved the master themselves.
      await waitFor(
        `${asker.name} to accept SENTINEL FAILOVER`,
        async () => {
          if ([...(await reported()).values()].every((port) => port === to.port)) return true;
          try {
            await sentinel(asker.port, 'FAILOVER', masterName);
            return true;
          } catch (err) {
            if (err instanceof RedisReplyError && /NOGOODSLAVE|INPROG/.test(err.message)) return err.message;
            throw err;
          }
        },
        { timeoutMs, logs: () => logs() },
      );
      await waitFor(
        `every sentinel to report ${to.name} as master`,
        async () => {
          const now = await reported();
          const behind = [...now].filter(([, port]) => port !== to.port);
          if (behind.length > 0) return behind.map(([s, port]) => `${s.name} reports port ${port}`).join(', ');
          const role = await info(to.port, 'replication');
          return role.role === 'master' ? true : `${to.name} says role:${role.role}`;
        },
        { timeoutMs, logs: () => logs() },
      );
      if (o.waitForReplica) await waitFor(`${from.name} to follow ${to.name}`, () => health(to, false), { timeoutMs, logs: () => logs(), intervalMs: 100 });
      return { from, to };
    },
    async flushAll() {
      const m = await currentMaster();
      await redisCommand(m.port, ['FLUSHALL']);
      const replicas = Number((await info(m.port, 'replication')).connected_slaves ?? 0);
      if (replicas > 0) await redisCommand(m.port, ['WAIT', replicas, 2_000], 3_000);
    },
    logs,
    close,
  };
}
