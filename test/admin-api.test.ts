/**
 * The admin HTTP API against a MemoryStore filled with known deltas at a fixed clock: every
 * endpoint's JSON and CSV, filters, sort, pages, usage series, auth, errors, limits and readiness.
 */
import http from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer, type AdminOptions } from '../src/admin/http.js';
import { isLoopbackAddress } from '../src/net.js';
import { csvCell } from '../src/admin/csv.js';
import { parseTimestamp } from '../src/admin/query.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { MemoryStore } from '../src/inventory/memory.js';
import { emptyErrors, emptyTokens, type InventoryDelta, type InventoryStore, type TokenCounts } from '../src/inventory/types.js';

const NOW = Date.parse('2025-01-15T12:30:00Z');
const TOKEN = 's3cret-admin-token';
const EVIL = '=HYPERLINK("http://x","y")';
const t = (iso: string): number => Date.parse(iso);
const tokens = (over: Partial<TokenCounts> = {}): TokenCounts => ({ ...emptyTokens(), ...over });

function delta(over: Partial<InventoryDelta> & Pick<InventoryDelta, 'key' | 'firstSeen' | 'lastSeen'>): InventoryDelta {
  return {
    requests: 1,
    errors: emptyErrors(),
    reported: emptyTokens(),
    estimated: emptyTokens(),
    costMicroUsd: 0,
    unpricedRequests: 0,
    lastApi: 'chat_completions',
    responseModels: [],
    consumerResolver: 'header',
    ...over,
  };
}

const DELTAS: InventoryDelta[][] = [
  [
    delta({
      key: { consumer: 'team-a', provider: 'openai', model: 'gpt-4o' },
      firstSeen: t('2025-01-15T10:05:00Z'),
      lastSeen: t('2025-01-15T10:20:00Z'),
      requests: 3,
      errors: { ...emptyErrors(), upstream_5xx: 1 },
      reported: tokens({ input: 100, cached_input: 20, output: 50 }),
      costMicroUsd: 1234,
      responseModels: ['gpt-4o-2024-08-06'],
    }),
    delta({
      key: { consumer: 'team-a', provider: 'anthropic', model: 'claude-3-5-sonnet' },
      firstSeen: t('2025-01-15T11:00:00Z'),
      lastSeen: t('2025-01-15T11:40:00Z'),
      requests: 2,
      reported: tokens({ input: 300, cache_write: 50, output: 100 }),
      costMicroUsd: 2_500_000,
      lastApi: 'messages',
      responseModels: ['claude-3-5-sonnet-20241022'],
    }),
    delta({
      key: { consumer: EVIL, provider: 'openai', model: 'gpt-4o' },
      firstSeen: t('2025-01-14T23:10:00Z'),
      lastSeen: t('2025-01-14T23:15:00Z'),
      errors: { ...emptyErrors(), aborted: 1 },
      estimated: tokens({ output: 40 }),
      unpricedRequests: 1,
      consumerResolver: 'api_key',
    }),
    delta({
      key: { consumer: 'team-b', provider: 'vllm', model: '' },
      firstSeen: t('2025-01-13T08:00:00Z'),
      lastSeen: t('2025-01-13T08:30:00Z'),
      requests: 5,
      errors: { ...emptyErrors(), bad_input: 2 },
      consumerResolver: 'xfcc',
    }),
  ],
  [
    delta({
      key: { consumer: 'team-a', provider: 'openai', model: 'gpt-4o' },
      firstSeen: t('2025-01-15T12:00:00Z'),
      lastSeen: t('2025-01-15T12:10:00Z'),
      reported: tokens({ input: 10, output: 5, reasoning: 2 }),
      costMicroUsd: 66,
      lastApi: 'responses',
      responseModels: ['gpt-4o-2024-11-20'],
    }),
  ],
];

const zeroErrors = { upstream_4xx: 0, upstream_5xx: 0, bad_input: 0, truncated: 0, aborted: 0 };
const zeroTokens = { input: 0, cached_input: 0, cache_write: 0, output: 0, reasoning: 0 };

/** The four records the deltas make, as the API shows them. */
const R1 = {
  consumer: 'team-a',
  provider: 'openai',
  model: 'gpt-4o',
  first_seen: '2025-01-15T10:05:00.000Z',
  last_seen: '2025-01-15T12:10:00.000Z',
  requests: 4,
  errors: { ...zeroErrors, upstream_5xx: 1 },
  tokens: { reported: { input: 110, cached_input: 20, cache_write: 0, output: 55, reasoning: 2 }, estimated: zeroTokens },
  cost_micro_usd: 1300,
  cost_usd: 0.0013,
  unpriced_requests: 0,
  last_api: 'responses',
  response_models: ['gpt-4o-2024-08-06', 'gpt-4o-2024-11-20'],
  consumer_resolver: 'header',
};
const R2 = {
  consumer: 'team-a',
  provider: 'anthropic',
  model: 'claude-3-5-sonnet',
  first_seen: '2025-01-15T11:00:00.000Z',
  last_seen: '2025-01-15T11:40:00.000Z',
  requests: 2,
  errors: zeroErrors,
  tokens: { reported: { input: 300, cached_input: 0, cache_write: 50, output: 100, reasoning: 0 }, estimated: zeroTokens },
  cost_micro_usd: 2_500_000,
  cost_usd: 2.5,
  unpriced_requests: 0,
  last_api: 'messages',
  response_models: ['claude-3-5-sonnet-20241022'],
  consumer_resolver: 'header',
};
const R3 = {
  consumer: EVIL,
  provider: 'openai',
  model: 'gpt-4o',
  first_seen: '2025-01-14T23:10:00.000Z',
  last_seen: '2025-01-14T23:15:00.000Z',
  requests: 1,
  errors: { ...zeroErrors, aborted: 1 },
  tokens: { reported: zeroTokens, estimated: { ...zeroTokens, output: 40 } },
  cost_micro_usd: 0,
  cost_usd: 0,
  unpriced_requests: 1,
  last_api: 'chat_completions',
  response_models: [],
  consumer_resolver: 'api_key',
};
const R4 = {
  consumer: 'team-b',
  provider: 'vllm',
  model: '',
  first_seen: '2025-01-13T08:00:00.000Z',
  last_seen: '2025-01-13T08:30:00.000Z',
  requests: 5,
  errors: { ...zeroErrors, bad_input: 2 },
  tokens: { reported: zeroTokens, estimated: zeroTokens },
  cost_micro_usd: 0,
  cost_usd: 0,
  unpriced_requests: 0,
  last_api: 'chat_completions',
  response_models: [],
  consumer_resolver: 'xfcc',
};

async function filledStore(): Promise<MemoryStore> {
  const store = new MemoryStore({ maxRecords: 10_000, retentionHours: 24 * 30, now: () => NOW });
  for (const [i, deltas] of DELTAS.entries()) await store.apply({ id: `batch-${i}`, deltas });
  return store;
}

/** A store whose methods can be replaced (failing, hanging), delegating the rest. */
function wrapStore(base: InventoryStore, over: Partial<InventoryStore>): InventoryStore {
  return {
    apply: (b) => base.apply(b),
    inventory: (q) => base.inventory(q),
    consumers: (q) => base.consumers(q),
    models: (q) => base.models(q),
    usage: (q) => base.usage(q),
    ping: () => base.ping(),
    close: () => base.close(),
    ...over,
  };
}

const never = <T>(): Promise<T> => new Promise<T>(() => {});
const unreachable = <T>(): Promise<T> => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.9:6379'));

const started: AdminServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function startAdmin(over: Partial<AdminOptions> & { store: InventoryStore }): Promise<string> {
  const server = new AdminServer({
    address: '127.0.0.1:0',
    metrics: new Metrics({ defaultMetrics: false }),
    token: '',
    ready: () => true,
    now: () => NOW,
    ...over,
  });
  started.push(server);
  return `http://${await server.start()}`;
}

let store: MemoryStore;
beforeAll(async () => {
  store = await filledStore();
});

async function getJson(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, { headers });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** A raw request, for what fetch will not send (bodies on GET, odd methods, huge headers). */
function rawRequest(base: string, opts: { method: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: opts.method, path: opts.path, headers: opts.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('GET /api/v1/inventory', () => {
  it('lists records most recently seen first, with every field', async () => {
    const base = await startAdmin({ store });
    const { status, body, headers } = await getJson(base, '/api/v1/inventory');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(body).toEqual({ items: [R1, R2, R3, R4], total: 4, offset: 0, limit: 100 });
  });

  it.each([
    ['consumer=team-a', [R1, R2]],
    ['provider=openai', [R1, R3]],
    ['model=gpt-4o', [R1, R3]],
    ['model=', [R4]],
    [`consumer=${encodeURIComponent(EVIL)}`, [R3]],
    ['consumer=team-a&provider=anthropic', [R2]],
    ['unpriced=true', [R3]],
    ['unpriced=false', [R1, R2, R4]],
    ['last_seen_from=2025-01-15T11:00:00Z', [R1, R2]],
    ['last_seen_to=2025-01-15T00:00:00Z', [R3, R4]],
    [`first_seen_from=${t('2025-01-15T10:30:00Z')}`, [R2]],
    // inclusive bounds, offset time zones, and an unencoded "+" (which arrives as a space)
    ['first_seen_to=2025-01-15T11:05:00+01:00', [R1, R3, R4]],
    ['first_seen_to=2025-01-15T11:05:00%2B01:00', [R1, R3, R4]],
    ['first_seen_from=2025-01-14T23:10:00Z&first_seen_to=2025-01-15T10:05:00.000Z', [R1, R3]],
    ['consumer=nobody', []],
  ])('filters: %s', async (query, expected) => {
    const base = await startAdmin({ store });
    const { status, body } = await getJson(base, `/api/v1/inventory?${query}`);
    expect(status).toBe(200);
    expect(body.items).toEqual(expected);
    expect(body.total).toBe(expected.length);
  });

  it.each([
    ['sort=last_seen', [R1, R2, R3, R4]],
    ['sort=last_seen&order=asc', [R4, R3, R2, R1]],
    ['sort=first_seen', [R2, R1, R3, R4]],
    ['sort=requests', [R4, R1, R2, R3]],
    ['sort=requests&order=asc', [R3, R2, R1, R4]],
    ['sort=cost', [R2, R1, R4, R3]],
    ['sort=cost&order=asc', [R3, R4, R1, R2]],
    ['sort=tokens', [R2, R1, R3, R4]],
    ['sort=consumer', [R3, R2, R1, R4]],
    ['sort=consumer&order=desc', [R4, R1, R2, R3]],
    ['sort=provider', [R2, R3, R1, R4]],
    ['sort=model', [R4, R2, R3, R1]],
  ])('sorts: %s', async (query, expected) => {
    const base = await startAdmin({ store });
    const { body } = await getJson(base, `/api/v1/inventory?${query}`);
    expect(body.items).toEqual(expected);
  });

  it('pages with offset and limit and reports the total', async () => {
    const base = await startAdmin({ store });
    expect((await getJson(base, '/api/v1/inventory?offset=1&limit=2')).body).toEqual({ items: [R2, R3], total: 4, offset: 1, limit: 2 });
    expect((await getJson(base, '/api/v1/inventory?offset=3&limit=1000')).body).toEqual({ items: [R4], total: 4, offset: 3, limit: 1000 });
    expect((await getJson(base, '/api/v1/inventory?offset=10')).body).toEqual({ items: [], total: 4, offset: 10, limit: 100 });
  });

  it('HEAD answers the headers without a body', async () => {
    const base = await startAdmin({ store });
    const res = await fetch(`${base}/api/v1/inventory`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.text()).toBe('');
  });
});

describe('GET /api/v1/consumers and /api/v1/models', () => {
  it('lists consumers most recently seen first with their rollups', async () => {
    const base = await startAdmin({ store });
    const { status, body } = await getJson(base, '/api/v1/consumers');
    expect(status).toBe(200);
    expect(body).toEqual({
      items: [
        {
          consumer: 'team-a',
          models: 2,
          first_seen: '2025-01-15T10:05:00.000Z',
          last_seen: '2025-01-15T12:10:00.000Z',
          requests: 6,
          errors: { ...zeroErrors, upstream_5xx: 1 },
          tokens: { reported: { input: 410, cached_input: 20, cache_write: 50, output: 155, reasoning: 2 }, estimated: zeroTokens },
          cost_micro_usd: 2_501_300,
          cost_usd: 2.5013,
          unpriced_requests: 0,
        },
        {
          consumer: EVIL,
          models: 1,
          first_seen: R3.first_seen,
          last_seen: R3.last_seen,
          requests: 1,
          errors: R3.errors,
          tokens: R3.tokens,
          cost_micro_usd: 0,
          cost_usd: 0,
          unpriced_requests: 1,
        },
        {
          consumer: 'team-b',
          models: 1,
          first_seen: R4.first_seen,
          last_seen: R4.last_seen,
          requests: 5,
          errors: R4.errors,
          tokens: R4.tokens,
          cost_micro_usd: 0,
          cost_usd: 0,
          unpriced_requests: 0,
        },
      ],
      total: 3,
      offset: 0,
      limit: 100,
    });
    const page = (await getJson(base, '/api/v1/consumers?offset=1&limit=1')).body;
    expect(page.items.map((c: { consumer: string }) => c.consumer)).toEqual([EVIL]);
    expect([page.total, page.offset, page.limit]).toEqual([3, 1, 1]);
  });

  it('lists provider/model pairs with their consumer counts', async () => {
    const base = await startAdmin({ store });
    const { status, body } = await getJson(base, '/api/v1/models');
    expect(status).toBe(200);
    expect(body.total).toBe(3);
    expect(body.items[0]).toEqual({
      provider: 'openai',
      model: 'gpt-4o',
      consumers: 2,
      first_seen: '2025-01-14T23:10:00.000Z',
      last_seen: '2025-01-15T12:10:00.000Z',
      requests: 5,
      errors: { ...zeroErrors, upstream_5xx: 1, aborted: 1 },
      tokens: { reported: R1.tokens.reported, estimated: { ...zeroTokens, output: 40 } },
      cost_micro_usd: 1300,
      cost_usd: 0.0013,
      unpriced_requests: 1,
    });
    expect(body.items.map((m: { provider: string; model: string; consumers: number }) => [m.provider, m.model, m.consumers])).toEqual([
      ['openai', 'gpt-4o', 2],
      ['anthropic', 'claude-3-5-sonnet', 1],
      ['vllm', '', 1],
    ]);
    expect((await getJson(base, '/api/v1/models?limit=1&offset=2')).body.items.map((m: { provider: string }) => m.provider)).toEqual(['vllm']);
  });
});

const point = (bucket_start: string, requests: number, errors: number, reported: Partial<TokenCounts>, estimated: Partial<TokenCounts>, cost: number, usd: number) => ({
  bucket_start,
  requests,
  errors,
  tokens: { reported: { ...zeroTokens, ...reported }, estimated: { ...zeroTokens, ...estimated } },
  cost_micro_usd: cost,
  cost_usd: usd,
});

describe('GET /api/v1/usage', () => {
  it('defaults to hour buckets over the last 24 hours, grouped by consumer', async () => {
    const base = await startAdmin({ store });
    const { status, body } = await getJson(base, '/api/v1/usage?group_by=consumer');
    expect(status).toBe(200);
    // team-b's traffic (two days ago) is outside the default range.
    expect(body).toEqual({
      group_by: 'consumer',
      bucket: 'hour',
      from: '2025-01-14T12:00:00.000Z',
      to: '2025-01-15T13:00:00.000Z',
      series: [
        { group: EVIL, points: [point('2025-01-14T23:00:00.000Z', 1, 1, {}, { output: 40 }, 0, 0)] },
        {
          group: 'team-a',
          points: [
            point('2025-01-15T10:00:00.000Z', 3, 1, { input: 100, cached_input: 20, output: 50 }, {}, 1234, 0.001234),
            point('2025-01-15T11:00:00.000Z', 2, 0, { input: 300, cache_write: 50, output: 100 }, {}, 2_500_000, 2.5),
            point('2025-01-15T12:00:00.000Z', 1, 0, { input: 10, output: 5, reasoning: 2 }, {}, 66, 0.000066),
          ],
        },
      ],
    });
  });

  it('groups by provider in day buckets', async () => {
    const base = await startAdmin({ store });
    const { body } = await getJson(base, '/api/v1/usage?group_by=provider&bucket=day');
    expect(body).toEqual({
      group_by: 'provider',
      bucket: 'day',
      from: '2025-01-14T00:00:00.000Z',
      to: '2025-01-16T00:00:00.000Z',
      series: [
        { group: 'anthropic', points: [point('2025-01-15T00:00:00.000Z', 2, 0, { input: 300, cache_write: 50, output: 100 }, {}, 2_500_000, 2.5)] },
        {
          group: 'openai',
          points: [
            point('2025-01-14T00:00:00.000Z', 1, 1, {}, { output: 40 }, 0, 0),
            point('2025-01-15T00:00:00.000Z', 4, 1, { input: 110, cached_input: 20, output: 55, reasoning: 2 }, {}, 1300, 0.0013),
          ],
        },
      ],
    });
  });

  it('groups by provider/model, with filters and an explicit range', async () => {
    const base = await startAdmin({ store });
    const models = (await getJson(base, '/api/v1/usage?group_by=model&bucket=hour&consumer=team-a')).body;
    expect(models.series.map((s: { group: string; points: { bucket_start: string }[] }) => [s.group, s.points.map((p) => p.bucket_start)])).toEqual([
      ['anthropic/claude-3-5-sonnet', ['2025-01-15T11:00:00.000Z']],
      ['openai/gpt-4o', ['2025-01-15T10:00:00.000Z', '2025-01-15T12:00:00.000Z']],
    ]);
    const old = (await getJson(base, '/api/v1/usage?group_by=model&bucket=day&from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z')).body;
    expect(old).toEqual({
      group_by: 'model',
      bucket: 'day',
      from: '2025-01-13T00:00:00.000Z',
      to: '2025-01-14T00:00:00.000Z',
      series: [{ group: 'vllm/', points: [point('2025-01-13T00:00:00.000Z', 5, 2, {}, {}, 0, 0)] }],
    });
    // Ranges widen to whole buckets: 10:30..10:31 is the 10:00 hour.
    const hour = (await getJson(base, `/api/v1/usage?group_by=provider&provider=openai&from=${t('2025-01-15T10:30:00Z')}&to=2025-01-15T10:31:00Z`)).body;
    expect([hour.from, hour.to, hour.series[0].points.length, hour.series[0].points[0].requests]).toEqual(['2025-01-15T10:00:00.000Z', '2025-01-15T11:00:00.000Z', 1, 3]);
  });
});

describe('CSV exports', () => {
  const TOKEN_HEADER =
    'reported_input_tokens,reported_cached_input_tokens,reported_cache_write_tokens,reported_output_tokens,reported_reasoning_tokens,' +
    'estimated_input_tokens,estimated_cached_input_tokens,estimated_cache_write_tokens,estimated_output_tokens,estimated_reasoning_tokens';
  const GUARDED_EVIL = `"'=HYPERLINK(""http://x"",""y"")"`;

  it('usage.csv: one row per group and bucket, quoted and guarded', async () => {
    const base = await startAdmin({ store });
    const res = await fetch(`${base}/api/v1/usage.csv?group_by=consumer`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="tokenwarden-usage-consumer-hour.csv"');
    expect(await res.text()).toBe(
      [
        `group,bucket_start,requests,errors,${TOKEN_HEADER},cost_micro_usd,cost_usd`,
        `${GUARDED_EVIL},2025-01-14T23:00:00.000Z,1,1,0,0,0,0,0,0,0,0,40,0,0,0`,
        'team-a,2025-01-15T10:00:00.000Z,3,1,100,20,0,50,0,0,0,0,0,0,1234,0.001234',
        'team-a,2025-01-15T11:00:00.000Z,2,0,300,0,50,100,0,0,0,0,0,0,2500000,2.5',
        'team-a,2025-01-15T12:00:00.000Z,1,0,10,0,0,5,2,0,0,0,0,0,66,0.000066',
        '',
      ].join('\r\n'),
    );
  });

  it('usage.csv takes the same parameters as usage', async () => {
    const base = await startAdmin({ store });
    const res = await fetch(`${base}/api/v1/usage.csv?group_by=provider&bucket=day&provider=anthropic`);
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="tokenwarden-usage-provider-day.csv"');
    expect((await res.text()).split('\r\n').slice(1)).toEqual(['anthropic,2025-01-15T00:00:00.000Z,2,0,300,0,50,100,0,0,0,0,0,0,2500000,2.5', '']);
    const bad = await getJson(base, '/api/v1/usage.csv?group_by=team');
    expect(bad.status).toBe(400);
    expect(bad.body.error.parameter).toBe('group_by');
  });

  it('inventory.csv: every record, sorted by consumer by default', async () => {
    const base = await startAdmin({ store });
    const res = await fetch(`${base}/api/v1/inventory.csv`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="tokenwarden-inventory.csv"');
    expect(await res.text()).toBe(
      [
        'consumer,provider,model,first_seen,last_seen,requests,errors_upstream_4xx,errors_upstream_5xx,errors_bad_input,errors_truncated,errors_aborted,' +
          `${TOKEN_HEADER},cost_micro_usd,cost_usd,unpriced_requests,last_api,response_models,consumer_resolver`,
        `${GUARDED_EVIL},openai,gpt-4o,2025-01-14T23:10:00.000Z,2025-01-14T23:15:00.000Z,1,0,0,0,0,1,0,0,0,0,0,0,0,0,40,0,0,0,1,chat_completions,,api_key`,
        'team-a,anthropic,claude-3-5-sonnet,2025-01-15T11:00:00.000Z,2025-01-15T11:40:00.000Z,2,0,0,0,0,0,300,0,50,100,0,0,0,0,0,0,2500000,2.5,0,messages,claude-3-5-sonnet-20241022,header',
        'team-a,openai,gpt-4o,2025-01-15T10:05:00.000Z,2025-01-15T12:10:00.000Z,4,0,1,0,0,0,110,20,0,55,2,0,0,0,0,0,1300,0.0013,0,responses,gpt-4o-2024-08-06 gpt-4o-2024-11-20,header',
        'team-b,vllm,,2025-01-13T08:00:00.000Z,2025-01-13T08:30:00.000Z,5,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,chat_completions,,xfcc',
        '',
      ].join('\r\n'),
    );
  });

  it('inventory.csv applies filters and sort, and takes no page parameters', async () => {
    const base = await startAdmin({ store });
    const rows = (await (await fetch(`${base}/api/v1/inventory.csv?provider=openai&sort=requests`)).text()).split('\r\n');
    expect(rows.slice(1).map((r) => r.split(',')[0])).toEqual(['team-a', GUARDED_EVIL.split(',')[0], '']);
    const bad = await getJson(base, '/api/v1/inventory.csv?limit=10');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ code: 'unknown_parameter', message: 'unknown parameter "limit"', parameter: 'limit' });
  });

  describe('with more records than one store page', () => {
    let big: MemoryStore;
    beforeAll(async () => {
      big = new MemoryStore({ maxRecords: 10_000, retentionHours: 24, now: () => NOW });
      const deltas = Array.from({ length: 2500 }, (_, i) =>
        delta({ key: { consumer: `c${String(i).padStart(4, '0')}`, provider: 'openai', model: 'gpt-4o' }, firstSeen: NOW - 1000 - i, lastSeen: NOW - i }),
      );
      await big.apply({ id: 'big', deltas });
    });

    it('exports every record exactly once', async () => {
      const base = await startAdmin({ store: big });
      const lines = (await (await fetch(`${base}/api/v1/inventory.csv`)).text()).split('\r\n');
      expect(lines.at(-1)).toBe('');
      const consumers = lines.slice(1, -1).map((l) => l.split(',')[0]);
      expect(consumers).toEqual(Array.from({ length: 2500 }, (_, i) => `c${String(i).padStart(4, '0')}`));
    });

    it('cuts the download short when the store fails part way, rather than send a partial file as complete', async () => {
      let calls = 0;
      const flaky = wrapStore(big, { inventory: (q) => (++calls === 1 ? big.inventory(q) : unreachable()) });
      const base = await startAdmin({ store: flaky });
      const res = await fetch(`${base}/api/v1/inventory.csv`);
      expect(res.status).toBe(200);
      await expect(res.text()).rejects.toThrow();
    });
  });

  it('guards every formula-starting text cell and quotes per RFC 4180', () => {
    expect(['=1+2', '+1', '-1', '@SUM(A1)', '\tx', '\rx'].map(csvCell)).toEqual(["'=1+2", "'+1", "'-1", "'@SUM(A1)", "'\tx", `"'\rx"`]);
    expect(['plain', 'a,b', 'say "hi"', 'two\nlines', '', 'a=b'].map(csvCell)).toEqual(['plain', '"a,b"', '"say ""hi"""', '"two\nlines"', '', 'a=b']);
    expect([0, 1234, null].map(csvCell)).toEqual(['0', '1234', '']);
  });
});

describe('invalid parameters answer 400 naming the parameter', () => {
  it.each([
    ['/api/v1/inventory?limit=0', 'limit', 'invalid_parameter'],
    ['/api/v1/inventory?limit=1001', 'limit', 'invalid_parameter'],
    ['/api/v1/inventory?limit=ten', 'limit', 'invalid_parameter'],
    ['/api/v1/inventory?offset=-1', 'offset', 'invalid_parameter'],
    ['/api/v1/inventory?offset=1.5', 'offset', 'invalid_parameter'],
    ['/api/v1/inventory?sort=price', 'sort', 'invalid_parameter'],
    ['/api/v1/inventory?order=up', 'order', 'invalid_parameter'],
    ['/api/v1/inventory?unpriced=yes', 'unpriced', 'invalid_parameter'],
    ['/api/v1/inventory?first_seen_from=yesterday', 'first_seen_from', 'invalid_parameter'],
    ['/api/v1/inventory?last_seen_to=2025-02-30T00:00:00Z', 'last_seen_to', 'invalid_parameter'],
    ['/api/v1/inventory?last_seen_from=2025-01-15', 'last_seen_from', 'invalid_parameter'],
    ['/api/v1/inventory?cosumer=team-a', 'cosumer', 'unknown_parameter'],
    ['/api/v1/inventory?consumer=a&consumer=b', 'consumer', 'invalid_parameter'],
    ['/api/v1/consumers?limit=5000', 'limit', 'invalid_parameter'],
    ['/api/v1/consumers?sort=requests', 'sort', 'unknown_parameter'],
    ['/api/v1/models?offset=x', 'offset', 'invalid_parameter'],
    ['/api/v1/usage', 'group_by', 'missing_parameter'],
    ['/api/v1/usage?group_by=team', 'group_by', 'invalid_parameter'],
    ['/api/v1/usage?group_by=model&bucket=week', 'bucket', 'invalid_parameter'],
    ['/api/v1/usage?group_by=model&from=2025-01-15T10:00:00Z&to=2025-01-15T09:00:00Z', 'to', 'invalid_parameter'],
    ['/api/v1/usage?group_by=model&from=2030-01-01T00:00:00Z', 'from', 'invalid_parameter'],
    ['/api/v1/usage?group_by=model&from=2020-01-01T00:00:00Z', 'from', 'invalid_parameter'],
    ['/api/v1/usage?group_by=model&limit=5', 'limit', 'unknown_parameter'],
  ])('%s', async (path, parameter, code) => {
    const base = await startAdmin({ store });
    const { status, body } = await getJson(base, path);
    expect(status).toBe(400);
    expect(body.error.parameter).toBe(parameter);
    expect(body.error.code).toBe(code);
    expect(body.error.message).toMatch(/\S/);
  });
});

describe('timestamps', () => {
  it('accepts RFC 3339 date-times and epoch milliseconds, rejects anything else', () => {
    expect(parseTimestamp('2025-01-15T12:30:00Z')).toBe(NOW);
    expect(parseTimestamp('2025-01-15t12:30:00.000z')).toBe(NOW);
    expect(parseTimestamp('2025-01-15T14:00:00+01:30')).toBe(NOW);
    expect(parseTimestamp('2025-01-15T10:30:00-02:00')).toBe(NOW);
    expect(parseTimestamp('2025-01-15T13:30:00 01:00')).toBe(NOW);
    expect(parseTimestamp('2025-01-15T12:30:00.1239Z')).toBe(NOW + 123);
    expect(parseTimestamp(String(NOW))).toBe(NOW);
    expect(parseTimestamp('0')).toBe(0);
    for (const bad of ['', '2025-02-29T00:00:00Z', '2025-01-15T24:00:00Z', '2025-01-15T12:30:60Z', '2025-01-15T12:30:00', '2025-01-15', '-5', '1e12', '99999999999999999', '2025-01-15T12:30:00+25:00'])
      expect(parseTimestamp(bad), bad).toBeNull();
  });
});

describe('errors, methods and limits', () => {
  it('unknown paths are 404 JSON', async () => {
    const base = await startAdmin({ store });
    for (const path of ['/nope', '/api/v1/inventory/', '/api/v2/inventory']) {
      const { status, body } = await getJson(base, path);
      expect(status).toBe(404);
      expect(body.error.code).toBe('not_found');
    }
  });

  it('other methods are 405 with allow', async () => {
    const base = await startAdmin({ store });
    for (const [method, path] of [['POST', '/api/v1/inventory'], ['DELETE', '/api/v1/consumers'], ['PUT', '/healthz']] as const) {
      const res = await rawRequest(base, { method, path });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
      expect(JSON.parse(res.body).error.code).toBe('method_not_allowed');
    }
  });

  it('a GET with a body is refused and the connection closed', async () => {
    const base = await startAdmin({ store });
    const res = await rawRequest(base, { method: 'GET', path: '/api/v1/inventory', headers: { 'content-type': 'application/json', 'content-length': '11' }, body: '{"limit":5}' });
    expect(res.status).toBe(400);
    expect(res.headers.connection).toBe('close');
    expect(JSON.parse(res.body).error.code).toBe('body_not_allowed');
  });

  it('URLs over 8 KiB are 414, however long; huge headers are 431', async () => {
    const base = await startAdmin({ store });
    for (const size of [8 * 1024, 20 * 1024, 200 * 1024]) {
      const res = await rawRequest(base, { method: 'GET', path: `/api/v1/inventory?consumer=${'a'.repeat(size)}` });
      expect(res.status, `${size}`).toBe(414);
      expect(JSON.parse(res.body).error.code).toBe('uri_too_long');
    }
    const fits = await rawRequest(base, { method: 'GET', path: `/api/v1/inventory?consumer=${'a'.repeat(8000)}` });
    expect(fits.status).toBe(200);
    const headers = await rawRequest(base, { method: 'GET', path: '/healthz', headers: { 'x-big': 'b'.repeat(20 * 1024) } });
    expect(headers.status).toBe(431);
  });

  it('an unreachable store is a 503 on every API endpoint', async () => {
    const failing = wrapStore(store, { inventory: unreachable, consumers: unreachable, models: unreachable, usage: unreachable });
    const base = await startAdmin({ store: failing });
    for (const path of ['/api/v1/inventory', '/api/v1/consumers', '/api/v1/models', '/api/v1/usage?group_by=model', '/api/v1/usage.csv?group_by=model', '/api/v1/inventory.csv']) {
      const { status, body } = await getJson(base, path);
      expect(status, path).toBe(503);
      expect(body.error.code).toBe('store_unavailable');
      expect(JSON.stringify(body)).not.toContain('10.0.0.9');
    }
  });

  it('a store that never answers is a 503 after the deadline, not a hang', async () => {
    const hanging = wrapStore(store, { inventory: never, usage: never });
    const base = await startAdmin({ store: hanging, storeTimeoutMs: 50 });
    expect((await getJson(base, '/api/v1/inventory')).status).toBe(503);
    expect((await getJson(base, '/api/v1/usage.csv?group_by=consumer')).status).toBe(503);
  });
});

describe('auth', () => {
  it('with a token, /api and /metrics need the bearer token; health stays open', async () => {
    const base = await startAdmin({ store, token: TOKEN });
    for (const path of ['/api/v1/inventory', '/api/v1/usage.csv?group_by=model', '/metrics', '/api/v1/nothing-here']) {
      const missing = await fetch(base + path);
      expect(missing.status, path).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="tokenwarden"');
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      for (const wrong of [`Bearer ${TOKEN}x`, 'Bearer s3cret', `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
        const res = await fetch(base + path, { headers: { authorization: wrong } });
        expect(res.status, `${path} ${wrong}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="tokenwarden", error="invalid_token"');
        await res.body?.cancel();
      }
    }
    expect((await fetch(`${base}/api/v1/inventory`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${base}/api/v1/inventory`, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${base}/api/v1/nothing-here`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('# HELP tokenwarden_exchanges_total');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('without a token everything is open', async () => {
    const base = await startAdmin({ store });
    expect((await fetch(`${base}/api/v1/consumers`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });

  it('isLoopbackAddress', () => {
    for (const h of ['127.0.0.1', '127.10.0.5', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '[::]', '10.0.0.1', '128.0.0.1', '::2', 'example.com', 'localhost.example.com', '']) expect(isLoopbackAddress(h), h).toBe(false);
  });
});

describe('health and readiness', () => {
  it('/healthz is 200 and /readyz is 200 when gRPC serves and the store answers', async () => {
    const base = await startAdmin({ store });
    expect(await getJson(base, '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await getJson(base, '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('/readyz is 503 while the gRPC server is not serving', async () => {
    let serving = false;
    const base = await startAdmin({ store, ready: () => serving });
    expect(await getJson(base, '/readyz')).toMatchObject({ status: 503, body: { status: 'not_ready', reason: 'grpc_not_serving' } });
    serving = true;
    expect((await getJson(base, '/readyz')).status).toBe(200);
    expect((await getJson(base, '/healthz')).status).toBe(200);
  });

  it('/readyz is 503 when the store ping fails or does not answer in time', async () => {
    let ping: () => Promise<void> = unreachable;
    const base = await startAdmin({ store: wrapStore(store, { ping: () => ping() }), readyTimeoutMs: 50 });
    expect(await getJson(base, '/readyz')).toMatchObject({ status: 503, body: { status: 'not_ready', reason: 'store_unreachable' } });
    ping = never;
    expect(await getJson(base, '/readyz')).toMatchObject({ status: 503, body: { reason: 'store_unreachable' } });
    ping = () => Promise.resolve();
    expect((await getJson(base, '/readyz')).status).toBe(200);
    expect((await getJson(base, '/healthz')).status).toBe(200);
  });
});
