/** Builds the ioredis client for a RedisConfig: a single server (url), Sentinel, or Cluster. */
import { once } from 'node:events';
import { Cluster, Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/types.js';

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

/** Reconnect quickly but not in a tight loop: the inventory is a shared aggregate, not a queue. */
const retryStrategy = (times: number): number => Math.min(times * 100, 1_000);

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
    // in one write: one syscall instead of one per command. On Cluster, ioredis groups them per slot.
    enableAutoPipelining: true,
    connectTimeout: cfg.connect_timeout_ms,
    commandTimeout: cfg.command_timeout_ms,
  } satisfies RedisOptions;
  if (cfg.cluster_nodes.length > 0) {
    const { lazyConnect, enableOfflineQueue, ...redisOptions } = options;
    return new Cluster(cfg.cluster_nodes.map(parseHostPort), {
      lazyConnect,
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { ...redisOptions, ...urlSecurity(cfg.url) },
    });
  }
  if (cfg.sentinels.length > 0) {
    const security = urlSecurity(cfg.url);
    return new Redis({
      ...options,
      ...security,
      retryStrategy,
      sentinels: cfg.sentinels.map(parseHostPort),
      name: cfg.sentinel_master,
      enableTLSForSentinelMode: security.tls !== undefined,
    });
  }
  return new Redis(cfg.url, { ...options, retryStrategy });
}

/**
 * A Redis client connected on first use. While Redis is unreachable, commands fail at once (no
 * offline queue) and ioredis reconnects in the background. A client passed in is shared and left
 * open by close(); one created here is closed by it.
 */
export class LazyConnection {
  readonly client: Redis | Cluster;
  private readonly owns: boolean;
  private connecting: Promise<void> | null = null;

  constructor(cfg: RedisConfig, client?: Redis | Cluster) {
    this.owns = client === undefined;
    this.client = client ?? createRedisClient(cfg);
    // Connection errors surface as rejected commands; without a listener ioredis would print them.
    if (this.owns) this.client.on('error', () => {});
  }

  async ready(): Promise<Redis | Cluster> {
    const client = this.client;
    if (client.status === 'wait') {
      this.connecting = client.connect().finally(() => {
        this.connecting = null;
      });
    }
    if (this.connecting) await this.connecting;
    // A shared client may be mid-connect on another user's behalf: wait for it rather than fail.
    else if (client.status === 'connecting' || client.status === 'connect') await once(client, 'ready');
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
