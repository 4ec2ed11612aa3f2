/**
 * The shared inventory store on Redis (standalone, Sentinel or Cluster), used by every sidecar and
 * discovery gateway. Key layout and the batch script: redis-script.ts.
 *
 * - apply() is one round trip: EVALSHA of the batch script (ioredis falls back to EVAL on NOSCRIPT).
 * - Reads are pipelined. inventory() reads the ids of ONE lastSeen index (the consumer's records when
 *   filtered by consumer, the provider/model's when filtered by both, else every record), already
 *   narrowed to the lastSeen range; ids carry the key, so key filters cost no reads. Sorted by
 *   lastSeen with no other filter, only the page's records are read; otherwise every candidate record
 *   is read (in chunks) and filtered, sorted and paged in Node. So a query costs at most one read per
 *   record of the chosen index.
 * - usage() reads the bucket ids of the retained hours in range and then only the matching buckets
 *   (ids carry the key and the API, so filters cost no reads).
 * - Commands time out after command_timeout_ms and fail at once while Redis is unreachable (no
 *   offline queue): the Recorder retries, and batches are idempotent.
 */
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import { execAll, LazyConnection } from './redis-client.js';
import { APPLY_BATCH_LUA, decodeBucket, decodeRecord, decodeRollup, encodeBatch, RedisKeys } from './redis-script.js';
import { modelId, parseBucketId, parseModelId, parseRecordId, recordId } from './rollup.js';
import {
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
  InventoryKey,
  InventoryQuery,
  InventoryRecord,
  InventoryStore,
  ModelSummary,
  Page,
  UsageKey,
  UsagePoint,
  UsageQuery,
} from './types.js';

export interface RedisStoreOptions {
  redis: RedisConfig;
  retentionHours: number;
  /** Epoch ms (default Date.now): decides which hourly buckets are within retention. */
  now?: () => number;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
}

type Client = Redis | Cluster;
type ScriptClient = Client & { tokenwardenApplyBatch(key: string, ...args: string[]): Promise<number> };
type Hash = Record<string, string>;

/** Commands per pipelined round trip when reading many keys. */
const CHUNK = 500;

interface Candidate {
  id: string;
  key: InventoryKey;
}

export class RedisStore implements InventoryStore {
  private readonly conn: LazyConnection;
  private readonly keys: RedisKeys;
  private readonly now: () => number;
  private readonly retentionHours: number;

  constructor(opts: RedisStoreOptions) {
    this.keys = new RedisKeys(opts.redis.key_prefix);
    this.now = opts.now ?? Date.now;
    this.retentionHours = opts.retentionHours;
    this.conn = new LazyConnection(opts.redis, opts.client);
    this.conn.client.defineCommand('tokenwardenApplyBatch', { numberOfKeys: 1, lua: APPLY_BATCH_LUA });
  }

  async apply(batch: InventoryBatch): Promise<void> {
    const client = (await this.connected()) as ScriptClient;
    const { key, args } = encodeBatch(this.keys, batch, this.now(), this.retentionHours);
    await client.tokenwardenApplyBatch(key, ...args);
  }

  async inventory(query: InventoryQuery): Promise<Page<InventoryRecord>> {
    const client = await this.connected();
    const ids = await client.zrangebyscore(this.indexFor(query), query.lastSeenFrom ?? '-inf', query.lastSeenTo ?? '+inf');
    const candidates = ids.map((id) => ({ id, key: parseRecordId(id) })).filter((c) => matchesKey(c.key, query));
    if (orderedByLastSeenOnly(query)) {
      // The index is already in the requested order (ascending; ties by id): read only the page.
      if ((query.order ?? 'desc') === 'desc') candidates.reverse();
      const page = pageOf(candidates, query);
      return { items: await this.readRecords(client, page.items, true), total: page.total };
    }
    const page = queryInventory(await this.readRecords(client, candidates, false), query);
    const models = await chunked(client, page.items, (p, r) => p.smembers(this.keys.responseModels(recordId(r.key))));
    page.items.forEach((r, i) => (r.responseModels = (models[i] as string[]).sort()));
    return page;
  }

  async consumers(query: { offset?: number; limit?: number }): Promise<Page<ConsumerSummary>> {
    const client = await this.connected();
    const { names, total } = await this.rollupPage(client, this.keys.consumerIndex, query);
    const replies = await chunked(client, names, (p, c) => p.hgetall(this.keys.consumer(c)).zcard(this.keys.consumerRecords(c)), 2);
    const items = names.map((consumer, i) => ({ consumer, ...decodeRollup(replies[2 * i] as Hash), models: replies[2 * i + 1] as number }));
    return { items, total };
  }

  async models(query: { offset?: number; limit?: number }): Promise<Page<ModelSummary>> {
    const client = await this.connected();
    const { names, total } = await this.rollupPage(client, this.keys.modelIndex, query);
    const replies = await chunked(client, names, (p, m) => p.hgetall(this.keys.model(m)).zcard(this.keys.modelRecords(m)), 2);
    const items = names.map((m, i) => ({ ...parseModelId(m), ...decodeRollup(replies[2 * i] as Hash), consumers: replies[2 * i + 1] as number }));
    return { items, total };
  }

  async usage(query: UsageQuery): Promise<UsagePoint[]> {
    const client = await this.connected();
    const hours = usageHours(query, this.now(), this.retentionHours);
    if (hours.from >= hours.to) return [];
    const hourList = (await client.zrangebyscore(this.keys.hours, hours.from, `(${hours.to}`)).map(Number);
    const members = await chunked(client, hourList, (p, h) => p.smembers(this.keys.hourRecords(h)));
    const wanted: { hour: number; id: string; key: UsageKey }[] = [];
    hourList.forEach((hour, i) => {
      for (const id of members[i] as string[]) {
        const key = parseBucketId(id);
        if (matchesBucket(key, query)) wanted.push({ hour, id, key });
      }
    });
    const buckets = await chunked(client, wanted, (p, w) => p.hgetall(this.keys.bucket(w.hour, w.id)));
    const entries: BucketEntry[] = [];
    wanted.forEach((w, i) => {
      const hash = buckets[i] as Hash;
      // A bucket that expired between the two reads is gone.
      if (Object.keys(hash).length > 0) entries.push({ hour: w.hour, key: w.key, counts: decodeBucket(hash) });
    });
    return usagePoints(entries, query, hours);
  }

  async ping(): Promise<void> {
    const client = await this.connected();
    await client.ping();
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  private async connected(): Promise<Client> {
    return (await this.conn.ready()) as Client;
  }

  private indexFor(q: InventoryQuery): string {
    if (q.consumer !== undefined) return this.keys.consumerRecords(q.consumer);
    if (q.provider !== undefined && q.model !== undefined) return this.keys.modelRecords(modelId(q.provider, q.model));
    return this.keys.recordIndex;
  }

  private async readRecords(client: Client, candidates: Candidate[], withModels: boolean): Promise<InventoryRecord[]> {
    const per = withModels ? 2 : 1;
    const replies = await chunked(
      client,
      candidates,
      (p, c) => {
        p.hgetall(this.keys.record(c.id));
        if (withModels) p.smembers(this.keys.responseModels(c.id));
      },
      per,
    );
    const records: InventoryRecord[] = [];
    candidates.forEach((c, i) => {
      const hash = replies[per * i] as Hash;
      if (Object.keys(hash).length === 0) return;
      records.push(decodeRecord(c.key, hash, withModels ? (replies[per * i + 1] as string[]) : []));
    });
    return records;
  }

  /** A page of an index, most recently seen first (ties by member, descending). */
  private async rollupPage(client: Client, index: string, query: { offset?: number; limit?: number }): Promise<{ names: string[]; total: number }> {
    const { offset, limit } = pageWindow(query);
    if (limit === 0) return { names: [], total: await client.zcard(index) };
    const [total, names] = await execAll(client.pipeline().zcard(index).zrevrange(index, offset, offset + limit - 1));
    return { names: names as string[], total: total as number };
  }
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
