/**
 * The keys of one inventory shard, the Lua script that applies a batch's part in it, and the hash
 * field encoding. Which shards exist and their hash tags: redis-layout.ts; reading and merging them:
 * redis.ts.
 *
 * Every key of a shard starts with the shard's base `{<tag>}:` (one hash tag, so one Cluster slot and
 * the script may touch any of them). A consumer's deltas always go to the same shard (shardOf), so its
 * records, rollup and buckets stay together; a provider/model's rollup is split over the shards of its
 * consumers. Keys of a shard, with {t} its tag:
 *
 *   {t}:batch:<batch id>          "1", EX 86400: batch ids this shard applied in the last 24 h (idempotency)
 *   {t}:rec:<record id>           hash: the record's counters, first, last, api, resolver
 *   {t}:rm:<record id>            set: its distinct response models
 *   {t}:con:<consumer>            hash: the consumer rollup
 *   {t}:conrecs:<consumer>        zset: the consumer's record ids by lastSeen (ZCARD = distinct models)
 *   {t}:mod:<model id>            hash: the provider/model rollup (of this shard's consumers)
 *   {t}:modrecs:<model id>        zset: the provider/model's record ids by lastSeen (ZCARD = distinct consumers)
 *   {t}:idx:rec / idx:con / idx:mod   zsets by lastSeen: every record id / consumer / model id
 *   {t}:hour:<hour>:<bucket id>   hash: one record's bucket for one API in that hour, expires with retention
 *   {t}:hourrecs:<hour>           set: bucket ids with a bucket in that hour, expires with retention
 *   {t}:hours                     zset: hours that have buckets (trimmed to retention by every batch)
 *
 * Shard 0's tag is `{<prefix>}`, where every inventory key was before shards, so what was written
 * then reads as shard 0. Record, bucket and model ids are JSON arrays (see rollup.ts), computed here
 * in Node rather than in Lua. A bucket id is [consumer, provider, model, api]; buckets written before
 * buckets had an API have the record id ([consumer, provider, model]) instead and read back with api "".
 */
import { apiParts, bucketId, deltaHour, ERROR_KINDS, modelId, recordId, TOKEN_CLASSES } from './rollup.js';
import { oldestRetainedHour } from './query.js';
import type { ApiCounts, BucketCounts, InventoryBatch, InventoryDelta, InventoryKey, InventoryRecord, Rollup, TokenCounts } from './types.js';
import { HOUR_MS } from '../time.js';
import { loadLua } from '../store/lua.js';

/** How long a batch id is remembered (the contract asks for 24 hours at least). */
export const BATCH_ID_TTL_SECONDS = 86_400;

/** The keys of one shard, from its base (`{<tag>}:`, see inventoryShardBase). */
export class RedisKeys {
  constructor(readonly base: string) {}

  batch = (id: string): string => `${this.base}batch:${id}`;
  record = (recId: string): string => `${this.base}rec:${recId}`;
  responseModels = (recId: string): string => `${this.base}rm:${recId}`;
  consumer = (consumer: string): string => `${this.base}con:${consumer}`;
  consumerRecords = (consumer: string): string => `${this.base}conrecs:${consumer}`;
  model = (modId: string): string => `${this.base}mod:${modId}`;
  modelRecords = (modId: string): string => `${this.base}modrecs:${modId}`;
  get recordIndex(): string {
    return `${this.base}idx:rec`;
  }
  get consumerIndex(): string {
    return `${this.base}idx:con`;
  }
  get modelIndex(): string {
    return `${this.base}idx:mod`;
  }
  bucket = (hour: number, recId: string): string => `${this.base}hour:${hour}:${recId}`;
  hourRecords = (hour: number): string => `${this.base}hourrecs:${hour}`;
  get hours(): string {
    return `${this.base}hours`;
  }
}

export const APPLY_BATCH_LUA = loadLua('inventory-apply-batch');

/** Counters are integers by contract; rounding keeps a stray float from failing HINCRBY halfway through a script. */
function put(into: Record<string, number>, field: string, n: number): void {
  const v = Math.round(n);
  if (v !== 0) into[field] = v;
}

function putTokens(into: Record<string, number>, prefix: string, t: TokenCounts): void {
  for (const c of TOKEN_CLASSES) put(into, `${prefix}.${c}`, t[c]);
}

function recordCounters(d: InventoryDelta): Record<string, number> {
  const n: Record<string, number> = { requests: Math.round(d.requests) };
  put(n, 'cost', d.costMicroUsd);
  put(n, 'unpriced', d.unpricedRequests);
  for (const k of ERROR_KINDS) put(n, `err.${k}`, d.errors[k]);
  putTokens(n, 'rep', d.reported);
  putTokens(n, 'est', d.estimated);
  return n;
}

function bucketCounters(part: ApiCounts): Record<string, number> {
  const n: Record<string, number> = { requests: Math.round(part.requests) };
  put(n, 'errors', part.errors);
  put(n, 'cost', part.costMicroUsd);
  put(n, 'estcost', part.estimatedCostMicroUsd);
  put(n, 'unpriced', part.unpricedRequests);
  putTokens(n, 'rep', part.reported);
  putTokens(n, 'est', part.estimated);
  return n;
}

/** The delta's buckets in its hour: one per API. */
function buckets(d: InventoryDelta): { id: string; n: Record<string, number> }[] {
  return apiParts(d).map((part) => ({ id: bucketId({ ...d.key, api: part.api }), n: bucketCounters(part) }));
}

/** The script's arguments for one shard's part of a batch; buckets already past retention are left out. */
export function encodeBatch(keys: RedisKeys, batch: InventoryBatch, now: number, retentionHours: number): { key: string; args: string[] } {
  const oldestHour = oldestRetainedHour(now, retentionHours);
  const deltas = batch.deltas.map((d) => {
    const hour = deltaHour(d);
    const encoded = {
      rec: recordId(d.key),
      con: d.key.consumer,
      mod: modelId(d.key.provider, d.key.model),
      first: Math.round(d.firstSeen),
      last: Math.round(d.lastSeen),
      api: d.lastApi,
      res: d.consumerResolver ?? '',
      rm: d.responseModels,
      n: recordCounters(d),
    };
    if (hour < oldestHour) return encoded;
    // The bucket expires when its hour leaves retention on the store's clock.
    return { ...encoded, hour: String(hour), ttl: hour + HOUR_MS + retentionHours * HOUR_MS - now, b: buckets(d) };
  });
  return {
    key: keys.batch(batch.id),
    args: [keys.base, String(BATCH_ID_TTL_SECONDS), JSON.stringify(deltas), String(oldestHour)],
  };
}

function num(hash: Record<string, string>, field: string): number {
  const v = hash[field];
  return v === undefined ? 0 : Number(v);
}

function tokens(hash: Record<string, string>, prefix: string): TokenCounts {
  const t = {} as TokenCounts;
  for (const c of TOKEN_CLASSES) t[c] = num(hash, `${prefix}.${c}`);
  return t;
}

export function decodeRollup(hash: Record<string, string>): Rollup {
  const errors = {} as Rollup['errors'];
  for (const k of ERROR_KINDS) errors[k] = num(hash, `err.${k}`);
  return {
    firstSeen: num(hash, 'first'),
    lastSeen: num(hash, 'last'),
    requests: num(hash, 'requests'),
    errors,
    reported: tokens(hash, 'rep'),
    estimated: tokens(hash, 'est'),
    costMicroUsd: num(hash, 'cost'),
    unpricedRequests: num(hash, 'unpriced'),
  };
}

export function decodeRecord(key: InventoryKey, hash: Record<string, string>, responseModels: string[]): InventoryRecord {
  return {
    key,
    ...decodeRollup(hash),
    lastApi: hash.api ?? '',
    responseModels: [...responseModels].sort(),
    consumerResolver: hash.resolver ? hash.resolver : null,
  };
}

export function decodeBucket(hash: Record<string, string>): BucketCounts {
  return {
    requests: num(hash, 'requests'),
    errors: num(hash, 'errors'),
    costMicroUsd: num(hash, 'cost'),
    estimatedCostMicroUsd: num(hash, 'estcost'),
    unpricedRequests: num(hash, 'unpriced'),
    reported: tokens(hash, 'rep'),
    estimated: tokens(hash, 'est'),
  };
}
