/**
 * The budget ledger on Redis (standalone, Sentinel or Cluster), shared by every sidecar. Key layout
 * and scripts: ledger-script.ts; semantics: ledger-memory.ts.
 *
 * - reserve, settle and release are one EVALSHA each (ioredis falls back to EVAL on NOSCRIPT): the
 *   check and the reservation over every counter of a decision are atomic.
 * - read is one script too (it drops expired leases on the way); wouldBlock is one pipeline.
 * - While Redis is unreachable every call rejects at once (no offline queue): admission applies the
 *   budget's on_store_error policy.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { BudgetLedger, ItemState, ReserveRequest, ReserveResult, SettleRequest, WouldBlockCount } from '../governance/ledger.js';
import {
  parseWouldBlock,
  sortWouldBlock,
  validateReserve,
  validateSettle,
  WOULD_BLOCK_RETENTION_MS,
  wouldBlockHours,
} from './ledger-memory.js';
import { decodeReserve, encodeFinalise, encodeReserve, FINALISE_LUA, LedgerKeys, READ_LUA, RESERVE_LUA } from './ledger-script.js';
import { execAll, LazyConnection } from './redis-client.js';

export interface RedisLedgerOptions {
  redis: RedisConfig;
  /** Epoch ms (default Date.now): settle, release and read time; reserve uses the request's nowMs. */
  now?: () => number;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
  wouldBlockRetentionMs?: number;
}

type Client = Redis | Cluster;
type ScriptClient = Client & {
  tokenwardenBudgetReserve(key: string, ...args: string[]): Promise<number[]>;
  tokenwardenBudgetFinalise(key: string, ...args: string[]): Promise<number>;
  tokenwardenBudgetRead(key: string, ...args: string[]): Promise<number[]>;
};

export class RedisLedger implements BudgetLedger {
  private readonly conn: LazyConnection;
  private readonly keys: LedgerKeys;
  private readonly now: () => number;
  private readonly retentionMs: number;

  constructor(opts: RedisLedgerOptions) {
    this.keys = new LedgerKeys(opts.redis.key_prefix);
    this.now = opts.now ?? Date.now;
    this.retentionMs = opts.wouldBlockRetentionMs ?? WOULD_BLOCK_RETENTION_MS;
    this.conn = new LazyConnection(opts.redis, opts.client);
    this.conn.client.defineCommand('tokenwardenBudgetReserve', { numberOfKeys: 1, lua: RESERVE_LUA });
    this.conn.client.defineCommand('tokenwardenBudgetFinalise', { numberOfKeys: 1, lua: FINALISE_LUA });
    this.conn.client.defineCommand('tokenwardenBudgetRead', { numberOfKeys: 1, lua: READ_LUA });
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    validateReserve(req);
    if (req.items.length === 0) return { admitted: true, items: [] };
    const client = await this.connected();
    const { key, args } = encodeReserve(this.keys, req, this.retentionMs);
    return decodeReserve(req, await client.tokenwardenBudgetReserve(key, ...args));
  }

  async settle(req: SettleRequest): Promise<void> {
    validateSettle(req);
    const client = await this.connected();
    const { key, args } = encodeFinalise(this.keys, req.requestId, req.actual, this.now());
    await client.tokenwardenBudgetFinalise(key, ...args);
  }

  async release(requestId: string): Promise<void> {
    const client = await this.connected();
    const { key, args } = encodeFinalise(this.keys, requestId, null, this.now());
    await client.tokenwardenBudgetFinalise(key, ...args);
  }

  async wouldBlock(fromMs: number, toMs: number): Promise<WouldBlockCount[]> {
    const hours = wouldBlockHours(fromMs, toMs, this.now(), this.retentionMs);
    if (hours.length === 0) return [];
    const client = await this.connected();
    const pipeline = client.pipeline();
    for (const hour of hours) pipeline.hgetall(this.keys.wouldBlock(hour));
    const replies = (await execAll(pipeline)) as Record<string, string>[];
    return sortWouldBlock(hours.flatMap((hour, i) => parseWouldBlock(hour, replies[i]!)));
  }

  async read(counters: { counter: string; max: number; rollingMs?: number }[]): Promise<ItemState[]> {
    if (counters.length === 0) return [];
    const client = await this.connected();
    const names = counters.map((c) => c.counter);
    const reply = await client.tokenwardenBudgetRead(this.keys.counter(names[0]!), this.keys.base, String(this.now()), ...names);
    return counters.map((c, i) => {
      const used = reply[2 * i]!;
      const reserved = reply[2 * i + 1]!;
      return { counter: c.counter, used, reserved, max: c.max, exceeded: used + reserved > c.max };
    });
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
}

