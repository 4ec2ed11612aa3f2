/**
 * Which hash tag each Redis key gets, so that a Redis Cluster spreads the data over its masters:
 * only what one script must change atomically shares a tag (README "Redis key layout").
 *
 * - `{<prefix>}`: the budget ledger (one reservation over every applicable budget is one script), the
 *   fingerprint secret, and inventory shard 0. It is the tag every key had before, so an upgrade keeps
 *   the budget counters and reads the inventory written until then as shard 0. With more than one
 *   shard nothing new is written to shard 0, so the ledger's slot (the busiest) carries no inventory.
 * - `{<prefix>:catalog}` and `{<prefix>:registry}`: each registry's definitions with its version key.
 * - Inventory shards 1..N-1: one tag each, chosen by slot (see inventoryShardBase), so any number of
 *   shards spreads evenly over the slot space and therefore over the masters.
 */
import type { RedisConfig } from '../config/types.js';

const CLUSTER_SLOTS = 16_384;
export const MAX_INVENTORY_SHARDS = 256;
/** On a Cluster: a share for each of up to 16 masters, and reads stay cheap (one pipeline per shard). */
const CLUSTER_INVENTORY_SHARDS = 16;

/** Braces in the prefix would break every hash tag. */
function checked(prefix: string): string {
  if (/[{}]/.test(prefix)) throw new Error(`redis key_prefix must not contain braces: ${JSON.stringify(prefix)}`);
  return prefix;
}

/** `{<prefix>}`: the ledger, the fingerprint secret and inventory shard 0. */
export function baseTag(prefix: string): string {
  return `{${checked(prefix)}}`;
}

/** `{<prefix>:<group>}`: a registry's own slot. */
export function groupTag(prefix: string, group: 'catalog' | 'registry'): string {
  return `{${checked(prefix)}:${group}}`;
}

/**
 * The number of inventory shards any store ever wrote to (absent: 1): raised, never lowered, before a
 * store first writes with more shards, so readers find every shard. In shard 0's slot.
 */
export function inventoryShardCountKey(prefix: string): string {
  return `${baseTag(prefix)}:inv:shards`;
}

/** The configured shard count; by default one without a Cluster, where shards would buy nothing. */
export function inventoryShards(cfg: RedisConfig): number {
  return cfg.inventory_shards ?? (cfg.cluster_nodes.length > 0 ? CLUSTER_INVENTORY_SHARDS : 1);
}

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Hash tag rule of Redis Cluster: the text between the first `{` and the next `}`, when not empty. */
export function hashTag(key: string): string | null {
  const open = key.indexOf('{');
  if (open < 0) return null;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : null;
}

/** The Cluster slot of a key (its hash tag's, when it has one), as CLUSTER KEYSLOT computes it. */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashTag(key) ?? key, 'utf8')) % CLUSTER_SLOTS;
}

/** i's bits reversed (8 of them), as a fraction: 0, 0.5, 0.25, 0.75, 0.125, ... (van der Corput). */
function radicalInverse(i: number): number {
  let r = 0;
  for (let bit = 0; bit < 8; bit++) if (i & (1 << bit)) r += 1 / (2 << bit);
  return r;
}

/**
 * The key base of inventory shard `i`: `{<prefix>}:` for shard 0, else `{<prefix>:inv:<i>:<n>}:` with
 * the smallest n whose slot falls in the i-th window of the slot space in van der Corput order. The
 * first N windows of that order are evenly spread for any N, so the shards are too, and a shard's tag
 * does not depend on N (changing the count moves no shard). About 256 CRC16s per shard, once.
 */
export function inventoryShardBase(prefix: string, i: number): string {
  if (i === 0) return `${baseTag(prefix)}:`;
  const width = CLUSTER_SLOTS / MAX_INVENTORY_SHARDS;
  const start = radicalInverse(i) * CLUSTER_SLOTS;
  // Unbounded on purpose: the counter reaches every 64-slot window within 500 tries (checked for 300 prefixes x 255 shards).
  for (let n = 0; ; n++) {
    const tag = `${prefix}:inv:${i}:${n}`;
    const slot = keySlot(tag);
    if (slot >= start && slot < start + width) return `{${tag}}:`;
  }
}

/** FNV-1a over the UTF-8 bytes with a final avalanche: a stable, well-spread hash (any process, any version). */
function stableHash(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * The inventory shard of a consumer: its records, its rollup and their hourly buckets stay together.
 * With several shards, one of 1..N-1: shard 0 shares the ledger's slot and is only read.
 */
export function shardOf(consumer: string, shards: number): number {
  return shards <= 2 ? shards - 1 : 1 + (stableHash(consumer) % (shards - 1));
}
