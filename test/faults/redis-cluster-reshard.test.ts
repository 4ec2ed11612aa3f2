/**
 * Redis Cluster resharding while three `tokenwarden serve` processes serve continuous mixed traffic
 * with enforce budgets (test/faults/failover-traffic.ts): every slot that holds tokenwarden's keys
 * moves to another master while requests flow. The budget ledger's slot moves with `redis-cli
 * --cluster reshard`; every other slot (inventory shards, registries)
 * with CLUSTER SETSLOT IMPORTING/MIGRATING and MIGRATE, a few keys at a time, so that scripts meet
 * half-migrated slots for a while. Proven here:
 * - no sidecar exits, every request is decided by the ledger (no store error: MOVED, ASK and
 *   TRYAGAIN are followed and retried within the ledger deadline), and no reshard step fails;
 * - no script runs on a half-migrated slot: that would split counters between the two masters and
 *   make MIGRATE fail with BUSYKEY (redis-client.ts declares a migration guard key on every script,
 *   so Redis answers TRYAGAIN until the slot has moved);
 * - the budgets count every admitted request's usage exactly once, no reservation is left, and the
 *   inventory holds every exchange once.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/store/redis-layout.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { REDIS_CLI_BIN, redisCommand, type RedisProcess } from '../support/redis-process.js';
import {
  decisions,
  ENVOY,
  expectExactEndState,
  FailoverFleet,
  fleetStoreErrors,
  MixedTraffic,
  type Seen,
  unexpectedAnswers,
  warmUp,
} from './failover-traffic.js';

const nodeId = async (node: RedisProcess): Promise<string> => String(await redisCommand(node.port, ['CLUSTER', 'MYID']));

function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI_BIN, args, { timeout: 60_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

/**
 * What redis-cli --cluster reshard does for one slot: `keysPerMigrate` keys per MIGRATE, with a
 * pause between them when asked (the slot then stays half-migrated for a while).
 */
async function migrateSlot(cluster: RedisCluster, slot: number, from: RedisProcess, to: RedisProcess, keysPerMigrate: number, pauseMs: number): Promise<number> {
  const [fromId, toId] = [await nodeId(from), await nodeId(to)];
  await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId]);
  await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId]);
  let moved = 0;
  for (;;) {
    const keys = (await redisCommand(from.port, ['CLUSTER', 'GETKEYSINSLOT', slot, keysPerMigrate])) as string[];
    if (keys.length === 0) break;
    await redisCommand(from.port, ['MIGRATE', '127.0.0.1', to.port, '', 0, 5_000, 'KEYS', ...keys], 10_000);
    moved += keys.length;
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  // As redis-cli does: the target first, then the source, then every other master.
  await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  for (const m of await cluster.masters()) if (m.node !== to && m.node !== from) await redisCommand(m.node.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  return moved;
}

/** Every slot holding keys whose name contains `prefix`: its master and its keys. */
async function slotsWithKeys(cluster: RedisCluster, prefix: string): Promise<Map<number, { owner: RedisProcess; keys: string[] }>> {
  const out = new Map<number, { owner: RedisProcess; keys: string[] }>();
  for (const m of await cluster.masters()) {
    for (const key of (await redisCommand(m.node.port, ['KEYS', `*${prefix}*`])) as string[]) {
      const slot = keySlot(key);
      const entry = out.get(slot) ?? { owner: m.node, keys: [] };
      entry.keys.push(key);
      out.set(slot, entry);
    }
  }
  return out;
}

describe('Redis Cluster resharding under traffic through three sidecars', () => {
  let cluster: RedisCluster;
  let prefix = '';
  let traffic: MixedTraffic | undefined;
  const fleet = new FailoverFleet();

  beforeAll(async () => {
    cluster = await startRedisCluster();
    // A prefix whose ledger slot is among the first slots of its master: `redis-cli --cluster
    // reshard` moves a master's lowest slots, so moving a handful moves the ledger's.
    const starts = (await cluster.masters()).map((m) => m.slots[0]![0]);
    for (let n = 0; !prefix; n++) {
      const slot = keySlot(`{reshard-${n}}`);
      if (starts.some((s) => slot >= s && slot < s + 8)) prefix = `reshard-${n}`;
    }
    await fleet.start({
      redis: `url: "redis://127.0.0.1:1", cluster_nodes: [${cluster.nodes.map((n) => `"${n}"`).join(', ')}]`,
      keyPrefix: prefix,
      // Long enough for a decision to wait out the migration of the ledger's slot (TRYAGAIN,
      // retried every 20 ms within the command timeout) on a loaded machine; under Envoy's timeout.
      ledgerTimeoutMs: 3_000,
      commandTimeoutMs: 3_000,
    });
  }, 60_000);

  afterAll(async () => {
    await traffic?.stop();
    await fleet.stop();
    await cluster?.close();
  });

  it('follows MOVED, ASK and TRYAGAIN: no request fails, the budgets stay exact, no exchange is lost', { timeout: 120_000 }, async () => {
    const warm = await warmUp(fleet);
    traffic = new MixedTraffic(fleet.sidecars, { envoy: { ...ENVOY, message_timeout_ms: 5_000 } });
    await traffic.more(60);

    // The ledger's slot, and every lower slot of its master, with redis-cli.
    traffic.phase = 'ledger slot resharded';
    const ledgerKey = `{${prefix}}:budget:cnt:tokens`;
    const ledgerSlot = await cluster.slotOf(ledgerKey);
    const masters = await cluster.masters();
    const source = masters.find((m) => m.slots.some(([a, b]) => ledgerSlot >= a && ledgerSlot <= b))!;
    const target = masters.find((m) => m !== source)!;
    expect(Number(await redisCommand(source.node.port, ['CLUSTER', 'COUNTKEYSINSLOT', ledgerSlot]))).toBeGreaterThan(10);
    await redisCli([
      '--cluster', 'reshard', source.node.address,
      '--cluster-from', await nodeId(source.node),
      '--cluster-to', await nodeId(target.node),
      '--cluster-slots', String(ledgerSlot - source.slots[0]![0] + 1),
      '--cluster-yes',
    ]);
    expect(await cluster.masterOf(ledgerKey)).toBe(target.node);
    await traffic.more(60);

    // Every other slot with tokenwarden's keys (inventory shards, registries), slowly, a few at a time.
    traffic.phase = 'inventory slots resharded';
    const others = [...(await slotsWithKeys(cluster, prefix))].filter(([slot]) => slot !== ledgerSlot);
    // The inventory shards the consumers' records are in (one per consumer at most).
    expect(others.filter(([, e]) => e.keys.some((k) => k.includes(':rec:'))).length).toBeGreaterThan(0);
    let keysMoved = 0;
    for (const [slot, { owner }] of others) {
      const current = await cluster.masters();
      const to = current[(current.findIndex((m) => m.node === owner) + 1) % current.length]!.node;
      keysMoved += await migrateSlot(cluster, slot, owner, to, 5, 5);
      const now = (await cluster.masters()).find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b));
      expect(now?.node, `slot ${slot}`).toBe(to);
    }
    expect(keysMoved).toBeGreaterThan(others.length);
    await traffic.more(60);

    // And the ledger's slot back, 100 keys per MIGRATE (redis-cli --cluster-pipeline 100). While it
    // migrates, every ledger call waits (TRYAGAIN): it holds a key per request settled in the last
    // 15 minutes, so the pace decides how long decisions wait.
    traffic.phase = 'ledger slot moved back';
    await migrateSlot(cluster, ledgerSlot, target.node, source.node, 100, 0);
    expect(await cluster.masterOf(ledgerKey)).toBe(source.node);
    await traffic.more(60);
    await traffic.stop();
    const stoppedAt = Date.now();

    // The cluster is whole: every slot served, no slot left open.
    await cluster.waitHealthy({ timeoutMs: 30_000 });
    expect(await redisCli(['--cluster', 'check', cluster.nodes[0]!])).not.toMatch(/\[WARNING\]|\[ERR\]/);

    const all: Seen[] = [...warm, ...traffic.seen];
    expect(fleet.exited()).toEqual([]);
    expect(unexpectedAnswers(all)).toEqual([]);
    // Every decision was the ledger's: none fell to on_store_error.
    expect(await fleetStoreErrors(fleet)).toEqual({});
    const d = decisions(all);
    expect([d['tokens-app'].byStoreError, d['money-app'].byStoreError, d['capped-app'].byStoreError]).toEqual([0, 0, 0]);

    await expectExactEndState(fleet, all, { redis: { cluster_nodes: cluster.nodes }, keyPrefix: prefix }, stoppedAt);
  });
});
