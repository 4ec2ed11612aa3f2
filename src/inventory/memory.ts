/**
 * The embedded inventory store (one sidecar, this process only). Everything is bounded:
 * - at most `maxRecords` records; the least recently updated is evicted (counted in `evictions`);
 * - the consumer and provider/model rollups are the sums of the retained records, so they shrink with
 *   evictions and never outnumber the records;
 * - at most `maxBuckets` hourly buckets (per key, API and hour), within retention; the oldest go first;
 * - batch ids are remembered for 24 hours, at most `maxBatchIds` of them (the oldest forgotten first).
 */
import { LRUCache } from 'lru-cache';
import {
  addBucket,
  addCounters,
  apiParts,
  applyDelta,
  bucketId,
  cloneRecord,
  cloneRollup,
  deltaHour,
  emptyBucket,
  emptyRollup,
  modelId,
  newRecord,
  parseModelId,
  recordId,
} from './rollup.js';
import {
  byLastSeenDesc,
  oldestRetainedHour,
  pageOf,
  queryInventory,
  usageHours,
  usagePoints,
  type BucketEntry,
} from './query.js';
import type { ConsumerSummary, InventoryBatch, InventoryDelta, InventoryQuery, InventoryRecord, InventoryStore, ModelSummary, Page, Rollup, UsagePoint, UsageQuery } from './types.js';
import { DAY_MS } from '../time.js';

export interface MemoryStoreOptions {
  maxRecords: number;
  retentionHours: number;
  /** Epoch ms (default Date.now). */
  now?: () => number;
  /** Hourly buckets kept at most (default maxRecords). */
  maxBuckets?: number;
  /** Batch ids remembered at most (default 100 000: a day of one flush per second). */
  maxBatchIds?: number;
}

interface RollupEntry {
  rollup: Rollup;
  /** Record ids contributing to the rollup. */
  members: Set<string>;
  /** An eviction removed a member: firstSeen/lastSeen are recomputed from the members when read. */
  spanStale: boolean;
}

export class MemoryStore implements InventoryStore {
  private readonly records: LRUCache<string, InventoryRecord>;
  private readonly consumerRollups = new Map<string, RollupEntry>();
  private readonly modelRollups = new Map<string, RollupEntry>();
  /** hour -> bucket id (record id and API) -> bucket. */
  private readonly hours = new Map<number, Map<string, BucketEntry>>();
  private bucketCount = 0;
  private prunedBefore = Number.NEGATIVE_INFINITY;
  /** batch id -> applied at; insertion order is time order. */
  private readonly batchIds = new Map<string, number>();
  private evicted = 0;
  private readonly now: () => number;
  private readonly retentionHours: number;
  private readonly maxBuckets: number;
  private readonly maxBatchIds: number;

  constructor(opts: MemoryStoreOptions) {
    if (!Number.isSafeInteger(opts.maxRecords) || opts.maxRecords < 1) throw new RangeError('maxRecords must be a positive integer');
    this.now = opts.now ?? Date.now;
    this.retentionHours = opts.retentionHours;
    this.maxBuckets = opts.maxBuckets ?? opts.maxRecords;
    this.maxBatchIds = opts.maxBatchIds ?? 100_000;
    this.records = new LRUCache<string, InventoryRecord>({
      max: opts.maxRecords,
      dispose: (record, id, reason) => {
        if (reason === 'evict') this.forget(id, record);
      },
    });
  }

  /** Records evicted so far to stay within maxRecords. */
  get evictions(): number {
    return this.evicted;
  }

  async apply(batch: InventoryBatch): Promise<void> {
    const now = this.now();
    this.forgetBatchIds((at) => at <= now - DAY_MS);
    if (this.batchIds.has(batch.id)) return;
    this.forgetBatchIds(() => this.batchIds.size >= this.maxBatchIds);
    this.batchIds.set(batch.id, now);
    const oldestHour = oldestRetainedHour(now, this.retentionHours);
    this.pruneBuckets(oldestHour);
    for (const delta of batch.deltas) this.applyOne(delta, oldestHour);
  }

  async inventory(query: InventoryQuery): Promise<Page<InventoryRecord>> {
    const page = queryInventory(this.candidates(query), query);
    return { items: page.items.map(cloneRecord), total: page.total };
  }

  async consumers(query: { offset?: number; limit?: number }): Promise<Page<ConsumerSummary>> {
    const page = pageOf(this.sortedRollups(this.consumerRollups), query);
    return {
      items: page.items.map(({ id, entry }) => ({ consumer: id, ...cloneRollup(entry.rollup), models: entry.members.size })),
      total: page.total,
    };
  }

  async models(query: { offset?: number; limit?: number }): Promise<Page<ModelSummary>> {
    const page = pageOf(this.sortedRollups(this.modelRollups), query);
    return {
      items: page.items.map(({ id, entry }) => ({ ...parseModelId(id), ...cloneRollup(entry.rollup), consumers: entry.members.size })),
      total: page.total,
    };
  }

  async usage(query: UsageQuery): Promise<UsagePoint[]> {
    const hours = usageHours(query, this.now(), this.retentionHours);
    const entries: BucketEntry[] = [];
    for (const [hour, buckets] of this.hours) {
      if (hour >= hours.from && hour < hours.to) entries.push(...buckets.values());
    }
    return usagePoints(entries, query, hours);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  private applyOne(delta: InventoryDelta, oldestHour: number): void {
    const id = recordId(delta.key);
    let record = this.records.get(id);
    if (!record) {
      record = newRecord(delta.key);
      this.records.set(id, record);
    }
    applyDelta(record, delta);
    addToRollup(this.consumerRollups, delta.key.consumer, id, delta);
    addToRollup(this.modelRollups, modelId(delta.key.provider, delta.key.model), id, delta);
    const hour = deltaHour(delta);
    if (hour >= oldestHour) this.addToBucket(hour, delta);
  }

  private addToBucket(hour: number, delta: InventoryDelta): void {
    for (const part of apiParts(delta)) {
      // Looked up per part: dropping the oldest bucket may remove this hour's map.
      let buckets = this.hours.get(hour);
      if (!buckets) {
        buckets = new Map();
        this.hours.set(hour, buckets);
      }
      const key = { ...delta.key, api: part.api };
      const id = bucketId(key);
      let entry = buckets.get(id);
      if (!entry) {
        entry = { hour, key, counts: emptyBucket() };
        buckets.set(id, entry);
        this.bucketCount++;
        if (this.bucketCount > this.maxBuckets) this.dropOldestBucket();
      }
      addBucket(entry.counts, part);
    }
  }

  private dropOldestBucket(): void {
    const oldest = Math.min(...this.hours.keys());
    const buckets = this.hours.get(oldest);
    if (!buckets) return;
    const first = buckets.keys().next();
    if (!first.done) buckets.delete(first.value);
    if (buckets.size === 0) this.hours.delete(oldest);
    this.bucketCount--;
  }

  /** Drops whole hours past retention, once per hour of the clock. */
  private pruneBuckets(oldestHour: number): void {
    if (oldestHour <= this.prunedBefore) return;
    this.prunedBefore = oldestHour;
    for (const [hour, buckets] of this.hours) {
      if (hour >= oldestHour) continue;
      this.bucketCount -= buckets.size;
      this.hours.delete(hour);
    }
  }

  /** Forgets the oldest batch ids while `forget(appliedAt)` holds. */
  private forgetBatchIds(forget: (appliedAt: number) => boolean): void {
    for (const [id, at] of this.batchIds) {
      if (!forget(at)) return;
      this.batchIds.delete(id);
    }
  }

  /** An evicted record leaves its rollups; a rollup without records goes too. */
  private forget(id: string, record: InventoryRecord): void {
    this.evicted++;
    removeFromRollup(this.consumerRollups, record.key.consumer, id, record);
    removeFromRollup(this.modelRollups, modelId(record.key.provider, record.key.model), id, record);
  }

  private *candidates(query: InventoryQuery): Iterable<InventoryRecord> {
    if (query.consumer === undefined) {
      yield* this.records.values();
      return;
    }
    for (const id of this.consumerRollups.get(query.consumer)?.members ?? []) {
      const record = this.records.peek(id);
      if (record) yield record;
    }
  }

  private sortedRollups(rollups: Map<string, RollupEntry>): { id: string; lastSeen: number; entry: RollupEntry }[] {
    const rows: { id: string; lastSeen: number; entry: RollupEntry }[] = [];
    for (const [id, entry] of rollups) {
      if (entry.spanStale) this.recomputeSpan(entry);
      rows.push({ id, lastSeen: entry.rollup.lastSeen, entry });
    }
    return rows.sort(byLastSeenDesc);
  }

  private recomputeSpan(entry: RollupEntry): void {
    entry.rollup.firstSeen = Number.POSITIVE_INFINITY;
    entry.rollup.lastSeen = Number.NEGATIVE_INFINITY;
    for (const id of entry.members) {
      const record = this.records.peek(id);
      if (!record) continue;
      entry.rollup.firstSeen = Math.min(entry.rollup.firstSeen, record.firstSeen);
      entry.rollup.lastSeen = Math.max(entry.rollup.lastSeen, record.lastSeen);
    }
    entry.spanStale = false;
  }
}

function addToRollup(rollups: Map<string, RollupEntry>, name: string, id: string, delta: InventoryDelta): void {
  let entry = rollups.get(name);
  if (!entry) {
    entry = { rollup: emptyRollup(), members: new Set(), spanStale: false };
    rollups.set(name, entry);
  }
  addCounters(entry.rollup, delta);
  entry.members.add(id);
}

function removeFromRollup(rollups: Map<string, RollupEntry>, name: string, id: string, record: InventoryRecord): void {
  const entry = rollups.get(name);
  if (!entry) return;
  addCounters(entry.rollup, record, -1);
  entry.members.delete(id);
  if (entry.members.size === 0) rollups.delete(name);
  else entry.spanStale = true;
}
