/**
 * The InventoryStore contract: one suite run against every implementation (memory and Redis). Each
 * test gets a fresh, empty store and a clock it controls.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ApiCounts, emptyErrors, emptyTokens, type ErrorCounts, type InventoryBatch, type InventoryDelta, type InventoryRecord, type InventorySortField, type InventoryStore, type TokenCounts, type UsagePoint } from '../../src/inventory/types.js';
import { DAY_MS, HOUR_MS } from '../../src/time.js';

export interface StoreUnderTest {
  store: InventoryStore;
  cleanup(): Promise<void>;
}

export type MakeStore = (opts: { now: () => number; retentionHours: number }) => Promise<StoreUnderTest>;

/** 2025-01-15T10:00:00Z, an hour boundary; D0 is its day. */
export const T0 = Date.UTC(2025, 0, 15, 10);
const D0 = Date.UTC(2025, 0, 15);
const MIN = 60_000;
const RETENTION_HOURS = 48;

let batchSeq = 0;

export function batch(...deltas: InventoryDelta[]): InventoryBatch {
  return { id: `batch-${process.pid}-${++batchSeq}`, deltas };
}

type DeltaInit = Partial<Omit<InventoryDelta, 'errors' | 'reported' | 'estimated'>> & {
  errors?: Partial<ErrorCounts>;
  reported?: Partial<TokenCounts>;
  estimated?: Partial<TokenCounts>;
};

/** One exchange's worth of delta for consumer/provider/model at `at`, with overrides. */
export function delta(consumer: string, provider: string, model: string, at: number, init: DeltaInit = {}): InventoryDelta {
  return {
    key: { consumer, provider, model },
    firstSeen: at,
    lastSeen: at,
    requests: 1,
    costMicroUsd: 0,
    unpricedRequests: 0,
    lastApi: 'chat_completions',
    responseModels: [],
    consumerResolver: 'header',
    ...init,
    errors: { ...emptyErrors(), ...init.errors },
    reported: { ...emptyTokens(), ...init.reported },
    estimated: { ...emptyTokens(), ...init.estimated },
  };
}

type PartInit = Partial<Omit<ApiCounts, 'api' | 'reported' | 'estimated'>> & { reported?: Partial<TokenCounts>; estimated?: Partial<TokenCounts> };

/** One API's share of a delta (InventoryDelta.byApi). */
export function part(api: string, init: PartInit = {}): ApiCounts {
  return {
    api,
    requests: 1,
    errors: 0,
    costMicroUsd: 0,
    estimatedCostMicroUsd: 0,
    unpricedRequests: 0,
    ...init,
    reported: { ...emptyTokens(), ...init.reported },
    estimated: { ...emptyTokens(), ...init.estimated },
  };
}

/** A delta whose counters are the sum of its API parts (as the Recorder makes them). */
export function splitDelta(consumer: string, provider: string, model: string, at: number, parts: ApiCounts[], init: DeltaInit = {}): InventoryDelta {
  const sum = (f: (p: ApiCounts) => number): number => parts.reduce((n, p) => n + f(p), 0);
  const tokens = (source: 'reported' | 'estimated'): TokenCounts => {
    const t = emptyTokens();
    for (const k of Object.keys(t) as (keyof TokenCounts)[]) t[k] = sum((p) => p[source][k]);
    return t;
  };
  return {
    ...delta(consumer, provider, model, at, { ...init, requests: sum((p) => p.requests), costMicroUsd: sum((p) => p.costMicroUsd), unpricedRequests: sum((p) => p.unpricedRequests) }),
    errors: { ...emptyErrors(), upstream_5xx: sum((p) => p.errors) },
    reported: tokens('reported'),
    estimated: tokens('estimated'),
    byApi: parts,
  };
}

const keyOf = (r: { key: { consumer: string; provider: string; model: string } }): string => `${r.key.consumer}|${r.key.provider}|${r.key.model}`;

/**
 * Four records with distinct values for every sort field:
 *   key                         firstSeen lastSeen requests cost tokens unpriced
 *   alice|openai|gpt-4o         T0+1m     T0+40m   5        500  30     0
 *   alice|anthropic|claude      T0+2m     T0+10m   1        900  300    0
 *   bob|openai|gpt-4o           T0+3m     T0+30m   7        100  3      0
 *   carol|openai|gpt-4o-mini    T0+4m     T0+20m   3        0    3000   2
 */
async function seedFour(store: InventoryStore): Promise<void> {
  await store.apply(
    batch(
      delta('alice', 'openai', 'gpt-4o', 0, { firstSeen: T0 + 1 * MIN, lastSeen: T0 + 40 * MIN, requests: 5, costMicroUsd: 500, reported: { input: 20, output: 10 } }),
      delta('alice', 'anthropic', 'claude', 0, { firstSeen: T0 + 2 * MIN, lastSeen: T0 + 10 * MIN, requests: 1, costMicroUsd: 900, reported: { input: 200, output: 100 } }),
      delta('bob', 'openai', 'gpt-4o', 0, { firstSeen: T0 + 3 * MIN, lastSeen: T0 + 30 * MIN, requests: 7, costMicroUsd: 100, estimated: { input: 2, output: 1 } }),
      delta('carol', 'openai', 'gpt-4o-mini', 0, {
        firstSeen: T0 + 4 * MIN,
        lastSeen: T0 + 20 * MIN,
        requests: 3,
        unpricedRequests: 2,
        reported: { input: 1000, output: 1000 },
        estimated: { input: 500, output: 500 },
      }),
    ),
  );
}

const A = 'alice|openai|gpt-4o';
const AC = 'alice|anthropic|claude';
const B = 'bob|openai|gpt-4o';
const C = 'carol|openai|gpt-4o-mini';

export function storeContract(name: string, make: MakeStore): void {
  describe(`InventoryStore contract: ${name}`, () => {
    let clock = T0 + 2 * HOUR_MS;
    let current: StoreUnderTest | null = null;

    async function fresh(): Promise<InventoryStore> {
      clock = T0 + 2 * HOUR_MS;
      current = await make({ now: () => clock, retentionHours: RETENTION_HOURS });
      return current.store;
    }

    afterEach(async () => {
      await current?.cleanup();
      current = null;
    });

    it('aggregates every field of a record over batches', async () => {
      const store = await fresh();
      const key = ['team-a', 'openai', 'gpt-4o'] as const;
      await store.apply(
        batch(
          delta(...key, 0, {
            firstSeen: T0 + 1_000,
            lastSeen: T0 + 2_000,
            requests: 2,
            errors: { upstream_4xx: 1 },
            reported: { input: 100, cached_input: 20, cache_write: 5, output: 50, reasoning: 10 },
            costMicroUsd: 1_500,
            lastApi: 'chat_completions',
            responseModels: ['gpt-4o-2024-08-06'],
            consumerResolver: 'header',
          }),
        ),
      );
      await store.apply(
        batch(
          delta(...key, 0, {
            firstSeen: T0 + 500,
            lastSeen: T0 + 3_000,
            requests: 6,
            errors: { upstream_5xx: 2, bad_input: 1, truncated: 1, aborted: 1 },
            reported: { input: 1, output: 2 },
            estimated: { input: 7, cached_input: 1, cache_write: 2, output: 30, reasoning: 3 },
            costMicroUsd: 200,
            unpricedRequests: 1,
            lastApi: 'responses',
            responseModels: ['gpt-4o-mini', 'gpt-4o-2024-08-06'],
            consumerResolver: 'api_key',
          }),
        ),
      );
      // An older delta arriving late widens firstSeen but is not the latest exchange.
      await store.apply(batch(delta(...key, T0 + 100, { lastApi: 'embeddings', consumerResolver: null, responseModels: ['text-embedding-3-small'] })));

      const page = await store.inventory({});
      expect(page.total).toBe(1);
      expect(page.items[0]).toEqual({
        key: { consumer: 'team-a', provider: 'openai', model: 'gpt-4o' },
        firstSeen: T0 + 100,
        lastSeen: T0 + 3_000,
        requests: 9,
        errors: { upstream_4xx: 1, upstream_5xx: 2, bad_input: 1, truncated: 1, aborted: 1 },
        reported: { input: 101, cached_input: 20, cache_write: 5, output: 52, reasoning: 10 },
        estimated: { input: 7, cached_input: 1, cache_write: 2, output: 30, reasoning: 3 },
        costMicroUsd: 1_700,
        unpricedRequests: 1,
        lastApi: 'responses',
        responseModels: ['gpt-4o-2024-08-06', 'gpt-4o-mini', 'text-embedding-3-small'],
        consumerResolver: 'api_key',
      } satisfies InventoryRecord);
    });

    it('keeps a null consumer resolver and the api of the latest exchange (a tie goes to the later batch)', async () => {
      const store = await fresh();
      await store.apply(batch(delta('10.0.0.7', 'ollama', '', T0, { lastApi: 'ollama_chat', consumerResolver: null })));
      await store.apply(batch(delta('10.0.0.7', 'ollama', '', T0, { lastApi: 'chat_completions', consumerResolver: null })));
      const [r] = (await store.inventory({})).items;
      expect(r).toMatchObject({ key: { consumer: '10.0.0.7', provider: 'ollama', model: '' }, lastApi: 'chat_completions', consumerResolver: null, requests: 2 });
    });

    it('keeps keys with any characters apart', async () => {
      const store = await fresh();
      await store.apply(
        batch(
          delta('spiffe://a/b:c', 'openai', 'x', T0),
          delta('spiffe://a/b', 'openai', 'c:x', T0),
          delta('key:ab"\\', 'bedrock', 'arn:aws:bedrock:us-east-1::foundation-model/meta.llama3', T0),
        ),
      );
      const keys = (await store.inventory({ sort: 'consumer', order: 'asc' })).items.map(keyOf);
      expect(keys).toEqual(['key:ab"\\|bedrock|arn:aws:bedrock:us-east-1::foundation-model/meta.llama3', 'spiffe://a/b|openai|c:x', 'spiffe://a/b:c|openai|x']);
      expect((await store.inventory({ consumer: 'spiffe://a/b' })).items.map(keyOf)).toEqual(['spiffe://a/b|openai|c:x']);
    });

    it('counts a batch id once, also when retried a day later', async () => {
      const store = await fresh();
      const b = batch(delta('alice', 'openai', 'gpt-4o', T0, { requests: 3, reported: { input: 10 } }));
      await store.apply(b);
      await store.apply(b);
      await Promise.all([store.apply(b), store.apply(b)]);
      clock += 23 * HOUR_MS;
      await store.apply(b);
      await store.apply({ ...b, id: `${b.id}-other` });
      const [r] = (await store.inventory({})).items;
      expect(r?.requests).toBe(6);
      expect(r?.reported.input).toBe(20);
      const [u] = await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0, to: T0 + HOUR_MS });
      expect(u?.requests).toBe(6);
    });

    it('rolls up per consumer and per provider/model with distinct counts', async () => {
      const store = await fresh();
      await seedFour(store);
      const consumers = await store.consumers({});
      expect(consumers.total).toBe(3);
      // Most recently seen first.
      expect(consumers.items.map((c) => c.consumer)).toEqual(['alice', 'bob', 'carol']);
      expect(consumers.items[0]).toEqual({
        consumer: 'alice',
        models: 2,
        firstSeen: T0 + 1 * MIN,
        lastSeen: T0 + 40 * MIN,
        requests: 6,
        errors: emptyErrors(),
        reported: { ...emptyTokens(), input: 220, output: 110 },
        estimated: emptyTokens(),
        costMicroUsd: 1_400,
        unpricedRequests: 0,
      });
      expect(consumers.items[2]).toMatchObject({ consumer: 'carol', models: 1, requests: 3, unpricedRequests: 2 });

      const models = await store.models({});
      expect(models.total).toBe(3);
      expect(models.items.map((m) => `${m.provider}/${m.model}`)).toEqual(['openai/gpt-4o', 'openai/gpt-4o-mini', 'anthropic/claude']);
      expect(models.items[0]).toEqual({
        provider: 'openai',
        model: 'gpt-4o',
        consumers: 2,
        firstSeen: T0 + 1 * MIN,
        lastSeen: T0 + 40 * MIN,
        requests: 12,
        errors: emptyErrors(),
        reported: { ...emptyTokens(), input: 20, output: 10 },
        estimated: { ...emptyTokens(), input: 2, output: 1 },
        costMicroUsd: 600,
        unpricedRequests: 0,
      });

      await store.apply(batch(delta('carol', 'openai', 'gpt-4o', T0 + 50 * MIN, { errors: { aborted: 1 } })));
      const after = await store.models({ limit: 1 });
      expect(after).toEqual({ total: 3, items: [expect.objectContaining({ model: 'gpt-4o', consumers: 3, requests: 13, lastSeen: T0 + 50 * MIN })] });
      expect(after.items[0]?.errors.aborted).toBe(1);
      expect((await store.consumers({ offset: 1, limit: 1 })).items.map((c) => c.consumer)).toEqual(['alice']);
      expect((await store.consumers({ offset: 0, limit: 0 })).items).toEqual([]);
    });

    it('filters the inventory by every field', async () => {
      const store = await fresh();
      await seedFour(store);
      const keys = async (q: Parameters<InventoryStore['inventory']>[0]): Promise<string[]> => {
        const page = await store.inventory({ ...q, sort: 'consumer', order: 'asc' });
        expect(page.total).toBe(page.items.length);
        return page.items.map(keyOf);
      };
      expect(await keys({})).toEqual([AC, A, B, C]);
      expect(await keys({ consumer: 'alice' })).toEqual([AC, A]);
      expect(await keys({ consumer: 'nobody' })).toEqual([]);
      expect(await keys({ provider: 'openai' })).toEqual([A, B, C]);
      expect(await keys({ model: 'gpt-4o' })).toEqual([A, B]);
      expect(await keys({ provider: 'openai', model: 'gpt-4o' })).toEqual([A, B]);
      expect(await keys({ provider: 'anthropic', model: 'gpt-4o' })).toEqual([]);
      expect(await keys({ consumer: 'alice', provider: 'openai' })).toEqual([A]);
      expect(await keys({ consumer: 'bob', provider: 'openai', model: 'gpt-4o' })).toEqual([B]);
      // Bounds are inclusive.
      expect(await keys({ firstSeenFrom: T0 + 2 * MIN })).toEqual([AC, B, C]);
      expect(await keys({ firstSeenTo: T0 + 2 * MIN })).toEqual([AC, A]);
      expect(await keys({ firstSeenFrom: T0 + 2 * MIN, firstSeenTo: T0 + 3 * MIN })).toEqual([AC, B]);
      expect(await keys({ lastSeenFrom: T0 + 30 * MIN })).toEqual([A, B]);
      expect(await keys({ lastSeenTo: T0 + 20 * MIN })).toEqual([AC, C]);
      expect(await keys({ lastSeenFrom: T0 + 20 * MIN, lastSeenTo: T0 + 30 * MIN })).toEqual([B, C]);
      expect(await keys({ consumer: 'alice', lastSeenFrom: T0 + 11 * MIN })).toEqual([A]);
      expect(await keys({ unpriced: true })).toEqual([C]);
      expect(await keys({ unpriced: false })).toEqual([AC, A, B]);
      expect(await keys({ provider: 'openai', unpriced: false, lastSeenTo: T0 + 35 * MIN })).toEqual([B]);
    });

    it('sorts the inventory by every field in both orders', async () => {
      const store = await fresh();
      await seedFour(store);
      const expected: Record<InventorySortField, string[]> = {
        lastSeen: [AC, C, B, A],
        firstSeen: [A, AC, B, C],
        requests: [AC, C, A, B],
        costMicroUsd: [C, B, A, AC],
        tokens: [B, A, AC, C],
        consumer: [AC, A, B, C],
        // Ties are broken by the whole key, in the same direction.
        provider: [AC, A, B, C],
        model: [AC, A, B, C],
      };
      for (const [sort, asc] of Object.entries(expected) as [InventorySortField, string[]][]) {
        const up = await store.inventory({ sort, order: 'asc' });
        expect(up.items.map(keyOf), `${sort} asc`).toEqual(asc);
        const down = await store.inventory({ sort, order: 'desc' });
        expect(down.items.map(keyOf), `${sort} desc`).toEqual([...asc].reverse());
      }
      // The default is the most recently seen first.
      expect((await store.inventory({})).items.map(keyOf)).toEqual([A, B, C, AC]);
    });

    it('pages the inventory with the total before paging', async () => {
      const store = await fresh();
      await seedFour(store);
      for (const sort of ['lastSeen', 'requests'] as const) {
        const all = (await store.inventory({ sort })).items.map(keyOf);
        const pages: string[] = [];
        for (let offset = 0; offset < 5; offset += 3) {
          const page = await store.inventory({ sort, offset, limit: 3 });
          expect(page.total).toBe(4);
          pages.push(...page.items.map(keyOf));
        }
        expect(pages).toEqual(all);
        expect(await store.inventory({ sort, offset: 10 })).toEqual({ items: [], total: 4 });
        expect(await store.inventory({ sort, limit: 0 })).toEqual({ items: [], total: 4 });
        expect(await store.inventory({ sort, provider: 'openai', offset: 1, limit: 1 })).toMatchObject({ total: 3 });
      }
    });

    it('limits a page to 100 by default and 1000 at most', async () => {
      const store = await fresh();
      const many = Array.from({ length: 1001 }, (_, i) => delta(`c${String(i).padStart(4, '0')}`, 'openai', 'gpt-4o', T0 + i));
      await store.apply(batch(...many));
      const byDefault = await store.inventory({});
      expect(byDefault.total).toBe(1001);
      expect(byDefault.items).toHaveLength(100);
      expect(byDefault.items[0]?.key.consumer).toBe('c1000');
      expect((await store.inventory({ limit: 5000 })).items).toHaveLength(1000);
      expect((await store.inventory({ sort: 'consumer', order: 'asc', limit: 5000 })).items).toHaveLength(1000);
      expect((await store.consumers({ limit: 5000 })).items).toHaveLength(1000);
      expect((await store.models({})).items[0]).toMatchObject({ consumers: 1001, requests: 1001 });
    });

    describe('usage', () => {
      /**
       *   alice|openai|gpt-4o     T0+10m (1 req, 1 error, 10 in/5 out, 100)   T0+1h+5m (2 req, 20/10, 200)
       *   bob|openai|gpt-4o       T0+20m (1 req, estimated 7 out)
       *   alice|anthropic|claude  T0+30m (4 req, 40 in, 400)
       *   carol|openai|gpt-4o-mini  T0-24h (1 req)
       */
      async function seedUsage(store: InventoryStore): Promise<void> {
        await store.apply(
          batch(
            delta('alice', 'openai', 'gpt-4o', T0 + 10 * MIN, { errors: { upstream_5xx: 1 }, reported: { input: 10, output: 5 }, costMicroUsd: 100 }),
            delta('bob', 'openai', 'gpt-4o', T0 + 20 * MIN, { estimated: { output: 7 } }),
            delta('alice', 'anthropic', 'claude', T0 + 30 * MIN, { requests: 4, reported: { input: 40 }, costMicroUsd: 400 }),
            delta('carol', 'openai', 'gpt-4o-mini', T0 - DAY_MS),
          ),
        );
        await store.apply(batch(delta('alice', 'openai', 'gpt-4o', T0 + HOUR_MS + 5 * MIN, { requests: 2, reported: { input: 20, output: 10 }, costMicroUsd: 200 })));
      }

      const point = (group: string, bucketStart: number, p: Partial<UsagePoint> = {}): UsagePoint => ({
        group,
        bucketStart,
        requests: 1,
        errors: 0,
        costMicroUsd: 0,
        estimatedCostMicroUsd: 0,
        unpricedRequests: 0,
        ...p,
        reported: { ...emptyTokens(), ...p.reported },
        estimated: { ...emptyTokens(), ...p.estimated },
      });

      it('groups by consumer in hourly buckets', async () => {
        const store = await fresh();
        await seedUsage(store);
        expect(await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0, to: T0 + 2 * HOUR_MS })).toEqual([
          point('alice', T0, { requests: 5, errors: 1, reported: { ...emptyTokens(), input: 50, output: 5 }, costMicroUsd: 500 }),
          point('alice', T0 + HOUR_MS, { requests: 2, reported: { ...emptyTokens(), input: 20, output: 10 }, costMicroUsd: 200 }),
          point('bob', T0, { estimated: { ...emptyTokens(), output: 7 } }),
        ]);
      });

      it('groups by provider in daily buckets', async () => {
        const store = await fresh();
        await seedUsage(store);
        expect(await store.usage({ groupBy: 'provider', bucket: 'day', from: D0 - DAY_MS, to: D0 + DAY_MS })).toEqual([
          point('anthropic', D0, { requests: 4, reported: { ...emptyTokens(), input: 40 }, costMicroUsd: 400 }),
          point('openai', D0 - DAY_MS),
          point('openai', D0, {
            requests: 4,
            errors: 1,
            reported: { ...emptyTokens(), input: 30, output: 15 },
            estimated: { ...emptyTokens(), output: 7 },
            costMicroUsd: 300,
          }),
        ]);
      });

      it('groups by provider/model with filters; `to` is exclusive', async () => {
        const store = await fresh();
        await seedUsage(store);
        const q = { groupBy: 'model', bucket: 'hour', from: T0, to: T0 + HOUR_MS } as const;
        expect((await store.usage({ ...q, consumer: 'alice' })).map((p) => [p.group, p.bucketStart, p.requests])).toEqual([
          ['anthropic/claude', T0, 4],
          ['openai/gpt-4o', T0, 1],
        ]);
        expect((await store.usage({ ...q, provider: 'openai' })).map((p) => [p.group, p.requests])).toEqual([['openai/gpt-4o', 2]]);
        expect((await store.usage({ ...q, provider: 'openai', model: 'gpt-4o', consumer: 'bob' })).map((p) => [p.group, p.requests])).toEqual([['openai/gpt-4o', 1]]);
        expect(await store.usage({ ...q, model: 'nothing' })).toEqual([]);
      });

      it('aligns `from` down to the bucket and takes every bucket that overlaps [from, to)', async () => {
        const store = await fresh();
        await seedUsage(store);
        const hourly = await store.usage({ groupBy: 'provider', bucket: 'hour', from: T0 + 30 * MIN, to: T0 + HOUR_MS + 1, provider: 'openai' });
        expect(hourly.map((p) => [p.bucketStart, p.requests])).toEqual([
          [T0, 2],
          [T0 + HOUR_MS, 2],
        ]);
        // A day bucket is whole: the day of `to` counts all of its hours.
        const daily = await store.usage({ groupBy: 'consumer', bucket: 'day', from: T0 + 5 * HOUR_MS, to: T0 + 1 });
        expect(daily.map((p) => [p.group, p.bucketStart, p.requests])).toEqual([
          ['alice', D0, 7],
          ['bob', D0, 1],
        ]);
        expect(await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0 + 3 * HOUR_MS, to: T0 + 9 * HOUR_MS })).toEqual([]);
        expect(await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0 + HOUR_MS, to: T0 })).toEqual([]);
      });

      it('forgets hourly buckets past retention but keeps the inventory', async () => {
        const store = await fresh();
        await seedUsage(store);
        const carol = { groupBy: 'consumer', bucket: 'hour', from: T0 - 2 * DAY_MS, to: T0 + DAY_MS, consumer: 'carol' } as const;
        expect((await store.usage(carol)).map((p) => p.bucketStart)).toEqual([T0 - DAY_MS]);
        // Carol's bucket is the hour [T0-24h, T0-23h): it leaves retention when now - 48 h reaches its end.
        clock = T0 - 23 * HOUR_MS + RETENTION_HOURS * HOUR_MS - 1;
        expect((await store.usage(carol)).map((p) => p.bucketStart)).toEqual([T0 - DAY_MS]);
        clock += 1;
        expect(await store.usage(carol)).toEqual([]);
        // Applying new batches prunes, and a delta already past retention adds no bucket.
        await store.apply(batch(delta('dave', 'openai', 'gpt-4o', T0 - DAY_MS), delta('erin', 'openai', 'gpt-4o', clock)));
        expect((await store.usage({ ...carol, consumer: undefined, to: clock + HOUR_MS })).map((p) => p.group)).toEqual(['alice', 'alice', 'bob', 'erin']);
        expect((await store.inventory({ consumer: 'carol' })).total).toBe(1);
        expect((await store.inventory({ consumer: 'dave' })).items[0]?.requests).toBe(1);
      });
    });

    describe('usage by API', () => {
      /**
       *   alice|openai|gpt-4o  T0+10m  chat_completions: 2 req, 10 in, 100    responses: 1 req (error), est 5 out, 30 estimated, 1 unpriced
       *   alice|openai|gpt-4o  T0+1h   responses: 1 req, 4 in, 40
       *   bob|anthropic|claude T0+20m  no split, lastApi messages: 2 req, est 8 out, 16
       */
      async function seedApis(store: InventoryStore): Promise<void> {
        await store.apply(
          batch(
            splitDelta('alice', 'openai', 'gpt-4o', T0 + 10 * MIN, [
              part('chat_completions', { requests: 2, reported: { input: 10 }, costMicroUsd: 100 }),
              part('responses', { errors: 1, estimated: { output: 5 }, costMicroUsd: 30, estimatedCostMicroUsd: 30, unpricedRequests: 1 }),
            ]),
            delta('bob', 'anthropic', 'claude', T0 + 20 * MIN, { requests: 2, lastApi: 'messages', estimated: { output: 8 }, costMicroUsd: 16 }),
          ),
        );
        await store.apply(batch(splitDelta('alice', 'openai', 'gpt-4o', T0 + HOUR_MS, [part('responses', { reported: { input: 4 }, costMicroUsd: 40 })])));
      }

      const summary = (points: UsagePoint[]) => points.map((p) => [p.group, p.bucketStart, p.requests, p.errors, p.costMicroUsd, p.estimatedCostMicroUsd, p.unpricedRequests]);

      it('files each API of a delta in its own bucket; a delta without a split goes to lastApi', async () => {
        const store = await fresh();
        await seedApis(store);
        expect(summary(await store.usage({ groupBy: 'api', bucket: 'hour', from: T0, to: T0 + 2 * HOUR_MS }))).toEqual([
          ['chat_completions', T0, 2, 0, 100, 0, 0],
          ['messages', T0, 2, 0, 16, 16, 0],
          ['responses', T0, 1, 1, 30, 30, 1],
          ['responses', T0 + HOUR_MS, 1, 0, 40, 0, 0],
        ]);
        const [responses] = await store.usage({ groupBy: 'api', bucket: 'day', from: T0, to: T0 + 1, api: 'responses' });
        expect(responses).toMatchObject({ group: 'responses', bucketStart: D0, requests: 2, reported: { input: 4 }, estimated: { output: 5 } });
      });

      it('keeps the consumer, provider and model groupings as sums over the APIs', async () => {
        const store = await fresh();
        await seedApis(store);
        const q = { bucket: 'day', from: T0, to: T0 + 1 } as const;
        expect(summary(await store.usage({ ...q, groupBy: 'consumer' }))).toEqual([
          ['alice', D0, 4, 1, 170, 30, 1],
          ['bob', D0, 2, 0, 16, 16, 0],
        ]);
        expect(summary(await store.usage({ ...q, groupBy: 'model', api: 'chat_completions' }))).toEqual([['openai/gpt-4o', D0, 2, 0, 100, 0, 0]]);
        expect(await store.usage({ ...q, groupBy: 'provider', api: 'embeddings' })).toEqual([]);
      });

      it('groups by the whole bucket key: consumer, provider, model and API', async () => {
        const store = await fresh();
        await seedApis(store);
        const points = await store.usage({ groupBy: 'key', bucket: 'hour', from: T0, to: T0 + HOUR_MS, consumer: 'alice' });
        expect(points.map((p) => [p.group, p.key])).toEqual([
          ['["alice","openai","gpt-4o","chat_completions"]', { consumer: 'alice', provider: 'openai', model: 'gpt-4o', api: 'chat_completions' }],
          ['["alice","openai","gpt-4o","responses"]', { consumer: 'alice', provider: 'openai', model: 'gpt-4o', api: 'responses' }],
        ]);
        expect((await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0, to: T0 + HOUR_MS }))[0]?.key).toBeUndefined();
      });

      it('counts a retried batch with an API split once, buckets included', async () => {
        const store = await fresh();
        const b = batch(splitDelta('alice', 'openai', 'gpt-4o', T0, [part('chat_completions', { requests: 3 }), part('embeddings')]));
        await store.apply(b);
        await Promise.all([store.apply(b), store.apply(b)]);
        expect(summary(await store.usage({ groupBy: 'api', bucket: 'hour', from: T0, to: T0 + HOUR_MS }))).toEqual([
          ['chat_completions', T0, 3, 0, 0, 0, 0],
          ['embeddings', T0, 1, 0, 0, 0, 0],
        ]);
        expect((await store.inventory({})).items[0]).toMatchObject({ requests: 4, lastApi: 'chat_completions' });
      });

      it('adds up to the inventory exactly while every bucket is within retention', async () => {
        const store = await fresh();
        await seedApis(store);
        await seedFour(store);
        const points = await store.usage({ groupBy: 'key', bucket: 'day', from: T0 - DAY_MS, to: T0 + DAY_MS });
        const records = (await store.inventory({ limit: 1000 })).items;
        const total = <T>(items: T[], f: (x: T) => number): number => items.reduce((n, x) => n + f(x), 0);
        expect(total(points, (p) => p.requests)).toBe(total(records, (r) => r.requests));
        expect(total(points, (p) => p.costMicroUsd)).toBe(total(records, (r) => r.costMicroUsd));
        expect(total(points, (p) => p.unpricedRequests)).toBe(total(records, (r) => r.unpricedRequests));
        expect(total(points, (p) => p.errors)).toBe(total(records, (r) => Object.values(r.errors).reduce((a, b) => a + b, 0)));
        for (const source of ['reported', 'estimated'] as const) {
          for (const c of ['input', 'cached_input', 'cache_write', 'output', 'reasoning'] as const) {
            expect(total(points, (p) => p[source][c]), `${source}.${c}`).toBe(total(records, (r) => r[source][c]));
          }
        }
      });
    });

    it('returns copies: changing a result does not change the store', async () => {
      const store = await fresh();
      await seedFour(store);
      const [r] = (await store.inventory({ consumer: 'bob' })).items;
      r!.requests = 1_000;
      r!.reported.input = 1_000;
      r!.responseModels.push('x');
      const [c] = (await store.consumers({ limit: 1 })).items;
      c!.errors.aborted = 1_000;
      expect((await store.inventory({ consumer: 'bob' })).items[0]).toMatchObject({ requests: 7, reported: { input: 0 }, responseModels: [] });
      expect((await store.consumers({ limit: 1 })).items[0]?.errors.aborted).toBe(0);
    });

    it('answers ping', async () => {
      const store = await fresh();
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
