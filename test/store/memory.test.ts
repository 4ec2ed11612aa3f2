/** The memory store: the shared contract, plus its bounds (records, buckets, batch ids). */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/inventory/memory.js';
import { HOUR_MS } from '../../src/time.js';
import { batch, delta, storeContract, T0 } from './contract.js';

storeContract('memory', async ({ now, retentionHours }) => ({
  store: new MemoryStore({ maxRecords: 10_000, retentionHours, now }),
  cleanup: async () => {},
}));

describe('MemoryStore bounds', () => {
  const consumersOf = async (store: MemoryStore): Promise<string[]> => (await store.inventory({ sort: 'consumer', order: 'asc' })).items.map((r) => r.key.consumer);

  it('evicts the least recently updated record beyond maxRecords and counts it', async () => {
    const store = new MemoryStore({ maxRecords: 3, retentionHours: 24, now: () => T0 });
    await store.apply(batch(delta('a', 'openai', 'gpt-4o', T0), delta('b', 'openai', 'gpt-4o', T0), delta('c', 'openai', 'gpt-4o', T0)));
    // Updating `a` makes `b` the least recently updated; reading `b` does not count as an update.
    await store.apply(batch(delta('a', 'openai', 'gpt-4o', T0 + 1)));
    await store.inventory({ consumer: 'b' });
    await store.apply(batch(delta('d', 'openai', 'gpt-4o', T0 + 2)));
    expect(await consumersOf(store)).toEqual(['a', 'c', 'd']);
    expect(store.evictions).toBe(1);
    await store.apply(batch(delta('e', 'openai', 'gpt-4o', T0 + 3), delta('f', 'openai', 'gpt-4o', T0 + 4)));
    expect(await consumersOf(store)).toEqual(['d', 'e', 'f']);
    expect(store.evictions).toBe(3);
  });

  it('keeps rollups equal to the sums of the retained records', async () => {
    const store = new MemoryStore({ maxRecords: 2, retentionHours: 24, now: () => T0 });
    await store.apply(batch(delta('a', 'openai', 'gpt-4o', T0 + 5, { requests: 2 }), delta('a', 'openai', 'o3', T0 + 9, { requests: 3, costMicroUsd: 40 })));
    await store.apply(batch(delta('a', 'openai', 'gpt-4o', T0 + 1)));
    // Evicts a|openai|o3 (the least recently updated), the latest record of both rollups.
    await store.apply(batch(delta('b', 'anthropic', 'claude', T0 + 7)));
    expect(await store.consumers({})).toEqual({
      total: 2,
      items: [
        expect.objectContaining({ consumer: 'b', models: 1, requests: 1 }),
        expect.objectContaining({ consumer: 'a', models: 1, requests: 3, costMicroUsd: 0, firstSeen: T0 + 1, lastSeen: T0 + 5 }),
      ],
    });
    expect((await store.models({})).items.map((m) => `${m.provider}/${m.model}`)).toEqual(['anthropic/claude', 'openai/gpt-4o']);
  });

  it('keeps at most maxBuckets hourly buckets, dropping the oldest hours', async () => {
    const store = new MemoryStore({ maxRecords: 10, maxBuckets: 2, retentionHours: 24, now: () => T0 + 3 * HOUR_MS });
    for (let h = 0; h < 3; h++) await store.apply(batch(delta('a', 'openai', 'gpt-4o', T0 + h * HOUR_MS)));
    const usage = await store.usage({ groupBy: 'consumer', bucket: 'hour', from: T0, to: T0 + 3 * HOUR_MS });
    expect(usage.map((p) => p.bucketStart)).toEqual([T0 + HOUR_MS, T0 + 2 * HOUR_MS]);
    expect((await store.inventory({})).items[0]?.requests).toBe(3);
  });

  it('remembers at most maxBatchIds batch ids, forgetting the oldest first', async () => {
    const store = new MemoryStore({ maxRecords: 10, maxBatchIds: 2, retentionHours: 24, now: () => T0 });
    const first = batch(delta('a', 'openai', 'gpt-4o', T0));
    await store.apply(first);
    await store.apply(batch());
    await store.apply(first);
    expect((await store.inventory({})).items[0]?.requests).toBe(1);
    await store.apply(batch());
    await store.apply(first);
    expect((await store.inventory({})).items[0]?.requests).toBe(2);
  });

  it('rejects a non-positive maxRecords', () => {
    expect(() => new MemoryStore({ maxRecords: 0, retentionHours: 24 })).toThrow(/maxRecords/);
  });
});
