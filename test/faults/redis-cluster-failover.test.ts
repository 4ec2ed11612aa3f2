/**
 * A Redis Cluster master SIGKILLed while three `tokenwarden serve` processes serve continuous mixed
 * traffic with enforce budgets (test/faults/failover-traffic.ts): the master that owns the budget
 * ledger's slot (inventory shards live on it too), so its replica is promoted
 * after cluster-node-timeout (2 s here). Proven here:
 * - no sidecar exits, every request is answered (admitted or refused by its budget, or, while the
 *   slot had no master, decided by on_store_error, each such decision counted);
 * - while the master is down, a command on its slots fails or completes within command_timeout_ms:
 *   ioredis retries it (100 ms apart) until the replica is promoted, never past its timeout, and the
 *   ledger's deadline decides the request meanwhile;
 * - after the promotion the budgets count every admitted request's usage exactly once (failed
 *   settlements are retried), no reservation is left, and the inventory holds every exchange once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/types.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import {
  COMMAND_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  decisions,
  expectExactEndState,
  FailoverFleet,
  fleetStoreErrors,
  MixedTraffic,
  type Seen,
  storeErrorsMatch,
  unexpectedAnswers,
  warmUp,
} from './failover-traffic.js';

const PREFIX = 'cluster-failover';

/** Reads the ledger's slot in a loop, once connected, and records how long each call took to settle, and how. */
class SlotProbe {
  readonly calls: { ms: number; ok: boolean }[] = [];
  private running = true;
  private loop: Promise<void> = Promise.resolve();
  private readonly ledger: RedisLedger;

  constructor(nodes: string[]) {
    const redis = { ...defaultConfig().store.redis, url: 'redis://127.0.0.1:1', cluster_nodes: nodes, key_prefix: PREFIX, connect_timeout_ms: CONNECT_TIMEOUT_MS, command_timeout_ms: COMMAND_TIMEOUT_MS };
    this.ledger = new RedisLedger({ redis });
  }

  async start(): Promise<void> {
    await this.ledger.ping();
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        const ok = await this.ledger.read([{ counter: 'probe', max: 1 }]).then(() => true, () => false);
        this.calls.push({ ms: Date.now() - started, ok });
        if (!ok) await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.ledger.close();
  }
}

describe('a Redis Cluster master killed under traffic through three sidecars', () => {
  let cluster: RedisCluster;
  let traffic: MixedTraffic | undefined;
  let probe: SlotProbe | undefined;
  const fleet = new FailoverFleet();

  beforeAll(async () => {
    cluster = await startRedisCluster();
    await fleet.start({ redis: `url: "redis://127.0.0.1:1", cluster_nodes: [${cluster.nodes.map((n) => `"${n}"`).join(', ')}]`, keyPrefix: PREFIX });
  }, 60_000);

  afterAll(async () => {
    await probe?.stop();
    await traffic?.stop();
    await fleet.stop();
    await cluster?.close();
  });

  it('answers every request, keeps the budgets exact, leaks no reservation and loses no inventory record', { timeout: 120_000 }, async () => {
    const warm = await warmUp(fleet);
    traffic = new MixedTraffic(fleet.sidecars);
    await traffic.more(60);

    traffic.phase = 'master killed';
    const owner = await cluster.masterOf(`{${PREFIX}}:budget:cnt:tokens`);
    const masters = await cluster.masters();
    probe = new SlotProbe(cluster.nodes);
    await probe.start();
    const killed = await cluster.killMaster(masters.findIndex((m) => m.node === owner));
    expect(killed.node).toBe(owner);
    // The replica takes over after cluster-node-timeout and an election.
    await cluster.waitHealthy({ timeoutMs: 30_000 });
    expect(await cluster.masterOf(`{${PREFIX}}:budget:cnt:tokens`)).toBe(killed.replicas[0]);
    await probe.stop();
    traffic.phase = 'after';
    await traffic.more(60);
    await traffic.stop();
    const stoppedAt = Date.now();

    // No command on the dead master's slots hung: each failed or completed within its timeout (and
    // the wait for a connection being made, if the client was reconnecting; plus timer slack on a
    // loaded machine), and some did fail while the slot had no master.
    expect(probe.calls.filter((c) => !c.ok).length).toBeGreaterThan(0);
    expect(Math.max(...probe.calls.map((c) => c.ms))).toBeLessThan(CONNECT_TIMEOUT_MS + COMMAND_TIMEOUT_MS + 1_000);

    const all: Seen[] = [...warm, ...traffic.seen];
    expect(fleet.exited()).toEqual([]);
    expect(unexpectedAnswers(all)).toEqual([]);
    const d = decisions(all);
    expect(decisions(traffic.inPhase('master killed'))['tokens-app'].byStoreError).toBeGreaterThan(0);
    const errors = storeErrorsMatch(d, await fleetStoreErrors(fleet));
    expect(errors.counted).toEqual(errors.seen);

    await expectExactEndState(fleet, all, { redis: { cluster_nodes: cluster.nodes }, keyPrefix: PREFIX }, stoppedAt);
  });
});
