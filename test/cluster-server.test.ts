/**
 * Two sidecars (in-process servers) sharing a real Redis Cluster through store.redis.cluster_nodes:
 * the one Cluster connection each builds carries the shared API-key fingerprint secret, the
 * inventory, and the registries behind the admin API.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster.js';
import { redisCommand } from './support/redis-process.js';
import { startTestServer, type TestServer } from './support/server.js';

let cluster: RedisCluster;
const running: TestServer[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function sidecar(prefix: string): Promise<TestServer & { api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> }> {
  const s = await startTestServer((c) => {
    c.admin.address = '127.0.0.1:0';
    c.governance.registry_poll_ms = 3_600_000;
    c.store.flush_interval_ms = 3_600_000;
    // No configured secret: API keys are fingerprinted with the one shared in Redis.
    c.consumer.fingerprint_secret = '';
    c.store.type = 'redis';
    c.store.redis = { ...c.store.redis, url: 'redis://127.0.0.1:1', cluster_nodes: cluster.nodes, key_prefix: prefix };
  });
  running.push(s);
  return Object.assign(s, {
    async api(method: string, path: string, body?: unknown) {
      const res = await fetch(`http://${s.adminAddress}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
  });
}

describe('sidecars on a Redis Cluster', () => {
  it('share the fingerprint secret, the inventory and the admin API definitions', async () => {
    const fx = loadFixtures().find((f) => f.name === 'openai_chat_completions_basic');
    if (fx === undefined) throw new Error('fixture openai_chat_completions_basic is missing');
    const prefix = `clsrv${process.pid}`;
    const [a, b] = [await sidecar(prefix), await sidecar(prefix)];

    // The same API key through each sidecar: one consumer (same fingerprint), two requests.
    for (const s of [a, b]) {
      const envoy = new EnvoyEmulator(s.address, SIDECAR);
      try {
        const r = await envoy.exchange({
          request: { headers: [...fx.request.headers.filter(([k]) => k !== 'authorization'), ['authorization', 'Bearer sk-cluster-test-key']], body_chunks: fx.request.body_chunks },
          upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
          attributes: { 'source.address': '10.1.2.3:40000' },
        });
        expect(r.errors).toEqual([]);
      } finally {
        await envoy.close();
      }
      await s.waitForRecords(1);
      await s.server.flush();
    }
    const inventory = await b.api('GET', '/api/v1/inventory');
    expect(inventory.status).toBe(200);
    expect(inventory.json.items).toHaveLength(1);
    expect(inventory.json.items[0]).toMatchObject({ requests: 2 });
    expect(a.records[0]?.consumer?.id).toMatch(/^key:/);
    expect(a.records[0]?.consumer).toEqual(b.records[0]?.consumer);

    // Definitions written through A's admin API reach B when it polls.
    expect((await a.api('POST', '/api/v1/owners', { id: 'payments', name: 'Payments' })).status).toBe(201);
    const budget = { id: 'team-a', select: { consumers: ['team-a-*'] }, limits: [{ requests: 100, per: 'rolling', seconds: 60 }] };
    expect((await a.api('POST', '/api/v1/budgets', budget)).status).toBe(201);
    await Promise.all([b.server.refreshCatalog(), b.server.refreshBudgets()]);
    expect(b.server.catalog.owner('payments')?.source).toBe('api');
    expect((await b.api('GET', '/api/v1/budgets')).json.items.map((x: { id: string }) => x.id)).toContain('team-a');

    // Each group of keys sits on the master of its own hash tag (README "Redis key layout").
    const holds = async (key: string): Promise<boolean> => (await redisCommand((await cluster.masterOf(key)).port, ['EXISTS', key])) === 1;
    expect(await holds(`{${prefix}}:fingerprint_secret`)).toBe(true);
    expect(await holds(`{${prefix}:catalog}:owners`)).toBe(true);
    expect(await holds(`{${prefix}:registry}:budgets`)).toBe(true);
    for (const m of await cluster.masters()) {
      for (const key of (await redisCommand(m.node.port, ['KEYS', '*'])) as string[]) expect(key.startsWith(`{${prefix}`), key).toBe(true);
    }
  });
});
