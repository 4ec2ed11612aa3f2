/** Builds the ioredis client for a RedisConfig: a single server (url), Sentinel, or Cluster. */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
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
