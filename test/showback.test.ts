/**
 * Showback and the FOCUS export over HTTP. Fixture traffic through the real gRPC server fills the
 * inventory; the showback routes (dispatched by json-routes.ts on a small HTTP server, as the admin
 * server mounts them) must reconcile exactly with the admin API's inventory for every grouping and
 * bucket, in JSON and CSV. A MemoryStore at a fixed clock covers month/day/hour buckets across a
 * month boundary, ownership applied at query time, defaults and parameter errors.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJsonRoute } from '../src/admin/json-routes.js';
import { ApiError } from '../src/admin/reply.js';
import { priceBookListPrices, showbackRoutes, UNKNOWN_API, UNOWNED, type ShowbackApiDeps } from '../src/admin/showback/api.js';
import { Catalog, EMPTY_DEFINITIONS, type CatalogDefinitions } from '../src/catalog/catalog.js';
import type { CatalogView } from '../src/catalog/types.js';
import { PriceBook } from '../src/metering/prices.js';
import { MemoryStore } from '../src/inventory/memory.js';
import { emptyErrors, emptyTokens, type InventoryDelta, type InventoryStore, type TokenCounts } from '../src/inventory/types.js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { csvRecords } from './support/csv.js';

const CLASSES = ['input', 'cached_input', 'cache_write', 'output', 'reasoning'] as const;


/** Decimal USD to integer micro-dollars, exactly. */
function usdToMicro(usd: string): number {
  const [whole, fraction = ''] = usd.split('.');
  return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, '0'));
}

interface Served {
  base: string;
  close(): Promise<void>;
}

/** The showback routes on a loopback HTTP server, replies written as http.ts writes them. */
async function serve(deps: ShowbackApiDeps): Promise<Served> {
  const routes = showbackRoutes(deps);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let reply;
    try {
      reply = (await dispatchJsonRoute(routes, req, url.pathname, url.searchParams)) ?? new ApiError(404, 'not_found', url.pathname).reply();
    } catch (err) {
      reply = err instanceof ApiError ? err.reply() : new ApiError(500, 'internal', String(err)).reply();
    }
    res.writeHead(reply.status, reply.headers);
    if (typeof reply.body === 'string') res.end(reply.body);
    else {
      for await (const chunk of reply.body) res.write(chunk);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function definitions(over: Partial<CatalogDefinitions>): CatalogDefinitions {
  return { ...EMPTY_DEFINITIONS, ...over };
}

interface Counters {
  requests: number;
  errors: number;
  costMicroUsd: number;
  unpricedRequests: number;
  reported: TokenCounts;
  estimated: TokenCounts;
}

function zero(): Counters {
  return { requests: 0, errors: 0, costMicroUsd: 0, unpricedRequests: 0, reported: emptyTokens(), estimated: emptyTokens() };
}

function add(into: Counters, c: Counters): void {
  into.requests += c.requests;
  into.errors += c.errors;
  into.costMicroUsd += c.costMicroUsd;
  into.unpricedRequests += c.unpricedRequests;
  for (const k of CLASSES) {
    into.reported[k] += c.reported[k];
    into.estimated[k] += c.estimated[k];
  }
}

/** Sums of showback items per group. */
function byGroup(items: (Counters & { group: string })[]): Map<string, Counters> {
  const out = new Map<string, Counters>();
  for (const item of items) {
    const sum = out.get(item.group) ?? zero();
    add(sum, item);
    out.set(item.group, sum);
  }
  return out;
}

describe('showback from live traffic reconciles with the inventory', () => {
  const fixtures = loadFixtures().filter((f) => f.expected.provider !== 'unknown');
  const CONSUMERS = ['spiffe://prod/ns/payments/sa/api', 'spiffe://prod/ns/payments/sa/batch', 'spiffe://prod/ns/search/sa/web', 'lab, "team"', '=cmd|calc'];
  const catalog = new Catalog(
    definitions({
      owners: [
        { id: 'payments', name: 'Payments', source: 'config' },
        { id: 'search', name: 'Search, Inc.', source: 'api' },
      ],
      consumers: [{ id: '=cmd|calc', status: 'added', owner: 'search', displayName: '@Formula app', labels: { env: 'lab' }, source: 'api' }],
      consumerRules: [{ id: 'payments', match: 'spiffe://prod/ns/payments/*', priority: 1, status: 'added', owner: 'payments', labels: { team: 'payments' }, source: 'config' }],
    }),
  );
  let srv: TestServer;
  let showback: Served;
  /** Inventory records from the admin API, as the inventory test reads them. */
  let inventory: { consumer: string; provider: string; model: string; requests: number; cost_micro_usd: number; unpriced_requests: number; errors: Record<string, number>; tokens: { reported: TokenCounts; estimated: TokenCounts } }[];
  let totals: Counters;

  const get = async (path: string): Promise<any> => {
    const res = await fetch(`${showback.base}${path}`);
    expect(res.status, path).toBe(200);
    return res.json();
  };
  const text = async (path: string): Promise<string> => {
    const res = await fetch(`${showback.base}${path}`);
    expect(res.status, path).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    return res.text();
  };

  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.admin.address = '127.0.0.1:0';
      // One batch at the explicit flush: exchanges of one key through different APIs share a delta.
      c.store.flush_interval_ms = 60_000;
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    // Round 0 spreads the fixtures over the consumers; round 1 gives every provider/model one
    // consumer, so a model served through two APIs makes one inventory key with two APIs.
    const models: string[] = [];
    const modelIndex = (fx: (typeof fixtures)[number]): number => {
      const id = `${fx.expected.provider}|${fx.expected.model ?? fx.expected.response_model}`;
      if (!models.includes(id)) models.push(id);
      return models.indexOf(id);
    };
    for (const round of [0, 1]) {
      for (const [i, fx] of fixtures.entries()) {
        const consumer = CONSUMERS[(round === 0 ? i : modelIndex(fx)) % CONSUMERS.length]!;
        await envoy.exchange({
          request: { headers: [...fx.request.headers.filter(([k]) => k !== 'x-consumer-id'), ['x-consumer-id', consumer]], body_chunks: fx.request.body_chunks },
          upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
        });
      }
    }
    await envoy.close();
    await srv.waitForRecords(fixtures.length * 2);
    await srv.server.flush();
    showback = await serve({ store: srv.server.store, catalog: () => catalog, prices: priceBookListPrices(new PriceBook([])), storeTimeoutMs: 5_000, now: Date.now });
    const page = (await (await fetch(`http://${srv.adminAddress}/api/v1/inventory?limit=1000`)).json()) as { items: typeof inventory };
    inventory = page.items;
    totals = zero();
    for (const r of inventory) {
      add(totals, {
        requests: r.requests,
        errors: Object.values(r.errors).reduce((a, b) => a + b, 0),
        costMicroUsd: r.cost_micro_usd,
        unpricedRequests: r.unpriced_requests,
        reported: r.tokens.reported,
        estimated: r.tokens.estimated,
      });
    }
  });
  afterAll(async () => {
    await showback?.close();
    await srv?.stop();
  });

  it('the traffic is varied enough to mean something', () => {
    expect(totals.requests).toBe(fixtures.length * 2);
    expect(totals.costMicroUsd).toBeGreaterThan(0);
    expect(totals.errors).toBeGreaterThan(0);
    expect(totals.unpricedRequests).toBeGreaterThan(0);
    expect(totals.estimated.output).toBeGreaterThan(0);
    expect(new Set(srv.records.map((r) => r.api)).size).toBeGreaterThan(3);
    const apisByKey = new Map<string, Set<string>>();
    for (const r of srv.records) {
      const key = `${r.consumer?.id}|${r.provider}|${r.model ?? r.responseModel}`;
      apisByKey.set(key, (apisByKey.get(key) ?? new Set()).add(r.api));
    }
    expect([...apisByKey.values()].some((apis) => apis.size > 1)).toBe(true);
  });

  it('has totals equal to the inventory for every grouping and bucket', async () => {
    for (const groupBy of ['owner', 'consumer', 'provider', 'model', 'api']) {
      for (const bucket of ['hour', 'day', 'month']) {
        const body = await get(`/api/v1/showback?group_by=${groupBy}&bucket=${bucket}`);
        expect(body.totals, `${groupBy} ${bucket}`).toEqual(totals);
        const sum = zero();
        for (const item of body.items) add(sum, item);
        expect(sum, `${groupBy} ${bucket} items`).toEqual(totals);
      }
    }
  });

  it('groups by consumer, provider, model and owner exactly as the inventory records add up', async () => {
    const expected = (groupOf: (r: (typeof inventory)[number]) => string): Map<string, number[]> => {
      const out = new Map<string, number[]>();
      for (const r of inventory) {
        const e = out.get(groupOf(r)) ?? [0, 0, 0, 0];
        out.set(groupOf(r), [e[0]! + r.requests, e[1]! + r.cost_micro_usd, e[2]! + r.tokens.reported.input, e[3]! + r.tokens.estimated.output]);
      }
      return out;
    };
    const actual = async (groupBy: string): Promise<Map<string, number[]>> => {
      const body = await get(`/api/v1/showback?group_by=${groupBy}&bucket=month`);
      return new Map([...byGroup(body.items)].map(([g, c]) => [g, [c.requests, c.costMicroUsd, c.reported.input, c.estimated.output]]));
    };
    expect(await actual('consumer')).toEqual(expected((r) => r.consumer));
    expect(await actual('provider')).toEqual(expected((r) => r.provider));
    expect(await actual('model')).toEqual(expected((r) => `${r.provider}/${r.model}`));
    const owners = await actual('owner');
    expect(owners).toEqual(expected((r) => catalog.consumer(r.consumer).owner ?? UNOWNED));
    expect([...owners.keys()].sort()).toEqual([UNOWNED, 'payments', 'search']);
    const names = (await get('/api/v1/showback?group_by=owner')).items.map((i: { group: string; name: string | null }) => [i.group, i.name]);
    expect(new Map(names)).toEqual(new Map([[UNOWNED, null], ['payments', 'Payments'], ['search', 'Search, Inc.']]));
  });

  it('groups by API as the exchanges were made', async () => {
    const want = new Map<string, number[]>();
    for (const r of srv.records) {
      const e = want.get(r.api) ?? [0, 0];
      want.set(r.api, [e[0]! + 1, e[1]! + (r.costMicroUsd ?? 0)]);
    }
    const body = await get('/api/v1/showback?group_by=api&bucket=day');
    expect(new Map([...byGroup(body.items)].map(([g, c]) => [g, [c.requests, c.costMicroUsd]]))).toEqual(want);
    const one = await get('/api/v1/showback?group_by=consumer&api=messages');
    expect(one.totals.requests).toBe(srv.records.filter((r) => r.api === 'messages').length);
  });

  it('filters by owner, unowned included', async () => {
    const payments = await get('/api/v1/showback?group_by=consumer&owner=payments');
    expect(payments.items.map((i: { group: string }) => i.group).sort()).toEqual(CONSUMERS.slice(0, 2));
    const unowned = await get(`/api/v1/showback?group_by=consumer&owner=${encodeURIComponent(UNOWNED)}`);
    expect(new Set(unowned.items.map((i: { group: string }) => i.group))).toEqual(new Set(['spiffe://prod/ns/search/sa/web', 'lab, "team"']));
  });

  it('writes the same items as CSV, read back exactly', async () => {
    const json = await get('/api/v1/showback?group_by=consumer&bucket=day');
    const rows = csvRecords(await text('/api/v1/showback.csv?group_by=consumer&bucket=day'));
    expect(rows).toHaveLength(json.items.length);
    rows.forEach((row, i) => {
      const item = json.items[i];
      // Names from traffic that a spreadsheet would run are guarded with a leading quote.
      expect(row.group).toBe(item.group.startsWith('=') ? `'${item.group}` : item.group);
      expect(row).toMatchObject({ group_by: 'consumer', bucket: 'day', bucket_start: item.bucketStart, bucket_end: item.bucketEnd });
      expect(Number(row.requests)).toBe(item.requests);
      expect(Number(row.cost_micro_usd)).toBe(item.costMicroUsd);
      expect(usdToMicro(row.cost_usd!)).toBe(item.costMicroUsd);
      expect(Number(row.reported_cached_input_tokens)).toBe(item.reported.cached_input);
      expect(Number(row.estimated_output_tokens)).toBe(item.estimated.output);
    });
    expect(rows.map((r) => r.group)).toContain('lab, "team"');
    expect(rows.find((r) => r.group === "'=cmd|calc")?.name).toBe("'@Formula app");
  });

  it('exports FOCUS rows whose cost and quantities add up to the inventory', async () => {
    const rows = csvRecords(await text('/api/v1/export/focus.csv?bucket=month'));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.reduce((n, r) => n + usdToMicro(r.EffectiveCost!), 0)).toBe(totals.costMicroUsd);
    for (const source of ['reported', 'estimated'] as const) {
      const mine = rows.filter((r) => r.x_UsageSource === source);
      const quantity = (meters: string[]) => mine.filter((r) => meters.includes(r.SkuMeter!)).reduce((n, r) => n + Number(r.ConsumedQuantity), 0);
      expect(quantity(['Output Tokens']), source).toBe(totals[source].output);
      expect(quantity(['Cached Input Tokens']), source).toBe(totals[source].cached_input);
      expect(quantity(['Cache Write Tokens']), source).toBe(totals[source].cache_write);
      expect(quantity(['Input Tokens', 'Cached Input Tokens', 'Cache Write Tokens']), source).toBe(totals[source].input);
    }
    const pay = rows.find((r) => r.ResourceId === CONSUMERS[0] && r.SkuId!.startsWith('openai:') && r.ListUnitPrice !== '');
    expect(pay).toMatchObject({ SubAccountId: 'payments', SubAccountName: 'Payments', Tags: '{"team":"payments"}', ServiceProviderName: 'OpenAI', ConsumedUnit: 'Tokens' });
    expect(Number(pay!.ListCost)).toBeCloseTo(Number(pay!.ConsumedQuantity) * Number(pay!.ListUnitPrice), 12);
    expect(rows.filter((r) => r.x_Unpriced === 'true').length).toBeGreaterThan(0);
    expect(rows.find((r) => r.ResourceId === 'lab, "team"')).toMatchObject({ SubAccountId: '', SubAccountName: '', Tags: '{}' });
    expect(rows.find((r) => r.ResourceId === "'=cmd|calc")).toMatchObject({ ResourceName: "'@Formula app", SubAccountName: 'Search, Inc.' });
  });
});

describe('showback buckets, ownership and parameters at a fixed clock', () => {
  const NOW = Date.parse('2025-02-20T12:00:00Z');
  const t = (iso: string): number => Date.parse(iso);
  let store: MemoryStore;
  let catalog: CatalogView;
  let served: Served;

  function delta(consumer: string, at: string, requests: number, cost: number, api = 'chat_completions'): InventoryDelta {
    return {
      key: { consumer, provider: 'openai', model: 'gpt-4o' },
      firstSeen: t(at),
      lastSeen: t(at),
      requests,
      errors: emptyErrors(),
      reported: { ...emptyTokens(), input: 10 * requests, output: requests },
      estimated: emptyTokens(),
      costMicroUsd: cost,
      unpricedRequests: 0,
      lastApi: api,
      responseModels: [],
      consumerResolver: 'header',
    };
  }

  const get = async (path: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${served.base}${path}`);
    return { status: res.status, body: res.headers.get('content-type')?.startsWith('application/json') ? await res.json() : await res.text() };
  };
  const points = (body: any) => body.items.map((i: any) => [i.group, i.bucketStart, i.requests, i.costMicroUsd]);

  beforeAll(async () => {
    store = new MemoryStore({ maxRecords: 100, retentionHours: 24 * 100, now: () => NOW });
    await store.apply({
      id: 'b1',
      deltas: [
        delta('app-a', '2025-01-31T23:30:00Z', 1, 100),
        delta('app-a', '2025-02-01T00:30:00Z', 2, 200, 'responses'),
        delta('app-b', '2025-02-01T00:40:00Z', 4, 400),
        delta('app-b', '2025-02-15T09:00:00Z', 8, 800),
      ],
    });
    catalog = new Catalog(definitions({ owners: [{ id: 'team', name: 'Team', source: 'api' }], consumers: [{ id: 'app-a', status: 'added', owner: 'team', source: 'api' }] }));
    served = await serve({ store, catalog: () => catalog, prices: () => null, storeTimeoutMs: 1_000, now: () => NOW });
  });
  afterAll(() => served?.close());

  it('makes a month the sum of its UTC days, and a day the sum of its hours', async () => {
    const range = 'from=2025-01-31T23:45:00Z&to=2025-02-15T10:00:00Z';
    const months = await get(`/api/v1/showback?group_by=consumer&bucket=month&${range}`);
    expect(months.body).toMatchObject({ groupBy: 'consumer', bucket: 'month', from: '2025-01-01T00:00:00.000Z', to: '2025-03-01T00:00:00.000Z' });
    expect(points(months.body)).toEqual([
      ['app-a', '2025-01-01T00:00:00.000Z', 1, 100],
      ['app-a', '2025-02-01T00:00:00.000Z', 2, 200],
      ['app-b', '2025-02-01T00:00:00.000Z', 12, 1200],
    ]);
    expect(months.body.items[0].bucketEnd).toBe('2025-02-01T00:00:00.000Z');
    const days = await get(`/api/v1/showback?group_by=consumer&bucket=day&${range}`);
    expect(points(days.body)).toEqual([
      ['app-a', '2025-01-31T00:00:00.000Z', 1, 100],
      ['app-a', '2025-02-01T00:00:00.000Z', 2, 200],
      ['app-b', '2025-02-01T00:00:00.000Z', 4, 400],
      ['app-b', '2025-02-15T00:00:00.000Z', 8, 800],
    ]);
    const hours = await get(`/api/v1/showback?group_by=api&bucket=hour&from=${t('2025-01-31T23:00:00Z')}&to=${t('2025-02-01T01:00:00Z')}`);
    expect(points(hours.body)).toEqual([
      ['chat_completions', '2025-01-31T23:00:00.000Z', 1, 100],
      ['chat_completions', '2025-02-01T00:00:00.000Z', 4, 400],
      ['responses', '2025-02-01T00:00:00.000Z', 2, 200],
    ]);
    for (const body of [months.body, days.body]) expect(body.totals).toMatchObject({ requests: 15, costMicroUsd: 1500 });
  });

  it('names buckets without an API (unknown) and filters on that name', async () => {
    const legacy = new MemoryStore({ maxRecords: 100, retentionHours: 24 * 100, now: () => NOW });
    await legacy.apply({ id: 'old', deltas: [delta('app-a', '2025-02-10T10:00:00Z', 3, 300, ''), delta('app-a', '2025-02-10T11:00:00Z', 1, 100)] });
    const old = await serve({ store: legacy, catalog: () => catalog, prices: () => null, storeTimeoutMs: 1_000, now: () => NOW });
    try {
      const byApi = await fetch(`${old.base}/api/v1/showback?group_by=api`).then((r) => r.json() as any);
      expect(points(byApi)).toEqual([
        [UNKNOWN_API, '2025-02-10T00:00:00.000Z', 3, 300],
        ['chat_completions', '2025-02-10T00:00:00.000Z', 1, 100],
      ]);
      const unknown = await fetch(`${old.base}/api/v1/showback?group_by=consumer&api=${encodeURIComponent(UNKNOWN_API)}`).then((r) => r.json() as any);
      expect(unknown.totals).toMatchObject({ requests: 3, costMicroUsd: 300 });
    } finally {
      await old.close();
    }
  });

  it('defaults to the last 30 days in day buckets, grouped by owner', async () => {
    const { body } = await get('/api/v1/showback');
    expect(body).toMatchObject({ groupBy: 'owner', bucket: 'day', from: '2025-01-21T00:00:00.000Z', to: '2025-02-21T00:00:00.000Z' });
    expect(points(body)).toEqual([
      [UNOWNED, '2025-02-01T00:00:00.000Z', 4, 400],
      [UNOWNED, '2025-02-15T00:00:00.000Z', 8, 800],
      ['team', '2025-01-31T00:00:00.000Z', 1, 100],
      ['team', '2025-02-01T00:00:00.000Z', 2, 200],
    ]);
  });

  it('applies ownership at query time: re-assigning a consumer moves its past usage', async () => {
    const before = catalog;
    catalog = new Catalog(definitions({ consumerRules: [{ id: 'all', match: 'app-*', priority: 1, status: 'added', owner: 'platform', source: 'api' }] }));
    try {
      const { body } = await get('/api/v1/showback?group_by=owner&bucket=month&from=2025-01-01');
      expect(points(body)).toEqual([
        ['platform', '2025-01-01T00:00:00.000Z', 1, 100],
        ['platform', '2025-02-01T00:00:00.000Z', 14, 1400],
      ]);
      const focus = csvRecords((await get('/api/v1/export/focus.csv?from=2025-01-01')).body);
      expect(new Set(focus.map((r) => r.SubAccountId))).toEqual(new Set(['platform']));
    } finally {
      catalog = before;
    }
  });

  it('exports FOCUS rows per charge period', async () => {
    const rows = csvRecords((await get('/api/v1/export/focus.csv?bucket=month&from=2025-01-01&to=2025-03-01')).body);
    expect(rows.map((r) => [r.ChargePeriodStart, r.ChargePeriodEnd, r.ResourceId, r.SkuMeter, r.ConsumedQuantity, r.EffectiveCost, r.ListUnitPrice])).toEqual([
      ['2025-01-01T00:00:00.000Z', '2025-02-01T00:00:00.000Z', 'app-a', 'Input Tokens', '10', '0.000091', ''],
      ['2025-01-01T00:00:00.000Z', '2025-02-01T00:00:00.000Z', 'app-a', 'Output Tokens', '1', '0.000009', ''],
      ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z', 'app-a', 'Input Tokens', '20', '0.000182', ''],
      ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z', 'app-a', 'Output Tokens', '2', '0.000018', ''],
      ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z', 'app-b', 'Input Tokens', '120', '0.001091', ''],
      ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z', 'app-b', 'Output Tokens', '12', '0.000109', ''],
    ]);
    const daily = csvRecords((await get('/api/v1/export/focus.csv?from=2025-01-31&to=2025-02-02')).body);
    expect(daily.map((r) => r.ChargePeriodStart)).toEqual(['2025-01-31T00:00:00.000Z', '2025-01-31T00:00:00.000Z', ...Array(4).fill('2025-02-01T00:00:00.000Z')]);
  });

  it('tags FOCUS rows with the budgets that apply to the group\'s consumer, model and APIs', async () => {
    const subjects: string[] = [];
    const tagged = await serve({
      store,
      catalog: () => catalog,
      prices: () => null,
      storeTimeoutMs: 1_000,
      now: () => NOW,
      budgets: (s) => {
        subjects.push(`${s.consumer}|${s.provider}/${s.model}|${s.api}|${s.labels.owner ?? ''}`);
        return s.api === 'responses' ? ['responses-cap', 'org,wide'] : ['org,wide'];
      },
    });
    try {
      const rows = csvRecords(await (await fetch(`${tagged.base}/api/v1/export/focus.csv?bucket=month&from=2025-01-01`)).text());
      expect(rows.filter((r) => r.SkuMeter === 'Output Tokens').map((r) => [r.ChargePeriodStart!.slice(0, 7), r.ResourceId, JSON.parse(r.Tags!)])).toEqual([
        ['2025-01', 'app-a', { x_budgets: 'org%2Cwide' }],
        ['2025-02', 'app-a', { x_budgets: 'org%2Cwide,responses-cap' }],
        ['2025-02', 'app-b', { x_budgets: 'org%2Cwide' }],
      ]);
      expect(subjects.sort()).toEqual(['app-a|openai/gpt-4o|chat_completions|team', 'app-a|openai/gpt-4o|responses|team', 'app-b|openai/gpt-4o|chat_completions|']);
    } finally {
      await tagged.close();
    }
  });

  it('names the parameter of every bad request', async () => {
    const cases: [string, string, string][] = [
      ['/api/v1/showback?group_by=team', 'group_by', 'invalid_parameter'],
      ['/api/v1/showback?bucket=week', 'bucket', 'invalid_parameter'],
      ['/api/v1/showback?from=yesterday', 'from', 'invalid_parameter'],
      ['/api/v1/showback?from=2025-02-30', 'from', 'invalid_parameter'],
      ['/api/v1/showback?to=2025-01-01&from=2025-02-01', 'to', 'invalid_parameter'],
      ['/api/v1/showback?from=2023-01-01&to=2025-01-01', 'from', 'invalid_parameter'],
      ['/api/v1/showback?limit=5', 'limit', 'unknown_parameter'],
      ['/api/v1/showback?owner=a&owner=b', 'owner', 'invalid_parameter'],
      ['/api/v1/showback.csv?bucket=year', 'bucket', 'invalid_parameter'],
      ['/api/v1/export/focus.csv?group_by=owner', 'group_by', 'unknown_parameter'],
      ['/api/v1/export/focus.csv?from=2025-03-01', 'from', 'invalid_parameter'],
    ];
    for (const [path, parameter, code] of cases) {
      const { status, body } = await get(path);
      expect([path, status, body.error?.parameter, body.error?.code]).toEqual([path, 400, parameter, code]);
    }
  });

  it('answers 503 when the store does not', async () => {
    const down: InventoryStore = { ...store, usage: () => new Promise(() => {}) } as unknown as InventoryStore;
    const slow = await serve({ store: down, catalog: () => catalog, prices: () => null, storeTimeoutMs: 50, now: () => NOW });
    try {
      for (const path of ['/api/v1/showback', '/api/v1/showback.csv', '/api/v1/export/focus.csv']) {
        const res = await fetch(`${slow.base}${path}`);
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('store_unavailable');
      }
    } finally {
      await slow.close();
    }
  });
});
