/**
 * Redis made slow, stalled, cut off, killed and restarted while traffic flows through three
 * `tokenwarden serve` processes (budgets in enforce mode on Redis, Envoy with its default 200 ms
 * message timeout, a TCP proxy between the sidecars and Redis). Proven here:
 * - no sidecar crashes, and Envoy gets every answer within its message timeout: ledger calls on the
 *   request path give up after governance.ledger_timeout_ms (default 50 ms) and each budget's
 *   on_store_error decides (closed: 429, open: admitted);
 * - no reservation outlives its lease, and after recovery the ledger counts exactly what is settled;
 * - the shared inventory holds every exchange exactly once (the Recorder retries idempotent batches).
 * Redis itself is killed with its data saved (what a persistent Redis keeps): what a Redis without
 * persistence forgets on a crash is Redis's loss, not the sidecars'.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { EnvoyEmulator, type ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { headers, rawClient } from '../support/raw-client.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { TcpFaultProxy, type ProxyMode } from '../support/tcp-proxy.js';
import { eventually, until } from '../support/wait.js';
import { alive, budgetLimit, chat, chatRequest, countBy, ENVOY, envoyTrouble, inventoryRequests, killAll, settlementsPending, startFleetSidecar, type FleetSidecar } from './fleet.js';

const PREFIX = 'faults';
const SIDECARS = 3;
const BUDGETS = `
budgets:
  - id: closed
    mode: enforce
    on_store_error: closed
    select: { consumers: [closed-app] }
    limits: [{ requests: 1000000, per: day }]
  - id: open
    mode: enforce
    on_store_error: open
    select: { consumers: [open-app] }
    limits: [{ requests: 1000000, per: day }]
`;

interface Seen {
  phase: string;
  sidecar: string;
  consumer: string;
  r: ExchangeResult;
}

/** Two Envoy workers per sidecar, one per budget's consumer, until stopped. */
class Traffic {
  readonly seen: Seen[] = [];
  phase = 'baseline';
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(sidecars: FleetSidecar[]) {
    this.loops = sidecars.flatMap((s) => [0, 1].map((w) => this.loop(s, w)));
  }

  private async loop(s: FleetSidecar, worker: number): Promise<void> {
    const envoy = new EnvoyEmulator(s.grpcAddress, ENVOY);
    const consumer = worker === 0 ? 'closed-app' : 'open-app';
    while (this.running) {
      const phase = this.phase;
      this.seen.push({ phase, sidecar: s.name, consumer, r: await envoy.exchange(chat(consumer)) });
    }
    await envoy.close();
  }

  /** Waits until `n` more exchanges of the current phase completed. */
  async more(n: number): Promise<void> {
    const phase = this.phase;
    const target = this.inPhase(phase).length + n;
    await until(() => this.inPhase(phase).length >= target, `${n} exchanges in phase ${phase}`, 20_000);
  }

  inPhase(phase: string): Seen[] {
    return this.seen.filter((s) => s.phase === phase);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function warmUp(sidecars: FleetSidecar[]): Promise<void> {
  for (const s of sidecars) {
    const envoy = new EnvoyEmulator(s.grpcAddress, { ...ENVOY, message_timeout_ms: 5_000 });
    for (const consumer of ['warm-up', 'warm-up']) expect((await envoy.exchange(chat(consumer))).downstream.status).toBe(200);
    await envoy.close();
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('Redis faults under traffic through three sidecars', () => {
  let redis: RedisServer;
  let proxy: TcpFaultProxy;
  let dir: string;
  const sidecars: FleetSidecar[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    proxy = new TcpFaultProxy(redis.port);
    const proxyUrl = `redis://127.0.0.1:${await proxy.listen()}`;
    dir = mkdtempSync(path.join(tmpdir(), 'tw-redis-faults-'));
    const yaml = [
      'consumer: { fingerprint_secret: faults-test }',
      'store:',
      '  type: redis',
      `  redis: { url: "${proxyUrl}", key_prefix: ${PREFIX}, connect_timeout_ms: 300, command_timeout_ms: 500 }`,
      '  flush_interval_ms: 100',
      // ledger_timeout_ms keeps its default (50 ms): that is what must hold under Envoy's 200 ms.
      'governance: { lease_ms: 1000 }',
      'logging: { level: warn }',
      BUDGETS,
    ].join('\n');
    for (let i = 0; i < SIDECARS; i++) sidecars.push(await startFleetSidecar(dir, `sidecar-${i}`, yaml));
    // First exchanges after start pay for loading code paths; the faults below are about Redis.
    await warmUp(sidecars);
  });

  afterAll(async () => {
    await killAll(sidecars);
    await proxy?.close();
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers Envoy in time, leaks no reservation and loses no inventory record', async () => {
    const traffic = new Traffic(sidecars);
    const phase = async (name: string, mode: ProxyMode, delayMs = 0): Promise<void> => {
      traffic.phase = name;
      proxy.delayMs = delayMs;
      proxy.mode = mode;
      await traffic.more(24);
    };
    await traffic.more(24);
    await phase('slow (20 ms replies)', 'delay', 20);
    await phase('slower than the ledger deadline (300 ms replies)', 'delay', 300);
    await phase('stalled', 'stall');
    await phase('cut', 'cut');
    await phase('back', 'pass');

    // Killed with its data on disk: stalled first, so nothing reaches Redis between SAVE and the kill.
    traffic.phase = 'killed';
    proxy.mode = 'stall';
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 });
    await admin.save();
    admin.disconnect();
    redis.kill('SIGKILL');
    await until(() => refusesConnections(redis.port), 'redis-server to die');
    await phase('down (connection refused)', 'pass');
    await redis.restart({ keepData: true });
    traffic.phase = 'recovered';
    // Every sidecar decides on the restarted Redis again (closed-app admitted, not refused).
    await until(
      () => sidecars.every((s) => traffic.inPhase('recovered').some((x) => x.sidecar === s.name && x.consumer === 'closed-app' && x.r.downstream.status === 200)),
      'every sidecar to admit through the restarted Redis',
      20_000,
    );
    await traffic.stop();

    expect(sidecars.filter((s) => !alive(s)).map((s) => s.process.stderr())).toEqual([]);
    const trouble = traffic.seen.flatMap((x) =>
      envoyTrouble(x.r).map((t) => `${x.phase} / ${x.sidecar} / ${x.consumer}: ${t} (sent ${x.r.sent.map((m) => m.kind)}; answered ${x.r.answers.map((m) => m.kind)})`),
    );
    expect(trouble).toEqual([]);
    // on_store_error open never refuses; closed refuses exactly when the store could not answer in time.
    expect(traffic.seen.filter((x) => x.consumer === 'open-app' && x.r.downstream.status !== 200)).toEqual([]);
    const refused = (p: string): number => traffic.inPhase(p).filter((x) => x.r.downstream.status === 429).length;
    for (const p of ['slower than the ledger deadline (300 ms replies)', 'stalled', 'cut', 'down (connection refused)']) expect(refused(p), p).toBeGreaterThan(0);
    for (const x of traffic.seen.filter((y) => y.r.downstream.status === 429)) {
      expect(x.consumer).toBe('closed-app');
      expect(x.r.upstream.contacted).toBe(false);
      expect(x.r.downstream.headers?.get('x-tokenwarden-budget')).toBe('closed');
    }

    // Reservations made before, during or after the faults are settled, released or expired (1 s leases).
    const [first] = sidecars;
    await eventually(async () => {
      expect(await budgetLimit(first!, 'closed')).toMatchObject({ reserved: 0 });
      expect(await budgetLimit(first!, 'open')).toMatchObject({ reserved: 0 });
    }, 5_000);
    // Settlements that failed during the faults are retried in the background: each counts once it
    // lands, so the counters are read once none waits (their second sends, idempotent, included).
    await eventually(async () => expect(await Promise.all(sidecars.map(settlementsPending))).toEqual(sidecars.map(() => 0)), 15_000);
    // After recovery the counters count exactly what is settled.
    const before = { closed: (await budgetLimit(first!, 'closed')).used, open: (await budgetLimit(first!, 'open')).used };
    const clean: Seen[] = [];
    for (const s of sidecars) {
      const envoy = new EnvoyEmulator(s.grpcAddress, ENVOY);
      for (const consumer of ['closed-app', 'open-app', 'closed-app', 'open-app']) {
        const r = await envoy.exchange(chat(consumer));
        expect(r.downstream.status).toBe(200);
        clean.push({ phase: 'clean', sidecar: s.name, consumer, r });
      }
      await envoy.close();
    }
    await eventually(async () => {
      expect(await budgetLimit(first!, 'closed')).toMatchObject({ used: before.closed + 2 * SIDECARS, reserved: 0 });
      expect(await budgetLimit(first!, 'open')).toMatchObject({ used: before.open + 2 * SIDECARS, reserved: 0 });
    });

    // SIGTERM writes what is left; the inventory then holds every exchange once, refusals included.
    for (const s of sidecars) s.process.child.kill('SIGTERM');
    for (const s of sidecars) expect(await s.process.exited, s.process.stderr()).toBe(0);
    for (const s of sidecars) expect(s.process.stderr()).not.toContain('inventory deltas dropped');
    const sent = countBy([...traffic.seen, ...clean], (x) => x.consumer);
    sent['warm-up'] = 2 * SIDECARS;
    expect(await inventoryRequests(redis.url, PREFIX)).toEqual(sent);
  });
});

describe('reservations whose reply is lost or late', () => {
  let redis: RedisServer;
  let proxy: TcpFaultProxy;
  let srv: TestServer;
  const LEDGER_TIMEOUT_MS = 5_000;
  beforeAll(async () => {
    redis = await startRedis();
    proxy = new TcpFaultProxy(redis.port);
    const proxyUrl = `redis://127.0.0.1:${await proxy.listen()}`;
    const parsed = parseConfig(BUDGETS, 'redis-faults.yaml', {});
    srv = await startTestServer((c) => {
      c.admin.address = '127.0.0.1:0';
      c.store.type = 'redis';
      c.store.redis.url = proxyUrl;
      c.store.redis.command_timeout_ms = 300;
      c.budgets = parsed.budgets;
      c.governance.ledger_timeout_ms = LEDGER_TIMEOUT_MS;
      // Far longer than the test: only giving a reservation back can empty the counter.
      c.governance.lease_ms = 600_000;
    });
  });
  afterAll(async () => {
    await srv.stop();
    await proxy.close();
    await redis.close();
  });

  const reserved = async (): Promise<number> => {
    const res = await fetch(`http://${srv.adminAddress}/api/v1/budgets/closed`);
    return ((await res.json()) as { limits: { reserved: number }[] }).limits[0]!.reserved;
  };

  it('a stream cancelled while the ledger decides gives its reservation back as soon as the ledger answers', async () => {
    expect(await reserved()).toBe(0);
    proxy.mode = 'stall';
    const client = rawClient(srv.address);
    const s = client.open();
    const request = chatRequest('closed-app');
    s.write({ request_headers: { headers: headers(request.headers) } });
    s.write({ request_body: { body: request.body, end_of_stream: true } });
    await s.next(1);
    // The reserve call is on its way to Redis (held by the proxy) when Envoy gives up.
    await until(() => proxy.queued > 0, 'the reservation to reach the proxy');
    s.cancel();
    await until(() => srv.server.activeStreams === 0, 'the stream to close');
    await srv.waitForRecords(1);
    proxy.mode = 'pass';
    await eventually(async () => expect(await reserved()).toBe(0), 3_000);
    expect(s.answers.map((a) => a.response)).toEqual(['request_headers']);
    client.close();
  });

  it('a refusal after a timed-out reserve that Redis ran gives the reservation back', async () => {
    // Requests reach Redis at once; replies come after the client's command timeout (300 ms).
    proxy.delayMs = 600;
    proxy.mode = 'delay';
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange(chat('closed-app'));
    await envoy.close();
    expect(r.downstream.status).toBe(429);
    expect(r.upstream.contacted).toBe(false);
    proxy.mode = 'pass';
    await eventually(async () => expect(await reserved()).toBe(0), 3_000);
  });
});
