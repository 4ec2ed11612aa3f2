/**
 * The inventory store contract: one implementation in memory (embedded, one sidecar) and one on
 * Redis (shared by every sidecar and discovery gateway). Both pass the same contract test suite.
 *
 * Writers never call the store per exchange: a Recorder aggregates ExchangeRecords into
 * InventoryDeltas and applies them in batches. Readers (the admin API) query aggregates.
 */

/** Token counts by class (integers). `input` includes cached input and cache writes. */
export interface TokenCounts {
  input: number;
  cached_input: number;
  cache_write: number;
  output: number;
  reasoning: number;
}

/** Errors by kind. */
export interface ErrorCounts {
  /** upstream answered 4xx */
  upstream_4xx: number;
  /** upstream answered 5xx */
  upstream_5xx: number;
  /** invalid_json, invalid_utf8, empty_body, corrupt_encoding, body_too_large */
  bad_input: number;
  /** stream_truncated */
  truncated: number;
  /** the exchange ended before its response did (cancel, reset) */
  aborted: number;
}

/** consumer × provider × model. `model` is the requested model, else the response model, else "". */
export interface InventoryKey {
  consumer: string;
  provider: string;
  model: string;
}

/**
 * Additive counters shared by deltas, records and rollups. Token classes: `input` includes cached
 * input and cache writes; `output` includes reasoning.
 */
export interface Rollup {
  /** Epoch ms of the earliest / latest exchange. */
  firstSeen: number;
  lastSeen: number;
  requests: number;
  errors: ErrorCounts;
  /** Provider-reported tokens and tokenwarden's own estimates, kept apart. */
  reported: TokenCounts;
  estimated: TokenCounts;
  /** Sum of priced exchanges' cost, integer micro-dollars. */
  costMicroUsd: number;
  /** Exchanges that had usage but no known price. */
  unpricedRequests: number;
}

/** One inventory record: the aggregate of every delta applied for its key. */
export interface InventoryRecord extends Rollup {
  key: InventoryKey;
  /** API of the latest exchange (with lastSeen as its time). */
  lastApi: string;
  /** Response models seen (distinct). */
  responseModels: string[];
  /** How the consumer was identified (header, xfcc, attribute, api_key) in the latest exchange. */
  consumerResolver: string | null;
}

/**
 * The counters of one hourly bucket: one consumer x provider x model x API in one UTC hour.
 * `estimatedCostMicroUsd` is the part of `costMicroUsd` priced from estimated usage.
 */
export interface BucketCounts {
  requests: number;
  /** Requests that ended in an error (of any kind). */
  errors: number;
  reported: TokenCounts;
  estimated: TokenCounts;
  costMicroUsd: number;
  estimatedCostMicroUsd: number;
  /** Exchanges that had usage but no known price. */
  unpricedRequests: number;
}

/** A delta's counters for one API. */
export interface ApiCounts extends BucketCounts {
  api: string;
}

/** Additive changes to one inventory record (and its rollups and hourly buckets). */
export interface InventoryDelta extends InventoryRecord {
  /**
   * The delta's counters split by API (they add up to the delta's own counters): each part goes to
   * the hourly bucket of its API. Absent (deltas made by hand), the whole delta is filed under
   * lastApi, its cost as estimated when it has only estimated tokens.
   */
  byApi?: ApiCounts[];
}

/**
 * A batch of deltas with a unique id. Applying the same batch id twice must count it once (a
 * retried flush after an ambiguous failure), for 24 hours at least; also when the first attempt
 * applied only part of it (the Redis store applies each shard's part on its own).
 */
export interface InventoryBatch {
  id: string;
  deltas: InventoryDelta[];
}

export interface ConsumerSummary extends Rollup {
  consumer: string;
  /** Distinct provider/model pairs this consumer used. */
  models: number;
}

export interface ModelSummary extends Rollup {
  provider: string;
  model: string;
  /** Distinct consumers of this provider/model. */
  consumers: number;
}

export type InventorySortField = 'lastSeen' | 'firstSeen' | 'requests' | 'costMicroUsd' | 'tokens' | 'consumer' | 'provider' | 'model';

export interface InventoryQuery {
  /** Exact match on each given field. */
  consumer?: string;
  provider?: string;
  model?: string;
  /** Epoch ms bounds (inclusive). */
  firstSeenFrom?: number;
  firstSeenTo?: number;
  lastSeenFrom?: number;
  lastSeenTo?: number;
  /** Only records with (true) or without (false) unpriced exchanges. */
  unpriced?: boolean;
  sort?: InventorySortField;
  order?: 'asc' | 'desc';
  /** Default 0 and 100; limit at most 1000. */
  offset?: number;
  limit?: number;
}

export interface Page<T> {
  items: T[];
  /** Number of matching items before pagination. */
  total: number;
}

/** `key`: consumer x provider x model x API, the hourly buckets' own identity (see UsagePoint.key). */
export type UsageGroupBy = 'consumer' | 'provider' | 'model' | 'api' | 'key';
export type UsageBucket = 'hour' | 'day';

export interface UsageQuery {
  groupBy: UsageGroupBy;
  /** Epoch ms, inclusive `from`, exclusive `to`; aligned down to the bucket. */
  from: number;
  to: number;
  bucket: UsageBucket;
  /** Optional filters applied before grouping. */
  consumer?: string;
  provider?: string;
  model?: string;
  api?: string;
}

/** What identifies an hourly bucket. `api` is "" in buckets written before buckets had an API. */
export interface UsageKey extends InventoryKey {
  api: string;
}

/**
 * One bucket of one group. `group` is the consumer, the provider, `provider/model`, the API, or
 * (groupBy `key`) the bucket id, a JSON array [consumer, provider, model, api] also given as `key`.
 */
export interface UsagePoint extends BucketCounts {
  group: string;
  /** Bucket start, epoch ms (UTC hour or UTC day). */
  bucketStart: number;
  /** Only with groupBy `key`. */
  key?: UsageKey;
}

export interface InventoryStore {
  /**
   * Applies a batch idempotently (see InventoryBatch): in memory atomically, on Redis atomically per
   * shard, so after a rejection part of it may be applied and a retry with the same id adds the rest.
   * Rejects when the store is unreachable.
   */
  apply(batch: InventoryBatch): Promise<void>;
  inventory(query: InventoryQuery): Promise<Page<InventoryRecord>>;
  consumers(query: { offset?: number; limit?: number }): Promise<Page<ConsumerSummary>>;
  models(query: { offset?: number; limit?: number }): Promise<Page<ModelSummary>>;
  /** Time series from the hourly buckets still within retention, sorted by group then bucketStart. */
  usage(query: UsageQuery): Promise<UsagePoint[]>;
  /** Resolves when the store is reachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function emptyTokens(): TokenCounts {
  return { input: 0, cached_input: 0, cache_write: 0, output: 0, reasoning: 0 };
}

export function emptyErrors(): ErrorCounts {
  return { upstream_4xx: 0, upstream_5xx: 0, bad_input: 0, truncated: 0, aborted: 0 };
}

