/**
 * The shared inventory store on Redis (standalone, Sentinel or Cluster), used by every sidecar and
 * discovery gateway. A shard's keys and the batch script: redis-script.ts; shards and hash tags:
 * redis-layout.ts.
 *
 * The inventory is split into `inventory_shards` shards, each under its own hash tag (so a Cluster
 * spreads them over its masters), a consumer's data in one of them. Reads go to every shard ever
 * used (their number is kept in Redis, raised before a store first writes to more shards) and merge
 * what they find: a record, rollup or bucket may have parts in several shards (a provider/model
 * rollup has one per shard its consumers are in; a record may, after a change of the shard count or
 * an upgrade from one shard), and the parts add up: counters add, firstSeen and lastSeen take the
 * min and max, response models and distinct counts take the union.
 *
 * - apply() is one EVALSHA per shard that has deltas, sent together (ioredis falls back to EVAL on
 *   NOSCRIPT). Each shard applies its part atomically and remembers the batch id, so a batch that
 *   failed in some shards and is retried with its id (the Recorder does) completes without counting
 *   any part twice.
 * - Reads start with one GET (the shard count); then they are pipelined per shard, shards in parallel.
 * - inventory() reads, in every shard, the ids of ONE lastSeen index (the consumer's records when
 *   filtered by consumer, the provider/model's when filtered by both, else every record), from
 *   lastSeenFrom on (with one shard, up to lastSeenTo too); ids carry the key, so key filters cost no
 *   reads. Sorted by lastSeen with no other filter, only the page's records are read; otherwise every
 *   candidate record is read (in chunks) and filtered, sorted and paged in Node. With several shards
 *   and lastSeenFrom, one ZMSCORE per shard and 500 records read also finds their parts last seen
 *   before it. So a query costs at most one read per record part of the chosen index.
 * - consumers() and models() read one page of the index with one shard; with several, every shard's
 *   whole index (names and lastSeen), then the page's rollup parts and, for a name with several
 *   parts, their record ids (for the distinct counts).
 * - usage() reads, in every shard, the bucket ids of the retained hours in range and then only the
 *   matching buckets (ids carry the key and the API, so filters cost no reads).
 * - Commands time out after command_timeout_ms and fail at once while Redis is unreachable (no
 *   offline queue): the Recorder retries, and batches are idempotent.
 */
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import { execAll, LazyConnection } from '../store/redis-client.js';
import { inventoryShardBase, inventoryShardCountKey, inventoryShards, MAX_INVENTORY_SHARDS, shardOf } from '../store/redis-layout.js';
import { APPLY_BATCH_LUA, decodeBucket, decodeRecord, decodeRollup, encodeBatch, RedisKeys } from './redis-script.js';
import { addCounters, applyDelta, emptyRollup, modelId, newRecord, parseBucketId, parseModelId, parseRecordId, recordId } from './rollup.js';
import {
  byLastSeenDesc,
  matchesBucket,
  matchesKey,
  orderedByLastSeenOnly,
  pageOf,
  pageWindow,
  queryInventory,
  usageHours,
  usagePoints,
  type BucketEntry,
} from './query.js';
import type {
  ConsumerSummary,
  InventoryBatch,
  InventoryDelta,
  InventoryKey,
  InventoryQuery,
  InventoryRecord,
  InventoryStore,
  ModelSummary,
  Page,
  Rollup,
  UsageKey,
  UsagePoint,
  UsageQuery,
} from './types.js';
import { loadLua } from '../store/lua.js';

export interface RedisStoreOptions {
  redis: RedisConfig;
  retentionHours: number;
  /** Epoch ms (default Date.now): decides which hourly buckets are within retention. */
  now?: () => number;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
}

type Client = Redis | Cluster;
type ScriptClient = Client & {
  tokenwardenApplyBatch(key: string, ...args: string[]): Promise<number>;
  tokenwardenRaiseInventoryShards(key: string, count: string): Promise<number>;
};
type Hash = Record<string, string>;

const RAISE_SHARDS_LUA = loadLua('inventory-raise-shards');

/** Commands per pipelined round trip when reading many keys; also record ids per ZMSCORE. */
const CHUNK = 500;

/** A name found in the shards' indexes (a record id, a consumer, a model id). */
interface Found<K> {
  id: string;
  key: K;
  /** Its latest lastSeen over the shards. */
  lastSeen: number;
  /** The shards (indexes into the shard list) that hold a part of it, ascending. */
  parts: number[];
}

export class RedisStore implements InventoryStore {
  private readonly conn: LazyConnection;
  private readonly prefix: string;
  private readonly shardCount: number;
  private readonly countKey: string;
  /** Shard keys by shard, built as far as needed (each tag is searched for once). */
  private readonly shardKeys: RedisKeys[] = [];
  private registered: Promise<void> | null = null;
  private readonly now: () => number;
  private readonly retentionHours: number;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.redis.key_prefix;
    this.countKey = inventoryShardCountKey(this.prefix);
    this.shardCount = inventoryShards(opts.redis);
    this.now = opts.now ?? Date.now;
    this.retentionHours = opts.retentionHours;
    this.conn = new LazyConnection(opts.redis, opts.client);
    this.conn.client.defineCommand('tokenwardenApplyBatch', { numberOfKeys: 1, lua: APPLY_BATCH_LUA });
    this.conn.client.defineCommand('tokenwardenRaiseInventoryShards', { numberOfKeys: 1, lua: RAISE_SHARDS_LUA });
  }

  async apply(batch: InventoryBatch): Promise<void> {
    const client = await this.connected();
    await this.register(client);
    const parts = new Map<number, InventoryDelta[]>();
    for (const d of batch.deltas) {
      const shard = shardOf(d.key.consumer, this.shardCount);
      const part = parts.get(shard);
      if (part) part.push(d);
      else parts.set(shard, [d]);
    }
    const now = this.now();
    const results = await Promise.allSettled(
      [...parts].map(([shard, deltas]) => {
        const { key, args } = encodeBatch(this.shard(shard), { id: batch.id, deltas }, now, this.retentionHours);
        return client.tokenwardenApplyBatch(key, ...args);
      }),
    );
    // Rejects only once every part has settled: a retry never overlaps a part still in flight.
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async inventory(query: InventoryQuery): Promise<Page<InventoryRecord>> {
    const client = await this.connected();
    const shards = await this.shards(client);
    // With several shards, a record last seen after lastSeenTo in one shard is too recent, however old its other parts.
    const to = shards.length === 1 ? (query.lastSeenTo ?? '+inf') : '+inf';
    const lists = await Promise.all(shards.map((s) => client.zrangebyscore(indexFor(s, query), query.lastSeenFrom ?? '-inf', to, 'WITHSCORES')));
    const candidates = merge(lists, parseRecordId)
      .filter((c) => matchesKey(c.key, query) && (query.lastSeenTo === undefined || c.lastSeen <= query.lastSeenTo))
      .sort(byLastSeenDesc);
    if (orderedByLastSeenOnly(query)) {
      // Already in the requested order (ties by id, as in a sorted set): read only the page.
      if (query.order === 'asc') candidates.reverse();
      const page = pageOf(candidates, query);
      await this.locateOlderParts(client, shards, page.items, query.lastSeenFrom);
      return { items: await this.readRecords(client, shards, page.items, true), total: page.total };
    }
    await this.locateOlderParts(client, shards, candidates, query.lastSeenFrom);
    const page = queryInventory(await this.readRecords(client, shards, candidates, false), query);
    const byId = new Map(candidates.map((c) => [c.id, c]));
    const found = page.items.map((r) => byId.get(recordId(r.key))!);
    const models = await readParts(client, shards, found, (p, k, c) => p.smembers(k.responseModels(c.id)), 1);
    page.items.forEach((r, i) => (r.responseModels = [...new Set(models[i]!.flatMap(([m]) => m as string[]))].sort()));
    return page;
  }

  async consumers(query: { offset?: number; limit?: number }): Promise<Page<ConsumerSummary>> {
    const client = await this.connected();
    const shards = await this.shards(client);
    const page = await this.rollupPage(client, shards, (k) => k.consumerIndex, query);
    const rollups = await readRollups(client, shards, page.items, (k, c) => k.consumer(c), (k, c) => k.consumerRecords(c));
    return { items: page.items.map((e, i) => ({ consumer: e.id, ...rollups[i]!.rollup, models: rollups[i]!.members })), total: page.total };
  }

  async models(query: { offset?: number; limit?: number }): Promise<Page<ModelSummary>> {
    const client = await this.connected();
    const shards = await this.shards(client);
    const page = await this.rollupPage(client, shards, (k) => k.modelIndex, query);
    const rollups = await readRollups(client, shards, page.items, (k, m) => k.model(m), (k, m) => k.modelRecords(m));
    return { items: page.items.map((e, i) => ({ ...parseModelId(e.id), ...rollups[i]!.rollup, consumers: rollups[i]!.members })), total: page.total };
  }

  async usage(query: UsageQuery): Promise<UsagePoint[]> {
    const client = await this.connected();
    const hours = usageHours(query, this.now(), this.retentionHours);
    if (hours.from >= hours.to) return [];
    const shards = await this.shards(client);
    // usagePoints adds up the parts of a bucket that several shards hold.
    const entries = await Promise.all(shards.map((s) => bucketEntries(client, s, query, hours)));
    return usagePoints(entries.flat(), query, hours);
  }

  async ping(): Promise<void> {
    const client = await this.connected();
    await client.ping();
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  private async connected(): Promise<ScriptClient> {
    return (await this.conn.ready()) as ScriptClient;
  }

  private shard(i: number): RedisKeys {
    for (let n = this.shardKeys.length; n <= i; n++) this.shardKeys.push(new RedisKeys(inventoryShardBase(this.prefix, n)));
    return this.shardKeys[i]!;
  }

  /** Every shard that may hold data: this store's and any that a store with more shards wrote to. */
  private async shards(client: Client): Promise<RedisKeys[]> {
    const used = Math.min(MAX_INVENTORY_SHARDS, Number(await client.get(this.countKey)) || 1);
    return Array.from({ length: Math.max(this.shardCount, used) }, (_, i) => this.shard(i));
  }

  /** Before a store first writes beyond shard 0, the shard count in Redis covers its shards. */
  private register(client: ScriptClient): Promise<void> {
    if (this.shardCount === 1) return Promise.resolve();
    this.registered ??= client.tokenwardenRaiseInventoryShards(this.countKey, String(this.shardCount)).then(
      () => undefined,
      (err: unknown) => {
        this.registered = null;
        throw err;
      },
    );
    return this.registered;
  }

  /**
   * A record's parts last seen before lastSeenFrom are not in the index ranges read: with several
   * shards, asks each shard (ZMSCORE on its record index) which of the candidates it holds.
   */
  private async locateOlderParts(client: Client, shards: RedisKeys[], candidates: Found<InventoryKey>[], lastSeenFrom: number | undefined): Promise<void> {
    if (lastSeenFrom === undefined || shards.length === 1 || candidates.length === 0) return;
    await Promise.all(
      shards.map(async (keys, shard) => {
        const missing = candidates.filter((c) => !c.parts.includes(shard));
        const groups: Found<InventoryKey>[][] = [];
        for (let i = 0; i < missing.length; i += CHUNK) groups.push(missing.slice(i, i + CHUNK));
        const scores = await chunked(client, groups, (p, group) => p.zmscore(keys.recordIndex, ...group.map((c) => c.id)));
        groups.forEach((group, g) => group.forEach((c, i) => (scores[g] as (string | null)[])[i] !== null && c.parts.push(shard)));
      }),
    );
    for (const c of candidates) c.parts.sort((a, b) => a - b);
  }

  /** The records, each merged over its parts (with their response models if asked). */
  private async readRecords(client: Client, shards: RedisKeys[], found: Found<InventoryKey>[], withModels: boolean): Promise<InventoryRecord[]> {
    const parts = await readParts(
      client,
      shards,
      found,
      (p, k, c) => {
        p.hgetall(k.record(c.id));
        if (withModels) p.smembers(k.responseModels(c.id));
      },
      withModels ? 2 : 1,
    );
    const records: InventoryRecord[] = [];
    found.forEach((c, i) => {
      const present = parts[i]!.filter(([hash]) => Object.keys(hash as Hash).length > 0);
      if (present.length === 0) return;
      const record = newRecord(c.key);
      for (const [hash, models] of present) applyDelta(record, decodeRecord(c.key, hash as Hash, (models as string[] | undefined) ?? []));
      records.push(record);
    });
    return records;
  }

  /** A page of rollup names, most recently seen first (ties by name, descending). */
  private async rollupPage(client: Client, shards: RedisKeys[], index: (k: RedisKeys) => string, query: { offset?: number; limit?: number }): Promise<Page<Found<string>>> {
    const { offset, limit } = pageWindow(query);
    if (shards.length > 1) {
      const lists = await Promise.all(shards.map((s) => client.zrange(index(s), '0', '-1', 'WITHSCORES')));
      const all = merge(lists, (id) => id).sort(byLastSeenDesc);
      return { items: all.slice(offset, offset + limit), total: all.length };
    }
    const only = index(shards[0]!);
    if (limit === 0) return { items: [], total: await client.zcard(only) };
    const [total, page] = await execAll(client.pipeline().zcard(only).zrevrange(only, offset, offset + limit - 1, 'WITHSCORES'));
    return { items: merge([page as string[]], (id) => id), total: total as number };
  }
}

function indexFor(keys: RedisKeys, q: InventoryQuery): string {
  if (q.consumer !== undefined) return keys.consumerRecords(q.consumer);
  if (q.provider !== undefined && q.model !== undefined) return keys.modelRecords(modelId(q.provider, q.model));
  return keys.recordIndex;
}

/** Merges the shards' index replies (member, score, ...): each name once, with its latest score and its shards. */
function merge<K>(lists: string[][], parse: (id: string) => K): Found<K>[] {
  const byId = new Map<string, Found<K>>();
  lists.forEach((flat, shard) => {
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i]!;
      const lastSeen = Number(flat[i + 1]);
      const found = byId.get(id);
      if (!found) byId.set(id, { id, key: parse(id), lastSeen, parts: [shard] });
      else {
        found.lastSeen = Math.max(found.lastSeen, lastSeen);
        found.parts.push(shard);
      }
    }
  });
  return [...byId.values()];
}

/**
 * Queues `add` (`per` commands) for each part of each entry, per shard, the shards in parallel (a
 * Cluster pipeline must stay on one node). Returns each entry's parts' replies, in shard order.
 */
async function readParts<T extends { parts: number[] }>(
  client: Client,
  shards: RedisKeys[],
  entries: readonly T[],
  add: (p: ChainableCommander, keys: RedisKeys, entry: T) => unknown,
  per: number,
): Promise<unknown[][][]> {
  const out = entries.map((e) => e.parts.map((): unknown[] => []));
  await Promise.all(
    shards.map(async (keys, shard) => {
      const held = entries.flatMap((e, i) => (e.parts.includes(shard) ? [i] : []));
      if (held.length === 0) return;
      const replies = await chunked(client, held, (p, i) => add(p, keys, entries[i]!), per);
      held.forEach((i, j) => (out[i]![entries[i]!.parts.indexOf(shard)] = replies.slice(per * j, per * j + per)));
    }),
  );
  return out;
}

/** Each entry's rollup summed over its parts, and its distinct members (record ids) over them. */
async function readRollups(
  client: Client,
  shards: RedisKeys[],
  entries: readonly Found<string>[],
  hash: (k: RedisKeys, name: string) => string,
  members: (k: RedisKeys, name: string) => string,
): Promise<{ rollup: Rollup; members: number }[]> {
  const parts = await readParts(
    client,
    shards,
    entries,
    (p, k, e) => {
      p.hgetall(hash(k, e.id));
      // One part: its ZCARD is the distinct count; several: the union of their members is.
      if (e.parts.length === 1) p.zcard(members(k, e.id));
      else p.zrange(members(k, e.id), '0', '-1');
    },
    2,
  );
  return parts.map((replies) => {
    const rollup = emptyRollup();
    const ids = new Set<string>();
    let count = 0;
    for (const [h, m] of replies) {
      addCounters(rollup, decodeRollup(h as Hash));
      if (typeof m === 'number') count = m;
      else for (const id of m as string[]) ids.add(id);
    }
    return { rollup, members: count + ids.size };
  });
}

/** One shard's buckets in the retained hours of the range that match the query. */
async function bucketEntries(client: Client, keys: RedisKeys, query: UsageQuery, hours: { from: number; to: number }): Promise<BucketEntry[]> {
  const hourList = (await client.zrangebyscore(keys.hours, hours.from, `(${hours.to}`)).map(Number);
  const members = await chunked(client, hourList, (p, h) => p.smembers(keys.hourRecords(h)));
  const wanted: { hour: number; id: string; key: UsageKey }[] = [];
  hourList.forEach((hour, i) => {
    for (const id of members[i] as string[]) {
      const key = parseBucketId(id);
      if (matchesBucket(key, query)) wanted.push({ hour, id, key });
    }
  });
  const buckets = await chunked(client, wanted, (p, w) => p.hgetall(keys.bucket(w.hour, w.id)));
  const entries: BucketEntry[] = [];
  wanted.forEach((w, i) => {
    const hash = buckets[i] as Hash;
    // A bucket that expired between the two reads is gone.
    if (Object.keys(hash).length > 0) entries.push({ hour: w.hour, key: w.key, counts: decodeBucket(hash) });
  });
  return entries;
}

/** Queues `add(item)` (which queues `per` commands) for every item, CHUNK commands per round trip. */
async function chunked<T>(client: Client, items: readonly T[], add: (p: ChainableCommander, item: T) => unknown, per = 1): Promise<unknown[]> {
  const replies: unknown[] = [];
  const step = Math.max(1, Math.floor(CHUNK / per));
  for (let i = 0; i < items.length; i += step) {
    const pipeline = client.pipeline();
    for (const item of items.slice(i, i + step)) add(pipeline, item);
    replies.push(...(await execAll(pipeline)));
  }
  return replies;
}
