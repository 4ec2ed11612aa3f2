/**
 * The catalog in a running sidecar: config merged with the admin API's definitions (config wins),
 * replaced on config reload, and shared between sidecars through Redis (a write through one
 * sidecar's admin API reaches another's catalog in force when it polls the registry).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { configCatalog } from '../src/config/watch.js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startTestServer, type TestServer } from './support/server.js';

const CONFIG = parseConfig(
  `
owners: [{ id: platform, name: Platform }]
resources: [{ provider: openai, model: gpt-4o, sanctioned: true }]
policies: { unsanctioned: { mode: enforce } }
`,
  'c.yaml',
  {},
);

const running: TestServer[] = [];

async function sidecar(redisUrl?: string, prefix?: string): Promise<TestServer & { api(method: string, path: string, body?: unknown): Promise<number> }> {
  const s = await startTestServer((c) => {
    c.admin.address = '127.0.0.1:0';
    c.owners = CONFIG.owners;
    c.resources = CONFIG.resources;
    c.policies = CONFIG.policies;
    c.governance.registry_poll_ms = 3_600_000;
    if (redisUrl !== undefined) {
      c.store.type = 'redis';
      c.store.redis = { ...c.store.redis, url: redisUrl, key_prefix: prefix ?? 'tw' };
    }
  });
  running.push(s);
  return Object.assign(s, {
    async api(method: string, path: string, body?: unknown): Promise<number> {
      const res = await fetch(`http://${s.adminAddress}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      await res.text();
      return res.status;
    },
  });
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

describe('the catalog in force', () => {
  it('starts from the config, takes API writes at once, and follows config reloads', async () => {
    const s = await sidecar();
    const before = s.server.catalog.version;
    expect(s.server.catalog.sanction('c1', 'openai', 'gpt-4o')).toEqual({ sanctioned: true, policy: 'global', mode: 'enforce' });
    expect(await s.api('PUT', '/api/v1/resources/anthropic%2Fclaude-3-5-sonnet', { sanctioned: true })).toBe(201);
    expect(s.server.catalog.sanction('c1', 'anthropic', 'claude-3-5-sonnet').sanctioned).toBe(true);
    expect(s.server.catalog.version).toBeGreaterThan(before);

    // A reload that marks the API's resource unsanctioned in the config: the config wins.
    const reloaded = parseConfig(
      'owners: [{ id: platform, name: Platform }]\nresources: [{ provider: anthropic, model: claude-3-5-sonnet, sanctioned: false }]\n',
      'c.yaml',
      {},
    );
    s.server.reloadCatalog(configCatalog(reloaded));
    expect(s.server.catalog.sanction('c1', 'anthropic', 'claude-3-5-sonnet')).toEqual({ sanctioned: false, policy: 'global', mode: 'off' });
    expect(s.server.catalog.resource('openai', 'gpt-4o')).toBeNull();
  });
});

describe('resource prices', () => {
  it("prices exchanges with the catalog resource's override, which an API write changes", async () => {
    const fx = loadFixtures().find((f) => f.name === 'openai_chat_completions_basic');
    if (fx === undefined) throw new Error('fixture openai_chat_completions_basic is missing');
    const s = await sidecar();
    const envoy = new EnvoyEmulator(s.address, SIDECAR);
    const replay = () =>
      envoy.exchange({
        request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
        upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
        attributes: { 'source.address': '10.1.2.3:40000' },
      });
    try {
      // 31 input and 17 output tokens at $1000 / $2000 per million: 31,000 + 34,000 micro-dollars.
      expect(await s.api('PUT', '/api/v1/resources/openai%2Fgpt-4o-mini', { sanctioned: true, price: { input_mtok: 1000, output_mtok: 2000 } })).toBe(201);
      await replay();
      expect((await s.waitForRecords(1))[0]?.costMicroUsd).toBe(65_000);
      // Without an override, the bundled price applies (the config's enforce policy needs it sanctioned).
      expect(await s.api('PUT', '/api/v1/resources/openai%2Fgpt-4o-mini', { sanctioned: true })).toBe(200);
      await replay();
      const bundled = (await s.waitForRecords(2))[1]?.costMicroUsd;
      expect(bundled).toBeGreaterThan(0);
      expect(bundled).toBeLessThan(100);
    } finally {
      await envoy.close();
    }
  });
});

describe('the catalog shared through Redis', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.close();
  });

  it('reaches another sidecar when it polls the registry', async () => {
    const prefix = `catsrv${process.pid}`;
    const a = await sidecar(redis.url, prefix);
    const b = await sidecar(redis.url, prefix);
    expect(await a.api('POST', '/api/v1/owners', { id: 'payments', name: 'Payments' })).toBe(201);
    expect(await a.api('POST', '/api/v1/consumer-rules', { id: 'pay', match: 'spiffe://prod/ns/payments/*', owner: 'payments' })).toBe(201);
    expect(a.server.catalog.consumer('spiffe://prod/ns/payments/sa/x').owner).toBe('payments');
    expect(b.server.catalog.consumer('spiffe://prod/ns/payments/sa/x').owner).toBeNull();
    await b.server.refreshCatalog();
    expect(b.server.catalog.consumer('spiffe://prod/ns/payments/sa/x')).toMatchObject({ owner: 'payments', resolvedBy: 'rule:pay' });
    expect(b.server.catalog.owner('payments')?.source).toBe('api');
  });
});
