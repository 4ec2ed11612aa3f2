/**
 * The inventory end to end: fixture traffic through the real gRPC server (sidecar and observability
 * modes) fills the configured store, and the admin API reads back exactly what was recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import type { ExchangeRecord } from '../src/domain.js';
import { startRedis } from './support/redis-server.js';

const fixtures = loadFixtures().filter((f) => f.expected.provider !== 'unknown');

interface ApiRecord {
  consumer: string;
  provider: string;
  model: string;
  requests: number;
  cost_micro_usd: number;
  unpriced_requests: number;
  errors: Record<string, number>;
  tokens: { reported: Record<string, number>; estimated: Record<string, number> };
}

/** What the inventory must hold for a set of records: sums per consumer × provider × model. */
function expectedInventory(records: ExchangeRecord[]): Map<string, { requests: number; reportedInput: number; reportedOutput: number; cost: number; errors: number }> {
  const out = new Map<string, { requests: number; reportedInput: number; reportedOutput: number; cost: number; errors: number }>();
  for (const r of records) {
    const key = `${r.consumer?.id ?? ''}|${r.provider}|${r.model ?? r.responseModel ?? ''}`;
    const e = out.get(key) ?? { requests: 0, reportedInput: 0, reportedOutput: 0, cost: 0, errors: 0 };
    e.requests += 1;
    if (r.usageSource === 'reported') {
      e.reportedInput += r.usage.input_tokens ?? 0;
      e.reportedOutput += r.usage.output_tokens ?? 0;
    }
    e.cost += r.costMicroUsd ?? 0;
    out.set(key, e);
  }
  return out;
}

describe('inventory from live traffic', () => {
  let srv: TestServer;
  let base: string;
  const get = async (path: string): Promise<any> => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.admin.address = '127.0.0.1:0';
      c.store.flush_interval_ms = 50;
    });
    base = `http://${srv.adminAddress}`;
    for (const mode of [SIDECAR, OBSERVABILITY]) {
      const envoy = new EnvoyEmulator(srv.address, mode);
      for (const fx of fixtures) {
        await envoy.exchange({
          request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
          upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
          attributes: { 'source.address': '10.1.2.3:40000' },
        });
      }
      await envoy.close();
    }
    await srv.waitForRecords(fixtures.length * 2);
    await srv.server.flush();
  });
  afterAll(() => srv.stop());

  it('holds one record per consumer × provider × model with exact sums', async () => {
    const page = await get('/api/v1/inventory?limit=1000');
    const want = expectedInventory(srv.records);
    expect(page.total).toBe(want.size);
    for (const item of page.items as ApiRecord[]) {
      const e = want.get(`${item.consumer}|${item.provider}|${item.model}`);
      expect(e, `${item.consumer}|${item.provider}|${item.model}`).toBeDefined();
      expect(item.requests).toBe(e!.requests);
      expect(item.tokens.reported.input).toBe(e!.reportedInput);
      expect(item.tokens.reported.output).toBe(e!.reportedOutput);
      expect(item.cost_micro_usd).toBe(e!.cost);
    }
    const requests = (page.items as ApiRecord[]).reduce((n, i) => n + i.requests, 0);
    expect(requests).toBe(fixtures.length * 2);
  });

  it('counts errors by kind and unpriced usage', async () => {
    const page = await get('/api/v1/inventory?limit=1000');
    const items = page.items as ApiRecord[];
    const sum = (k: string) => items.reduce((n, i) => n + (i.errors[k] ?? 0), 0);
    const count = (pred: (r: ExchangeRecord) => boolean) => srv.records.filter(pred).length;
    // One kind per exchange: aborted, then what tokenwarden found wrong, then the upstream status.
    const status = (r: ExchangeRecord) => (r.error === null ? (r.status ?? 0) : 0);
    expect(sum('truncated')).toBe(count((r) => r.error === 'stream_truncated'));
    expect(sum('bad_input')).toBe(count((r) => r.error !== null && r.error !== 'stream_truncated'));
    expect(sum('upstream_5xx')).toBe(count((r) => status(r) >= 500));
    expect(sum('upstream_4xx')).toBe(count((r) => status(r) >= 400 && status(r) < 500));
    expect(sum('bad_input')).toBeGreaterThan(0);
    expect(items.reduce((n, i) => n + i.unpriced_requests, 0)).toBe(count((r) => r.unpriced));
    const unpriced = await get('/api/v1/inventory?unpriced=true&limit=1000');
    expect(unpriced.items.every((i: ApiRecord) => i.unpriced_requests > 0)).toBe(true);
  });

  it('rolls up per consumer and per model, and gives a usage time series', async () => {
    const consumers = await get('/api/v1/consumers?limit=1000');
    const consumerIds = new Set(srv.records.map((r) => r.consumer?.id ?? ''));
    expect(consumers.total).toBe(consumerIds.size);
    const models = await get('/api/v1/models?limit=1000');
    expect(models.items.reduce((n: number, m: { requests: number }) => n + m.requests, 0)).toBe(fixtures.length * 2);
    const usage = await get('/api/v1/usage?group_by=provider&bucket=day');
    const byProvider = new Map<string, number>();
    for (const s of usage.series) byProvider.set(s.group, s.points.reduce((n: number, p: { requests: number }) => n + p.requests, 0));
    for (const provider of new Set(srv.records.map((r) => r.provider))) {
      expect(byProvider.get(provider)).toBe(srv.records.filter((r) => r.provider === provider).length);
    }
  });
});

describe('one inventory across a fleet', () => {
  it('a sidecar and a discovery gateway sharing one Redis answer with the same inventory from either admin API', async () => {
    const redis = await startRedis();
    const fleet = await Promise.all(
      [0, 1].map(() =>
        startTestServer((c) => {
          c.admin.address = '127.0.0.1:0';
          c.store.type = 'redis';
          c.store.redis.url = redis.url;
        }),
      ),
    );
    try {
      const [sidecar, gateway] = fleet as [TestServer, TestServer];
      const half = Math.ceil(fixtures.length / 2);
      for (const [srv, mode, list] of [
        [sidecar, SIDECAR, fixtures.slice(0, half)],
        [gateway, OBSERVABILITY, fixtures.slice(half)],
      ] as const) {
        const envoy = new EnvoyEmulator(srv.address, mode);
        for (const fx of list) {
          await envoy.exchange({
            request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
            upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
          });
        }
        await envoy.close();
      }
      await sidecar.waitForRecords(half);
      await gateway.waitForRecords(fixtures.length - half);
      await Promise.all(fleet.map((s) => s.server.flush()));
      const read = async (s: TestServer, path: string): Promise<any> => (await fetch(`http://${s.adminAddress}${path}`)).json();
      for (const path of ['/api/v1/inventory?limit=1000&sort=consumer', '/api/v1/models?limit=1000', '/api/v1/usage?group_by=provider&bucket=day']) {
        const [a, b] = await Promise.all(fleet.map((s) => read(s, path)));
        expect(a).toEqual(b);
      }
      const all = [...sidecar.records, ...gateway.records];
      const inventory = await read(sidecar, '/api/v1/inventory?limit=1000');
      expect(inventory.total).toBe(expectedInventory(all).size);
      expect(inventory.items.reduce((n: number, i: ApiRecord) => n + i.requests, 0)).toBe(fixtures.length);
    } finally {
      await Promise.all(fleet.map((s) => s.stop()));
      await redis.close();
    }
  });
});
