/**
 * Redis Sentinel failovers while three `tokenwarden serve` processes serve continuous mixed traffic
 * with enforce budgets (test/faults/failover-traffic.ts): a graceful SENTINEL FAILOVER, then, once
 * the old master follows the new one, a SIGKILL of the new master (the sentinels fail over on their
 * own after down-after-milliseconds, 1 s here). Proven here:
 * - no sidecar exits, and every request is answered: admitted or refused by its budget, or, while no
 *   master answered, decided by its budget's on_store_error (each such decision counted by the
 *   sidecars, and the other way round);
 * - the sidecars follow the sentinels' +switch-master announcement: they leave the old master while
 *   it is still a master, not ~10 s later when the sentinels demote it (and discard what it took);
 * - nothing is lost, although replication is asynchronous and the old master of the graceful
 *   failover acknowledges writes for about a second after its replica was promoted: every inventory
 *   batch and every settlement is sent again 5 s after it was acknowledged (both idempotent), so the
 *   budgets count every admitted request's usage exactly once, the inventory holds every exchange
 *   once, and no reservation is left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/types.js';
import { LazyConnection } from '../../src/store/redis-client.js';
import { info, redisCommand, type RedisProcess } from '../support/redis-process.js';
import { startRedisSentinel, type RedisSentinel } from '../support/redis-sentinel.js';
import { until } from '../support/wait.js';
import {
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

const PREFIX = 'sentinel-failover';

/** tokenwarden's connections to a data node (every one is named: CLIENT LIST name=tokenwarden). */
async function tokenwardenClients(node: RedisProcess): Promise<number> {
  const list = String(await redisCommand(node.port, ['CLIENT', 'LIST']));
  return list.split('\n').filter((l) => / name=tokenwarden /.test(l)).length;
}

/** The keys that mark a write applied: a settled or released request, an applied inventory batch. */
async function writeMarkers(node: RedisProcess): Promise<Set<string>> {
  const keys = async (pattern: string): Promise<string[]> => (await redisCommand(node.port, ['KEYS', pattern])) as string[];
  return new Set([...(await keys(`{${PREFIX}}:budget:done:*`)), ...(await keys(`*${PREFIX}*:batch:*`))]);
}

describe('Redis Sentinel failovers under traffic through three sidecars', () => {
  let deployment: RedisSentinel;
  let traffic: MixedTraffic | undefined;
  const fleet = new FailoverFleet();

  beforeAll(async () => {
    deployment = await startRedisSentinel();
    const sentinels = deployment.sentinels.map((s) => `"${s}"`).join(', ');
    // With sentinels the url only lends credentials: nothing listens there.
    await fleet.start({ redis: `url: "redis://127.0.0.1:1", sentinels: [${sentinels}], sentinel_master: ${deployment.masterName}`, keyPrefix: PREFIX });
  }, 60_000);

  afterAll(async () => {
    await traffic?.stop();
    await fleet.stop();
    await deployment?.close();
  });

  it('answers every request, keeps the budgets exact, leaks no reservation and loses no inventory record', { timeout: 120_000 }, async () => {
    const warm = await warmUp(fleet);
    traffic = new MixedTraffic(fleet.sidecars);
    await traffic.more(60);

    // Graceful: the replica is promoted while the old master still runs and takes writes.
    traffic.phase = 'graceful failover';
    const before = await deployment.currentMaster();
    expect(await tokenwardenClients(before)).toBeGreaterThanOrEqual(fleet.sidecars.length);
    const { from, to } = await deployment.failover();
    await until(async () => (await tokenwardenClients(from)) === 0, 'the sidecars to leave the old master', 8_000);
    // Still a master: the sidecars left on the announcement, not because the sentinels demoted it.
    expect((await info(from.port, 'replication')).role).toBe('master');
    // What the failover lost: settlements and inventory batches the old master acknowledged after the
    // promotion, which the new master does not have (their second sends come 5 s after the first).
    const onNew = await writeMarkers(to);
    const lost = [...(await writeMarkers(from))].filter((k) => !onNew.has(k));
    await traffic.more(60);

    // The sentinels turn the old master into a replica of the new one (about 10 s after the failover).
    traffic.phase = 'old master demoted';
    await deployment.waitHealthy({ timeoutMs: 40_000 });
    await traffic.more(30);

    // Crash: the sentinels notice (down-after 1 s), agree, and promote the replica.
    traffic.phase = 'master killed';
    const victim = await deployment.currentMaster();
    victim.kill('SIGKILL');
    await victim.exited();
    await deployment.waitHealthy({ timeoutMs: 30_000 });
    traffic.phase = 'after';
    await traffic.more(60);
    await traffic.stop();
    const stoppedAt = Date.now();

    const all: Seen[] = [...warm, ...traffic.seen];
    expect(fleet.exited()).toEqual([]);
    expect(unexpectedAnswers(all)).toEqual([]);
    const d = decisions(all);
    // Requests decided while no master answered: closed refused, open admitted, and counted as such.
    expect(decisions(traffic.inPhase('master killed'))['tokens-app'].byStoreError).toBeGreaterThan(0);
    const errors = storeErrorsMatch(d, await fleetStoreErrors(fleet));
    expect(errors.counted).toEqual(errors.seen);

    // Every admitted request's usage is counted exactly once, including those admitted by
    // on_store_error (their settlements were retried) and those whose settlement only the old
    // master of the graceful failover had (sent again).
    await expectExactEndState(fleet, all, { redis: { sentinels: deployment.sentinels, sentinel_master: deployment.masterName }, keyPrefix: PREFIX }, stoppedAt);
    // Every write the graceful failover had lost is there in the end.
    const final = await writeMarkers(await deployment.currentMaster());
    expect(lost.filter((k) => !final.has(k)), `${lost.length} writes lost by the graceful failover`).toEqual([]);
  });

  it('a closed client leaves no subscription on the sentinels', async () => {
    const [sentinel] = deployment.sentinelProcesses;
    // The ids of the sentinel's subscribed connections (the sidecars' detectors among them).
    const subscribers = async (): Promise<string[]> =>
      String(await redisCommand(sentinel!.port, ['CLIENT', 'LIST']))
        .split('\n')
        .filter((l) => / cmd=subscribe /.test(l))
        .map((l) => /^id=(\d+)/.exec(l)![1]!);
    const before = new Set(await subscribers());
    const conn = new LazyConnection({ ...defaultConfig().store.redis, url: 'redis://127.0.0.1:1', sentinels: deployment.sentinels, sentinel_master: deployment.masterName });
    let ours: string[] = [];
    try {
      await (await conn.ready()).ping();
      await until(async () => (ours = (await subscribers()).filter((id) => !before.has(id))).length > 0, 'the failover detector to subscribe');
    } finally {
      await conn.close();
    }
    await until(async () => !(await subscribers()).some((id) => ours.includes(id)), 'its subscription to close');
  });
});
