/**
 * The Redis client's failover and resharding behaviour (src/store/redis-client.ts) in isolation:
 * the migration guard key a Cluster client declares on every script, the bounded wait for a
 * connection in progress, and the reconnection on READONLY (a write sent to a master that has since
 * become a replica). The end-to-end proofs are the
 * tests in test/faults/redis-*-failover.test.ts and redis-cluster-reshard.test.ts.
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/types.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { addMigrationGuard, CONNECTION_NAME, createRedisClient, LazyConnection, migrationGuardKey, reconnectOnError } from '../../src/store/redis-client.js';
import { HOUR_MS } from '../../src/time.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { until } from '../support/wait.js';

describe('migration guard key', () => {
  it('shares the first key’s slot: its hash tag, or the whole key as one', () => {
    expect(migrationGuardKey('{tw}:budget:req:1')).toBe('{tw}:tokenwarden:migration-guard');
    expect(migrationGuardKey('{tw:inv:3:17}:batch:b1')).toBe('{tw:inv:3:17}:tokenwarden:migration-guard');
    expect(migrationGuardKey('plain-key')).toBe('{plain-key}:tokenwarden:migration-guard');
    // Braces without a tag hash as a whole key, which no tag can reproduce: no guard.
    expect(migrationGuardKey('a{}b')).toBeNull();
  });

  it('is declared after a script’s keys, once, and only on scripts with keys', () => {
    const script = { name: 'evalsha', args: ['sha', '2', '{p}:a', '{p}:b', 'arg1', 'arg2'] as unknown[] };
    addMigrationGuard(script);
    expect(script.args).toEqual(['sha', '3', '{p}:a', '{p}:b', '{p}:tokenwarden:migration-guard', 'arg1', 'arg2']);
    addMigrationGuard(script);
    expect(script.args).toHaveLength(7);
    const eval0 = { name: 'eval', args: ['return 1', '0'] as unknown[] };
    addMigrationGuard(eval0);
    expect(eval0.args).toEqual(['return 1', '0']);
    const get = { name: 'get', args: ['{p}:a'] as unknown[] };
    addMigrationGuard(get);
    expect(get.args).toEqual(['{p}:a']);
  });
});

describe('LazyConnection', () => {
  it('waits for a connection in progress at most connect_timeout_ms, sharing one wait', async () => {
    // A client stuck connecting, as a Cluster client is when its first attempt failed.
    const stuck = Object.assign(new EventEmitter(), { status: 'connecting' });
    const conn = new LazyConnection({ ...defaultConfig().store.redis, connect_timeout_ms: 200 }, stuck as never);
    const started = Date.now();
    await expect(Promise.all([conn.ready(), conn.ready()])).rejects.toThrow(/no connection within 200 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(stuck.listenerCount('ready')).toBe(0);

    const waiting = conn.ready();
    stuck.status = 'ready';
    stuck.emit('ready');
    await expect(waiting).resolves.toBe(stuck);
    await expect(conn.ready()).resolves.toBe(stuck);
  });
});

describe('reconnection on READONLY', () => {
  it('asks for a reconnection on READONLY only, including from inside a script', () => {
    expect(reconnectOnError(new Error("READONLY You can't write against a read only replica."))).toBe(1);
    expect(reconnectOnError(new Error("READONLY You can't write against a read only replica. script: 1a2b, on @user_script:2."))).toBe(1);
    expect(reconnectOnError(new Error('ERR wrong number of arguments'))).toBe(false);
    expect(reconnectOnError(new Error('NOSCRIPT No matching script'))).toBe(false);
  });

  let master: RedisServer;
  let other: RedisServer;
  beforeAll(async () => {
    [master, other] = await Promise.all([startRedis(), startRedis()]);
  });
  afterAll(async () => {
    await Promise.all([master?.close(), other?.close()]);
  });

  it('drops the connection to a master that became a replica, and works once a master answers again', async () => {
    const cfg = { ...defaultConfig().store.redis, url: master.url, key_prefix: `ro${process.pid}`, command_timeout_ms: 1_000 };
    const client = createRedisClient(cfg);
    client.on('error', () => {});
    const ledger = new RedisLedger({ redis: cfg, client, resendFinaliseMs: 0, retryFinaliseMs: 0 });
    const admin = new Redis(master.url);
    const reserve = () =>
      ledger.reserve({ requestId: `r${Math.random()}`, leaseMs: 30_000, items: [{ counter: 'c', budgetId: 'b', max: 100, amount: 1, enforce: true, windowEndMs: Date.now() + HOUR_MS }], consumer: 'a', nowMs: Date.now() });
    try {
      expect((await reserve()).admitted).toBe(true);
      // The ids of tokenwarden's connections to the server.
      const connections = async (): Promise<string[]> =>
        String(await admin.client('LIST'))
          .split('\n')
          .filter((l) => l.includes(` name=${CONNECTION_NAME} `))
          .map((l) => /^id=(\d+)/.exec(l)![1]!);
      const [first, ...more] = await connections();
      expect(first).toBeDefined();
      expect(more).toEqual([]);
      let reconnects = 0;
      client.on('reconnecting', () => reconnects++);

      // Demoted behind the client's back (an operator's REPLICAOF; the sentinels' demotion also
      // kills the clients, which ends the same way).
      await admin.replicaof('127.0.0.1', String(other.port));
      await expect(reserve()).rejects.toThrow(/READONLY/);
      await until(() => reconnects > 0, 'the client to reconnect');
      // A new connection (with Sentinel, the reconnection asks the sentinels where the master is).
      await until(async () => {
        const now = await connections();
        return now.length === 1 && now[0] !== first;
      }, 'a new connection instead of the old one');

      await admin.replicaof('NO', 'ONE');
      await until(() => reserve().then((r) => r.admitted, () => false), 'writes to work again');
    } finally {
      admin.disconnect();
      await ledger.close();
      client.disconnect();
    }
  });
});
