/** Record and rollup arithmetic and identities shared by both InventoryStore implementations. */
import { emptyErrors, emptyTokens, type ApiCounts, type BucketCounts, type ErrorCounts, type InventoryDelta, type InventoryKey, type InventoryRecord, type Rollup, type TokenCounts, type UsageKey } from './types.js';
import { HOUR_MS } from '../time.js';

export const TOKEN_CLASSES = ['input', 'cached_input', 'cache_write', 'output', 'reasoning'] as const satisfies readonly (keyof TokenCounts)[];
export const ERROR_KINDS = ['upstream_4xx', 'upstream_5xx', 'bad_input', 'truncated', 'aborted'] as const satisfies readonly (keyof ErrorCounts)[];

/** A record's identity; JSON keeps every character of the three parts unambiguous (also a Redis key suffix). */
export function recordId(key: InventoryKey): string {
  return JSON.stringify([key.consumer, key.provider, key.model]);
}

export function parseRecordId(id: string): InventoryKey {
  const [consumer, provider, model] = JSON.parse(id) as [string, string, string];
  return { consumer, provider, model };
}

/**
 * An hourly bucket's identity within its hour: the record id's parts plus the API (JSON, like
 * recordId). A 3-part id (buckets written before buckets had an API) parses with api "".
 */
export function bucketId(key: UsageKey): string {
  return JSON.stringify([key.consumer, key.provider, key.model, key.api]);
}

export function parseBucketId(id: string): UsageKey {
  const [consumer, provider, model, api] = JSON.parse(id) as [string, string, string, string?];
  return { consumer, provider, model, api: api ?? '' };
}

/** A provider/model pair's identity (JSON for the same reason as recordId). */
export function modelId(provider: string, model: string): string {
  return JSON.stringify([provider, model]);
}

export function parseModelId(id: string): { provider: string; model: string } {
  const [provider, model] = JSON.parse(id) as [string, string];
  return { provider, model };
}

/** Start of the UTC bucket (hour or day) containing `t`. */
export function alignDown(t: number, size: number): number {
  return Math.floor(t / size) * size;
}

/** A delta is bucketed by the hour of its latest exchange (the Recorder flushes every second or so). */
export function deltaHour(delta: InventoryDelta): number {
  return alignDown(delta.lastSeen, HOUR_MS);
}

export function emptyRollup(): Rollup {
  return {
    firstSeen: Number.POSITIVE_INFINITY,
    lastSeen: Number.NEGATIVE_INFINITY,
    requests: 0,
    errors: emptyErrors(),
    reported: emptyTokens(),
    estimated: emptyTokens(),
    costMicroUsd: 0,
    unpricedRequests: 0,
  };
}

/** Adds (sign 1) or removes (sign -1) the counters of `d`; adding also widens the seen span. */
export function addCounters(target: Rollup, d: Rollup, sign: 1 | -1 = 1): void {
  target.requests += sign * d.requests;
  target.costMicroUsd += sign * d.costMicroUsd;
  target.unpricedRequests += sign * d.unpricedRequests;
  for (const k of ERROR_KINDS) target.errors[k] += sign * d.errors[k];
  for (const c of TOKEN_CLASSES) {
    target.reported[c] += sign * d.reported[c];
    target.estimated[c] += sign * d.estimated[c];
  }
  if (sign === 1) {
    target.firstSeen = Math.min(target.firstSeen, d.firstSeen);
    target.lastSeen = Math.max(target.lastSeen, d.lastSeen);
  }
}

export function newRecord(key: InventoryKey): InventoryRecord {
  return { key: { ...key }, ...emptyRollup(), lastApi: '', responseModels: [], consumerResolver: null };
}

/** Merges a delta into a record. The latest exchange (on a tie, the delta) sets lastApi and consumerResolver. */
export function applyDelta(record: InventoryRecord, delta: InventoryDelta): void {
  const latest = delta.lastSeen >= record.lastSeen;
  addCounters(record, delta);
  if (latest) {
    record.lastApi = delta.lastApi;
    record.consumerResolver = delta.consumerResolver;
  }
  let added = false;
  for (const m of delta.responseModels) {
    if (!record.responseModels.includes(m)) {
      record.responseModels.push(m);
      added = true;
    }
  }
  if (added) record.responseModels.sort();
}

/** Input plus output, reported and estimated (cache and reasoning tokens are already inside them). */
export function totalTokens(r: Rollup): number {
  return r.reported.input + r.reported.output + r.estimated.input + r.estimated.output;
}

export function totalErrors(e: ErrorCounts): number {
  let sum = 0;
  for (const k of ERROR_KINDS) sum += e[k];
  return sum;
}

export function cloneRollup<T extends Rollup>(r: T): T {
  return { ...r, errors: { ...r.errors }, reported: { ...r.reported }, estimated: { ...r.estimated } };
}

export function cloneRecord(r: InventoryRecord): InventoryRecord {
  return { ...cloneRollup(r), key: { ...r.key }, responseModels: [...r.responseModels] };
}

export function emptyBucket(): BucketCounts {
  return { requests: 0, errors: 0, reported: emptyTokens(), estimated: emptyTokens(), costMicroUsd: 0, estimatedCostMicroUsd: 0, unpricedRequests: 0 };
}

function hasTokens(t: TokenCounts): boolean {
  return TOKEN_CLASSES.some((c) => t[c] !== 0);
}

/** Adds the counters of `from` to `into`. */
export function addBucket(into: BucketCounts, from: BucketCounts): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.costMicroUsd += from.costMicroUsd;
  into.estimatedCostMicroUsd += from.estimatedCostMicroUsd;
  into.unpricedRequests += from.unpricedRequests;
  for (const c of TOKEN_CLASSES) {
    into.reported[c] += from.reported[c];
    into.estimated[c] += from.estimated[c];
  }
}

/** A delta's counters by API: its own split, else all of it under lastApi (see InventoryDelta.byApi). */
export function apiParts(d: InventoryDelta): ApiCounts[] {
  if (d.byApi) return d.byApi;
  const onlyEstimated = hasTokens(d.estimated) && !hasTokens(d.reported);
  return [
    {
      api: d.lastApi,
      requests: d.requests,
      errors: totalErrors(d.errors),
      reported: { ...d.reported },
      estimated: { ...d.estimated },
      costMicroUsd: d.costMicroUsd,
      estimatedCostMicroUsd: onlyEstimated ? d.costMicroUsd : 0,
      unpricedRequests: d.unpricedRequests,
    },
  ];
}
