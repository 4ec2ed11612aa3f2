/**
 * Query semantics shared by both InventoryStore implementations: inventory filters, sort order and
 * pages; rollup order; usage time series from hourly buckets. Stores only gather candidates.
 */
import { addBucket, alignDown, bucketId, emptyBucket, recordId, totalTokens } from './rollup.js';
import type { BucketCounts, InventoryKey, InventoryQuery, InventoryRecord, InventorySortField, Page, UsageKey, UsagePoint, UsageQuery } from './types.js';
import { DAY_MS, HOUR_MS } from '../time.js';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export function pageWindow(q: { offset?: number; limit?: number }): { offset: number; limit: number } {
  const offset = Number.isFinite(q.offset) ? Math.max(0, Math.floor(q.offset as number)) : 0;
  const limit = Number.isFinite(q.limit) ? Math.min(MAX_LIMIT, Math.max(0, Math.floor(q.limit as number))) : DEFAULT_LIMIT;
  return { offset, limit };
}

export function pageOf<T>(sorted: readonly T[], q: { offset?: number; limit?: number }): Page<T> {
  const { offset, limit } = pageWindow(q);
  return { items: sorted.slice(offset, offset + limit), total: sorted.length };
}

export function matchesKey(key: InventoryKey, q: { consumer?: string; provider?: string; model?: string }): boolean {
  return (
    (q.consumer === undefined || key.consumer === q.consumer) &&
    (q.provider === undefined || key.provider === q.provider) &&
    (q.model === undefined || key.model === q.model)
  );
}

export function matchesInventory(r: InventoryRecord, q: InventoryQuery): boolean {
  return (
    matchesKey(r.key, q) &&
    (q.firstSeenFrom === undefined || r.firstSeen >= q.firstSeenFrom) &&
    (q.firstSeenTo === undefined || r.firstSeen <= q.firstSeenTo) &&
    (q.lastSeenFrom === undefined || r.lastSeen >= q.lastSeenFrom) &&
    (q.lastSeenTo === undefined || r.lastSeen <= q.lastSeenTo) &&
    (q.unpriced === undefined || r.unpricedRequests > 0 === q.unpriced)
  );
}

/** True when only the key fields and the lastSeen range filter, and the order is by lastSeen. */
export function orderedByLastSeenOnly(q: InventoryQuery): boolean {
  return (
    (q.sort ?? 'lastSeen') === 'lastSeen' &&
    q.firstSeenFrom === undefined &&
    q.firstSeenTo === undefined &&
    q.unpriced === undefined
  );
}

function sortValue(r: InventoryRecord, field: InventorySortField): number | string {
  switch (field) {
    case 'tokens':
      return totalTokens(r);
    case 'consumer':
    case 'provider':
    case 'model':
      return r.key[field];
    default:
      return r[field];
  }
}

/**
 * Filters, sorts (default lastSeen desc) and pages records. Ties are broken by record id in the same
 * direction, which is also the order of a Redis sorted set (equal scores sort by member).
 */
export function queryInventory(records: Iterable<InventoryRecord>, q: InventoryQuery): Page<InventoryRecord> {
  const field = q.sort ?? 'lastSeen';
  const dir = (q.order ?? 'desc') === 'asc' ? 1 : -1;
  const rows: { r: InventoryRecord; v: number | string; id: string }[] = [];
  for (const r of records) if (matchesInventory(r, q)) rows.push({ r, v: sortValue(r, field), id: recordId(r.key) });
  rows.sort((a, b) => dir * (compare(a.v, b.v) || compare(a.id, b.id)));
  const page = pageOf(rows, q);
  return { items: page.items.map((row) => row.r), total: page.total };
}

/** Rollups are listed most recently seen first; ties by id, descending (as ZRANGE ... REV). */
export function byLastSeenDesc<T extends { lastSeen: number; id: string }>(a: T, b: T): number {
  return b.lastSeen - a.lastSeen || compare(b.id, a.id);
}

function compare(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface BucketEntry {
  hour: number;
  key: UsageKey;
  counts: BucketCounts;
}

/** A bucket's key passes the usage query's filters (consumer, provider, model, api). */
export function matchesBucket(key: UsageKey, q: UsageQuery): boolean {
  return matchesKey(key, q) && (q.api === undefined || key.api === q.api);
}

/** The oldest hourly bucket still within retention: its hour ends after `now - retention`. */
export function oldestRetainedHour(now: number, retentionHours: number): number {
  return alignDown(now - retentionHours * HOUR_MS, HOUR_MS);
}

export function bucketSize(q: UsageQuery): number {
  return q.bucket === 'day' ? DAY_MS : HOUR_MS;
}

/**
 * The hourly buckets a usage query reads, `from <= hour < to`: every retained hour of each output
 * bucket (hour or day) that overlaps [q.from, q.to).
 */
export function usageHours(q: UsageQuery, now: number, retentionHours: number): { from: number; to: number } {
  const size = bucketSize(q);
  return {
    from: Math.max(alignDown(q.from, size), oldestRetainedHour(now, retentionHours)),
    to: alignDown(q.to - 1, size) + size,
  };
}

function groupOf(key: UsageKey, q: UsageQuery): string {
  switch (q.groupBy) {
    case 'consumer':
      return key.consumer;
    case 'provider':
      return key.provider;
    case 'api':
      return key.api;
    case 'key':
      return bucketId(key);
    default:
      return `${key.provider}/${key.model}`;
  }
}

/** Groups bucket entries into points, sorted by group then bucketStart. Entries outside `hours` are ignored. */
export function usagePoints(entries: Iterable<BucketEntry>, q: UsageQuery, hours: { from: number; to: number }): UsagePoint[] {
  const size = bucketSize(q);
  const points = new Map<string, UsagePoint>();
  for (const e of entries) {
    if (e.hour < hours.from || e.hour >= hours.to || !matchesBucket(e.key, q)) continue;
    const group = groupOf(e.key, q);
    const bucketStart = alignDown(e.hour, size);
    const id = `${group}\u0000${bucketStart}`;
    let p = points.get(id);
    if (!p) {
      p = { group, bucketStart, ...emptyBucket(), ...(q.groupBy === 'key' ? { key: { ...e.key } } : {}) };
      points.set(id, p);
    }
    addBucket(p, e.counts);
  }
  return [...points.values()].sort((a, b) => compare(a.group, b.group) || a.bucketStart - b.bucketStart);
}
