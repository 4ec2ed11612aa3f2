/**
 * Builds the ioredis client for a RedisConfig: a single server (url), Sentinel, or Cluster.
 *
 * Failover and resharding (README "Redis failover and resharding"):
 * - Sentinel: the client subscribes to the sentinels' +switch-master announcement
 *   (`failoverDetector`) and reconnects through the sentinels at once. Without it, a client stays on
 *   the old master after a SENTINEL FAILOVER until the sentinels turn that node into a replica
 *   (about 10 s later), and every write it makes there meanwhile is lost with the old master's data.
 * - A write refused with READONLY (the node it is connected to became a replica) reconnects, which
 *   asks the sentinels for the master again; the command itself fails (callers retry or decide).
 * - Cluster: every Lua script declares one more key, in its first key's slot, that never exists
 *   (see ClusterClient). Redis Cluster then answers TRYAGAIN while that slot is being migrated, and
 *   ioredis retries, instead of running the script on a half-migrated slot.
 */
import { once } from 'node:events';
import { Cluster, Redis, type ChainableCommander, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import { hashTag } from './redis-layout.js';

/** `host:port`, IPv6 hosts in brackets (`[::1]:6379`). */
export function parseHostPort(s: string): { host: string; port: number } {
  const colon = s.lastIndexOf(':');
  const port = Number(s.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`expected host:port, got ${JSON.stringify(s)}`);
  return { host: s.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

/** Credentials and TLS (`rediss://`) from the url, for the Sentinel and Cluster connections too. */
function urlSecurity(url: string): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** CLIENT SETNAME of every connection tokenwarden makes (data nodes; not the sentinels). */
export const CONNECTION_NAME = 'tokenwarden';

/** Reconnect quickly but not in a tight loop: the inventory is a shared aggregate, not a queue. */
const retryStrategy = (times: number): number => Math.min(times * 100, 1_000);

/**
 * A write sent to a node that is now a replica (a demoted master: Sentinel reconfigured it, or an
 * operator ran REPLICAOF) fails with READONLY, in a script too. Reconnecting (1: without resending
 * the command) makes a Sentinel client ask the sentinels where the master is now.
 */
export const reconnectOnError = (err: Error): 1 | false => (/\bREADONLY\b/.test(err.message) ? 1 : false);

/** The never-written key declared next to a script's keys (same slot as `firstKey`); null when none fits. */
export function migrationGuardKey(firstKey: string): string | null {
  const tag = hashTag(firstKey);
  if (tag !== null) return `{${tag}}:tokenwarden:migration-guard`;
  // A key without braces hashes as a whole: as a tag it keeps its slot.
  return firstKey.includes('{') || firstKey.includes('}') ? null : `{${firstKey}}:tokenwarden:migration-guard`;
}

type ScriptCommand = { name: string; args: unknown[]; keys?: unknown[] };
const guarded = new WeakSet<object>();

/**
 * Declares a migration guard key on an EVAL/EVALSHA command with at least one key, in place: numkeys
 * + 1 and the guard after the keys. Scripts read only KEYS[1..n], never #KEYS.
 */
export function addMigrationGuard(command: ScriptCommand): void {
  if (guarded.has(command)) return;
  const name = command.name.toLowerCase();
  if (name !== 'eval' && name !== 'evalsha') return;
  const numKeys = Number(command.args[1]);
  const first = command.args[2];
  if (!Number.isInteger(numKeys) || numKeys < 1 || (typeof first !== 'string' && !Buffer.isBuffer(first))) return;
  const guard = migrationGuardKey(String(first));
  if (guard === null) return;
  command.args.splice(2 + numKeys, 0, guard);
  command.args[1] = String(numKeys + 1);
  // Keys are computed lazily and cached (only with a keyPrefix, which tokenwarden does not use).
  command.keys = undefined;
  guarded.add(command);
}

/**
 * A Cluster client whose Lua scripts never run on a slot that is being migrated (createRedisClient
 * also keeps its node connections from sending a command twice: neverResendSettled).
 *
 * tokenwarden's scripts declare one key (or a few) and touch many more in the same slot. While a
 * slot migrates (`redis-cli --cluster reshard`, CLUSTER SETSLOT MIGRATING/IMPORTING + MIGRATE), a
 * script whose declared keys are missing on the source gets ASK; on the target, with ASKING, Redis
 * runs it, and every key it touches that has not been migrated yet is created there afresh: counters
 * split in two, and the MIGRATE of those keys then fails with BUSYKEY, which stops the resharding.
 * A second declared key, in the same slot and never written, changes what Redis answers during the
 * migration: a command with several keys some of which are missing gets TRYAGAIN, on the source
 * and on the target. ioredis retries it (retryDelayOnTryAgain) until the slot has moved, then
 * follows MOVED. Outside a migration a missing declared key changes nothing.
 */
export class ClusterClient extends Cluster {
  override sendCommand(...args: Parameters<Cluster['sendCommand']>): unknown {
    addMigrationGuard(args[0] as unknown as ScriptCommand);
    return super.sendCommand(...args);
  }
}

/**
 * A Cluster client retries a command whose node was unreachable (every retryDelayOnFailover, 100 ms)
 * or busy migrating its slot, from a delay queue that does not look at whether the command has
 * meanwhile timed out: without this, a reservation its caller gave up on (the ledger deadline, then
 * command_timeout_ms) would still be sent once the new master answers, after the caller released it,
 * and hold budget until its lease expired. A node connection never sends a command that is already
 * settled (a pipeline's commands are left alone: they are sent as a whole).
 */
function neverResendSettled(node: Redis): void {
  const send = node.sendCommand.bind(node);
  node.sendCommand = ((command: { isSettled?: boolean; promise: Promise<unknown> }, stream?: unknown) =>
    stream === undefined && command.isSettled ? command.promise : send(command as never, stream as never)) as Redis['sendCommand'];
}

/**
 * Cluster retries: TRYAGAIN (a multi-key command during a slot migration) is retried every 20 ms
 * rather than 100 ms, so a short migration costs a decision little. What bounds the retries is the
 * command's own timeout (command_timeout_ms, armed when it is first sent to a node), not a count of
 * redirections: ioredis counts every MOVED, ASK and TRYAGAIN, about three per 20 ms while a slot
 * migrates, and its default of 16 would give up after some 100 ms.
 */
const CLUSTER_RETRIES = { retryDelayOnTryAgain: 20, maxRedirections: 10_000 } satisfies ClusterOptions;

export function createRedisClient(cfg: RedisConfig): Redis | Cluster {
  const options = {
    // Connect on first use, so building the store never throws or blocks.
    lazyConnect: true,
    // During an outage commands fail at once instead of queueing without bound (the Recorder retries).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // A batch whose reply was lost is retried by the Recorder (same id), never resent by the client:
    // a batch the Recorder already gave up on must not land later.
    autoResendUnfulfilledCommands: false,
    // Commands issued in the same event-loop turn (many streams' admissions and settlements) go out
    // in one write: one syscall instead of one per command. Single server and Sentinel only: a
    // Cluster client takes the option on itself, and is left without it on purpose. ioredis 5/6
    // routes an auto-pipelined EVALSHA by its first argument, the script's sha, not its key
    // (redis/ioredis#2109: "All keys in the pipeline should belong to the same slots allocation
    // group"), and answers MOVED for a whole pipeline instead of redirecting its commands
    // (redis/ioredis#2075, open): both would fail ledger calls on a Cluster, the second during every
    // resharding.
    enableAutoPipelining: true,
    connectTimeout: cfg.connect_timeout_ms,
    commandTimeout: cfg.command_timeout_ms,
    reconnectOnError,
    // CLIENT LIST shows name=tokenwarden: an operator (and the failover tests) can tell which
    // connections are tokenwarden's, e.g. which clients are still on a demoted master.
    connectionName: CONNECTION_NAME,
  } satisfies RedisOptions;
  if (cfg.cluster_nodes.length > 0) {
    const { lazyConnect, enableOfflineQueue, ...redisOptions } = options;
    const cluster = new ClusterClient(cfg.cluster_nodes.map(parseHostPort) as ClusterNode[], {
      lazyConnect,
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
      ...CLUSTER_RETRIES,
      redisOptions: { ...redisOptions, ...urlSecurity(cfg.url) },
    });
    cluster.on('+node', neverResendSettled);
    return cluster;
  }
  if (cfg.sentinels.length > 0) {
    const security = urlSecurity(cfg.url);
    const client = new Redis({
      ...options,
      ...security,
      retryStrategy,
      sentinels: cfg.sentinels.map(parseHostPort),
      name: cfg.sentinel_master,
      enableTLSForSentinelMode: security.tls !== undefined,
      // Follow +switch-master at once (see the header). The detector subscribes on every sentinel;
      // one it loses is retried after a minute (ioredis's default), while the others still announce.
      failoverDetector: true,
    });
    tidyFailoverDetector(client);
    return client;
  }
  return new Redis(cfg.url, { ...options, retryStrategy });
}

/** The part of ioredis's Sentinel connector that tidyFailoverDetector reaches into (optional: a later ioredis may differ). */
type DetectorInternals = { connector?: { failoverDetector?: { sentinels?: { client?: Redis }[] } | null } };

/**
 * Two gaps of ioredis's failover detector (6.0): its subscriptions to the sentinels have no error
 * listener, so a sentinel that goes away makes ioredis print "Unhandled error event" on every
 * reconnection attempt; and quit() leaves them open (only disconnect() closes them), reconnecting for
 * ever. Their errors are ignored here (the detector resubscribes on its own), and a client that ends
 * closes them.
 */
function tidyFailoverDetector(client: Redis): void {
  client.on('failoverSubscribed', () => {
    for (const s of (client as unknown as DetectorInternals).connector?.failoverDetector?.sentinels ?? []) {
      if (s.client && s.client.listenerCount('error') === 0) s.client.on('error', () => {});
    }
  });
  client.on('end', () => client.disconnect());
}

/**
 * A Redis client connected on first use. While Redis is unreachable, commands fail at once (no
 * offline queue) and ioredis reconnects in the background. A call made while a connection is being
 * made waits for it, at most connect_timeout_ms (then its command at most command_timeout_ms). A
 * client passed in is shared and left open by close(); one created here is closed by it.
 */
export class LazyConnection {
  readonly client: Redis | Cluster;
  private readonly owns: boolean;
  private readonly readyTimeoutMs: number;
  /** The wait for 'ready' that every caller shares while a connection is being made. */
  private waiting: Promise<void> | null = null;

  constructor(cfg: RedisConfig, client?: Redis | Cluster) {
    this.owns = client === undefined;
    this.client = client ?? createRedisClient(cfg);
    this.readyTimeoutMs = cfg.connect_timeout_ms;
    // Connection errors surface as rejected commands; without a listener ioredis would print them.
    if (this.owns) this.client.on('error', () => {});
  }

  async ready(): Promise<Redis | Cluster> {
    const client = this.client;
    // connect() only starts the connection here: the promise it returns is not waited for, because
    // a Cluster's can stay pending for ever when its first attempt fails and a retry succeeds
    // (ioredis 6). The 'ready' event, an 'error', or the deadline ends the wait instead.
    if (client.status === 'wait') client.connect().catch(() => {});
    // A shared client may be mid-connect on another user's behalf: wait for it rather than fail.
    if (client.status === 'connecting' || client.status === 'connect') {
      this.waiting ??= once(client, 'ready', { signal: AbortSignal.timeout(this.readyTimeoutMs) })
        .then(
          () => undefined,
          (err: unknown) => {
            throw (err as Error | undefined)?.name === 'AbortError' ? new Error(`redis: no connection within ${this.readyTimeoutMs} ms`) : err;
          },
        )
        .finally(() => {
          this.waiting = null;
        });
      await this.waiting;
    }
    return client;
  }

  async close(): Promise<void> {
    if (!this.owns) return;
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client.disconnect());
    else this.client.disconnect();
  }
}

/** Runs a MULTI or pipeline and returns its replies, throwing the first error. */
export async function execAll(commands: ChainableCommander): Promise<unknown[]> {
  const replies = await commands.exec();
  if (!replies) throw new Error('redis transaction or pipeline was discarded');
  return replies.map(([err, reply]) => {
    if (err) throw err;
    return reply;
  });
}
