/**
 * The Redis ledger against a real redis-server: the shared contract, the key layout (one hash tag,
 * TTLs instead of reset jobs), one command per decision, and failing fast while Redis is down.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { COUNTER_GRACE_MS, SETTLE_GRACE_MS } from '../../src/ledger/rules.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { DAY_MS, HOUR_MS } from '../../src/time.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { item, ledgerContract, requestId, T0 } from './ledger-contract.js';
import { TcpFaultProxy } from '../support/tcp-proxy.js';
import { until } from '../support/wait.js';

let server: RedisServer;
let prefixSeq = 0;

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  await server?.close();
});

function config(over: Partial<RedisConfig> = {}): RedisConfig {
  return { ...defaultConfig().store.redis, url: server.url, key_prefix: `l${process.pid}-${++prefixSeq}`, ...over };
}


ledgerContract('redis', async ({ now }) => {
  const ledger = new RedisLedger({ redis: config(), now });
  return { ledger, cleanup: () => ledger.close() };
});

describe('RedisLedger', () => {
  let admin: Redis;

  beforeAll(() => {
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    await admin.quit();
  });

  it('keeps every key under the {prefix} hash tag, each with a TTL', async () => {
    const cfg = config();
    const now = T0 + 10 * 60_000;
    const ledger = new RedisLedger({ redis: cfg, now: () => now });
    try {
      const windowEnd = T0 + HOUR_MS;
      const settled = requestId();
      const live = requestId();
      const items = [item('hour', { windowEndMs: windowEnd, amount: 5, max: 1, enforce: false }), item('tpm', { windowEndMs: undefined, rollingMs: 60_000 })];
      await ledger.reserve({ requestId: settled, leaseMs: 30_000, items, consumer: 'alice', nowMs: now });
      await ledger.settle({ requestId: settled, actual: { hour: 5, tpm: 1 } });
      await ledger.reserve({ requestId: live, leaseMs: 30_000, items, consumer: 'alice', nowMs: now });

      const keys = await admin.keys(`*${cfg.key_prefix}*`);
      for (const key of keys) expect(key.startsWith(`{${cfg.key_prefix}}:budget:`), key).toBe(true);
      const ttl = async (suffix: string): Promise<number> => admin.pttl(`{${cfg.key_prefix}}:budget:${suffix}`);
      // The calendar counter lives until its window end + grace on the ledger's clock.
      for (const k of ['cnt:hour', 'lz:hour', 'la:hour']) {
        expect(await ttl(k)).toBeLessThanOrEqual(windowEnd + COUNTER_GRACE_MS - now);
        expect(await ttl(k)).toBeGreaterThan(windowEnd + COUNTER_GRACE_MS - now - 60_000);
      }
      // The rolling counter lives while a lease could still settle into it, plus its window.
      expect(await ttl('cnt:tpm')).toBeGreaterThan(60_000);
      expect(await ttl('cnt:tpm')).toBeLessThanOrEqual(30_000 + SETTLE_GRACE_MS + 60_000);
      expect(await ttl(`req:${live}`)).toBeGreaterThan(30_000);
      expect(await ttl(`req:${settled}`)).toBe(-2);
      expect(await ttl(`done:${settled}`)).toBeGreaterThan(SETTLE_GRACE_MS - 60_000);
      expect(await ttl(`wb:${T0}`)).toBeGreaterThan(30 * DAY_MS);
      expect(keys.sort()).toEqual(
        ['cnt:hour', 'lz:hour', 'la:hour', 'cnt:tpm', 'lz:tpm', 'la:tpm', `req:${live}`, `done:${settled}`, `wb:${T0}`].map((k) => `{${cfg.key_prefix}}:budget:${k}`).sort(),
      );
    } finally {
      await ledger.close();
    }
  });

  it('rejects a key prefix with braces (it would break the hash tag)', () => {
    expect(() => new RedisLedger({ redis: config({ key_prefix: 'a{b' }) })).toThrow(/braces/);
  });

  it('reserves, settles and releases in one command each', async () => {
    const ledger = new RedisLedger({ redis: config() });
    const marker = new Redis(server.url);
    const monitor = await new Redis(server.url).monitor();
    try {
      await Promise.all([ledger.ping(), marker.ping()]);
      const seen: string[][] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source !== 'lua') seen.push(args);
      });
      const isMarker = (a: string[]): boolean => a[0]?.toLowerCase() === 'echo';
      const commandsOf = async (call: () => Promise<unknown>): Promise<string[]> => {
        seen.length = 0;
        await call();
        await marker.echo('end');
        await until(() => seen.some(isMarker), 'the marker in MONITOR');
        return seen.slice(0, seen.findIndex(isMarker)).map((a) => a[0]!.toLowerCase());
      };
      const items = Array.from({ length: 5 }, (_, i) => item(`c${i}`, { windowEndMs: Date.now() + HOUR_MS }));
      const reserve = (id: string) => () => ledger.reserve({ requestId: id, leaseMs: 30_000, items, consumer: 'a', nowMs: Date.now() });
      const [a, b] = [requestId(), requestId()];
      // The first call of a script sends EVALSHA, then EVAL on NOSCRIPT; later ones EVALSHA only.
      expect((await commandsOf(reserve(a))).at(-1)).toBe('eval');
      expect(await commandsOf(reserve(b))).toEqual(['evalsha']);
      await commandsOf(() => ledger.settle({ requestId: a, actual: { c0: 1 } }));
      expect(await commandsOf(() => ledger.settle({ requestId: a, actual: { c0: 1 } }))).toEqual(['evalsha']);
      expect(await commandsOf(() => ledger.release(b))).toEqual(['evalsha']);
      expect((await ledger.read([{ counter: 'c0', max: 100 }]))[0]).toMatchObject({ used: 1, reserved: 0 });
    } finally {
      monitor.disconnect();
      marker.disconnect();
      await ledger.close();
    }
  });

  it('leaves a client it was given open', async () => {
    const client = new Redis(server.url);
    const ledger = new RedisLedger({ redis: config(), client });
    await ledger.ping();
    await ledger.close();
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });
});

describe('RedisLedger: settlements outlive their call', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await admin.quit();
  });

  const counter = async (ledger: RedisLedger): Promise<{ used: number; reserved: number }> => (await ledger.read([{ counter: 'c', max: 100 }]))[0]!;

  it('sends settlements together, then once more, which restores them where a failover lost them', async () => {
    const cfg = config();
    const ledger = new RedisLedger({ redis: cfg, resendFinaliseMs: 300 });
    // The second sends go out as one script call for the three requests: the only call naming them all.
    const calls: string[][] = [];
    const monitor = await new Redis(server.url).monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^eval/i.test(args[0] ?? '')) calls.push(args);
    });
    try {
      const now = Date.now();
      const ids = [requestId(), requestId(), requestId()];
      const items = [item('c', { windowEndMs: now + HOUR_MS, amount: 5 }), item('tpm', { rollingMs: 60_000, windowEndMs: undefined, amount: 5 })];
      for (const id of ids) await ledger.reserve({ requestId: id, leaseMs: 60_000, items, consumer: 'a', nowMs: now });
      const keys = (await admin.keys(`{${cfg.key_prefix}}:*`)).sort();
      const before = await Promise.all(keys.map((k) => admin.dumpBuffer(k)));
      const tpm = async (): Promise<number> => (await ledger.read([{ counter: 'tpm', max: 100, rollingMs: 60_000 }]))[0]!.used;
      // MONITOR lines arrive late: wait for the reservations', then the settlements' calls, and forget them.
      const naming = (): number => calls.filter((c) => ids.some((id) => c.includes(id))).length;
      await until(() => naming() === ids.length, 'the reservations in MONITOR');
      calls.length = 0;
      await Promise.all(ids.map((id, i) => ledger.settle({ requestId: id, actual: { c: i + 1, tpm: 2 } })));
      const all = (): boolean => ids.every((id) => calls.some((c) => c.includes(id)));
      await until(all, 'the settlements in MONITOR');
      // Settled in the same moment, they went out together: one script call for the three.
      expect(naming()).toBe(1);
      calls.length = 0;
      expect(await counter(ledger)).toEqual(expect.objectContaining({ used: 6, reserved: 0 }));
      expect(ledger.pendingFinalise).toBe(3);
      // What a replica promoted before the settlements reached it holds: the reservations, no settlement.
      await admin.del(...(await admin.keys(`{${cfg.key_prefix}}:*`)));
      for (const [i, k] of keys.entries()) await admin.restore(k, 0, before[i]!, 'REPLACE');
      expect(await counter(ledger)).toEqual(expect.objectContaining({ used: 0, reserved: 15 }));
      await until(async () => (await counter(ledger)).used === 6, 'the second sends', 5_000);
      expect(await counter(ledger)).toEqual(expect.objectContaining({ used: 6, reserved: 0 }));
      expect(await tpm()).toBe(6);
      await until(() => ledger.pendingFinalise === 0, 'nothing left to send');
      // Since the settlements, only the second sends name the requests: fewer calls than requests
      // (one, unless a tick fell between their due times).
      const resends = (): string[][] => calls.filter((c) => ids.some((id) => c.includes(id)));
      await until(() => ids.every((id) => resends().some((c) => c.includes(id))), 'the second sends in MONITOR');
      expect(resends().length).toBeLessThan(ids.length);
      // Sent twice in all: the second send found them settled and changed nothing.
      expect(await counter(ledger)).toEqual(expect.objectContaining({ used: 6, reserved: 0 }));
    } finally {
      monitor.disconnect();
      await ledger.close();
    }
  });

  it('retries a settlement that failed, in the background, once the store answers again', async () => {
    const proxy = new TcpFaultProxy(server.port);
    const ledger = new RedisLedger({ redis: config({ url: `redis://127.0.0.1:${await proxy.listen()}`, command_timeout_ms: 300 }), resendFinaliseMs: 0 });
    try {
      const id = requestId();
      await ledger.reserve({ requestId: id, leaseMs: 60_000, items: [item('c', { windowEndMs: Date.now() + HOUR_MS, amount: 5 })], consumer: 'a', nowMs: Date.now() });
      proxy.mode = 'cut';
      await expect(ledger.settle({ requestId: id, actual: { c: 4 } })).rejects.toThrow();
      expect(ledger.pendingFinalise).toBe(1);
      proxy.mode = 'pass';
      await until(async () => (await counter(ledger).catch(() => ({ used: -1 }))).used === 4, 'the retried settlement', 10_000);
      expect(await counter(ledger)).toEqual(expect.objectContaining({ used: 4, reserved: 0 }));
      await until(() => ledger.pendingFinalise === 0, 'nothing left to send');
    } finally {
      await ledger.close();
      await proxy.close();
    }
  });

  it('reports what waits to be sent again, and a settlement given up when its retries run out', async () => {
    const proxy = new TcpFaultProxy(server.port);
    const pending: number[] = [];
    let lost = 0;
    const ledger = new RedisLedger({
      redis: config({ url: `redis://127.0.0.1:${await proxy.listen()}`, command_timeout_ms: 200 }),
      resendFinaliseMs: 300,
      retryFinaliseMs: 700,
      onPending: (n) => pending.push(n),
      onLost: () => lost++,
    });
    try {
      const [sent, failed] = [requestId(), requestId()];
      for (const id of [sent, failed]) {
        await ledger.reserve({ requestId: id, leaseMs: 60_000, items: [item('c', { windowEndMs: Date.now() + HOUR_MS, amount: 5 })], consumer: 'a', nowMs: Date.now() });
      }
      // Reached Redis: waits for its second send, then nothing is left.
      await ledger.settle({ requestId: sent, actual: { c: 4 } });
      expect(pending.at(-1)).toBe(1);
      await until(() => pending.at(-1) === 0, 'the second send');
      expect(lost).toBe(0);
      // Never reaches Redis: retried for retryFinaliseMs, then given up and counted.
      proxy.mode = 'cut';
      await expect(ledger.settle({ requestId: failed, actual: { c: 4 } })).rejects.toThrow();
      expect(pending.at(-1)).toBe(1);
      await until(() => lost === 1, 'the settlement given up', 10_000);
      expect(pending.at(-1)).toBe(0);
      expect(ledger.pendingFinalise).toBe(0);
    } finally {
      await ledger.close();
      await proxy.close();
    }
  });
});

// Last: it stops and restarts the shared server.
describe('RedisLedger across a Redis outage', () => {
  it('rejects at once while redis-server is stopped and works again after a restart', async () => {
    // A long command timeout: a queued command would hang past the test timeout instead of rejecting.
    const ledger = new RedisLedger({ redis: config({ command_timeout_ms: 120_000 }) });
    const pings = async (): Promise<boolean> => ledger.ping().then(() => true, () => false);
    const reserve = () => ledger.reserve({ requestId: requestId(), leaseMs: 30_000, items: [item('c', { windowEndMs: Date.now() + HOUR_MS })], consumer: 'a', nowMs: Date.now() });
    try {
      expect((await reserve()).admitted).toBe(true);
      await server.stop();
      await expect(reserve()).rejects.toThrow();
      await expect(ledger.settle({ requestId: 'x', actual: {} })).rejects.toThrow();
      await expect(ledger.read([{ counter: 'c', max: 1 }])).rejects.toThrow();
      await expect(ledger.ping()).rejects.toThrow();
      await server.restart();
      await until(pings, 'the ledger to reconnect');
      expect(await reserve()).toMatchObject({ admitted: true, items: [{ reserved: 1 }] });
    } finally {
      await ledger.close();
    }
  });
});
