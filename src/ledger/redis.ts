/**
 * The budget ledger on Redis (standalone, Sentinel or Cluster), shared by every sidecar. Key layout
 * and scripts: script.ts and ../store/lua/ledger-*.lua; semantics: memory.ts; rules: rules.ts.
 *
 * - reserve is one EVALSHA (ioredis falls back to EVAL on NOSCRIPT): the check and the reservation
 *   over every counter of a decision are atomic. Settlements and releases wait FIRST_SEND_MS to go
 *   out together, one FINALISE_LUA call for many requests (each still applied once, atomically).
 * - read is one script too (it drops expired leases on the way); wouldBlock is one pipeline.
 * - While Redis is unreachable every call rejects at once (no offline queue): admission applies the
 *   budget's on_store_error policy.
 * - Settlements and releases outlive their call (a finalised request is remembered, so sending one
 *   again changes nothing twice): one that fails is retried in the background, with backoff, for
 *   RETRY_FINALISE_MS; one that succeeds is sent once more RESEND_FINALISE_MS later, because Redis
 *   replicates asynchronously and a failover can lose what the old master acknowledged (README
 *   "Redis failover and resharding"). The caller still sees the first attempt's outcome. What is
 *   due goes out together, up to FINALISE_BATCH per REFINALISE_LUA call: about one call per tick
 *   instead of one per request.
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
} from './rules.js';
import {
  decodeReserve,
  encodeFinalise,
  encodeReserve,
  FINALISE_LUA,
  LedgerKeys,
  READ_LUA,
  REFINALISE_LUA,
  RESERVE_LUA,
} from './script.js';
import { execAll, LazyConnection } from '../store/redis-client.js';

export interface RedisLedgerOptions {
  redis: RedisConfig;
  /** Epoch ms (default Date.now): settle, release and read time; reserve uses the request's nowMs. */
  now?: () => number;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
  wouldBlockRetentionMs?: number;
  /** Background sending of settlements and releases (tests shorten it; 0 turns the second send off). */
  resendFinaliseMs?: number;
  retryFinaliseMs?: number;
  /** The number of settlements and releases waiting for (or in) a retry or their second send, when it changes. */
  onPending?: (count: number) => void;
  /** A settlement or release that never reached Redis is given up (retries over, or the buffer full). */
  onLost?: () => void;
}

/** A successful settlement or release is sent once more this long after (see the header). */
export const RESEND_FINALISE_MS = 5_000;
/** A failed one is retried in the background for this long. */
export const RETRY_FINALISE_MS = 60_000;
/** Settlements and releases held for a retry or a second send; beyond it the oldest are let go. */
const MAX_PENDING_FINALISE = 100_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;

type Client = Redis | Cluster;
type ScriptClient = Client & {
  tokenwardenBudgetReserve(key: string, ...args: string[]): Promise<number[]>;
  tokenwardenBudgetFinalise(key: string, ...args: string[]): Promise<number[]>;
  tokenwardenBudgetRefinalise(key: string, ...args: string[]): Promise<number[]>;
  tokenwardenBudgetRead(key: string, ...args: string[]): Promise<number[]>;
};

/** A settlement or release, while it waits to be sent (first, again or retried). */
interface Finalise {
  /** Its part of a FINALISE_LUA call (encodeFinalise). */
  part: string[];
  /** Date.now() when the current phase (retrying after the first attempt, or the second send) began. */
  since: number;
  /** When to send it next (Date.now()). */
  due: number;
  /** Consecutive failures so far. */
  failures: number;
  /** It succeeded once: the next success is the last send. */
  confirming: boolean;
}

/**
 * A settlement's or release's first send waits this long for others to go out with it, in one
 * script call: nothing waits for it (the answer to Envoy has gone), and a call per exchange costs
 * the sidecar a command, a write and a reply to read. Keep it well under ledger_timeout_ms.
 */
const FIRST_SEND_MS = 2;
/** How often the background sends look for what is due. */
const TICK_MS = 100;
/**
 * Requests per script call. A second send stops at its first command; a first send or a retry does
 * the whole settlement (about 20 commands per counter), so this bounds how long one call holds
 * Redis (~2 ms).
 */
const FINALISE_BATCH = 100;

export class RedisLedger implements BudgetLedger {
  private readonly conn: LazyConnection;
  private readonly keys: LedgerKeys;
  private readonly now: () => number;
  private readonly retentionMs: number;
  private readonly resendMs: number;
  private readonly retryMs: number;
  private readonly onPending: (count: number) => void;
  private readonly onLost: () => void;
  /** Settlements and releases to send again, in no particular order. */
  private readonly pending = new Set<Finalise>();
  /** Taken from `pending` and being sent again: still outstanding until Redis answers. */
  private sendingAgain = 0;
  private timer: NodeJS.Timeout | null = null;
  /** First sends waiting for FIRST_SEND_MS, each with the caller's outcome. */
  private firstSends: { f: Finalise; done: (failure: unknown) => void }[] = [];
  private firstTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: RedisLedgerOptions) {
    this.keys = new LedgerKeys(opts.redis.key_prefix);
    this.now = opts.now ?? Date.now;
    this.retentionMs = opts.wouldBlockRetentionMs ?? WOULD_BLOCK_RETENTION_MS;
    this.resendMs = opts.resendFinaliseMs ?? RESEND_FINALISE_MS;
    this.retryMs = opts.retryFinaliseMs ?? RETRY_FINALISE_MS;
    this.onPending = opts.onPending ?? (() => {});
    this.onLost = opts.onLost ?? (() => {});
    this.conn = new LazyConnection(opts.redis, opts.client);
    this.conn.client.defineCommand('tokenwardenBudgetReserve', { numberOfKeys: 1, lua: RESERVE_LUA });
    this.conn.client.defineCommand('tokenwardenBudgetFinalise', { numberOfKeys: 1, lua: FINALISE_LUA });
    this.conn.client.defineCommand('tokenwardenBudgetRefinalise', { numberOfKeys: 1, lua: REFINALISE_LUA });
    this.conn.client.defineCommand('tokenwardenBudgetRead', { numberOfKeys: 1, lua: READ_LUA });
  }

  /** Settlements and releases waiting for (or in) a retry or their second send (for tests and metrics). */
  get pendingFinalise(): number {
    return this.pending.size + this.sendingAgain;
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
    await this.finalise(encodeFinalise(req.requestId, req, this.now()));
  }

  async release(requestId: string): Promise<void> {
    await this.finalise(encodeFinalise(requestId, null, this.now()));
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

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
    // First sends already accepted still go out, before the connection closes.
    await this.sendFirst();
    return this.conn.close();
  }

  private async connected(): Promise<ScriptClient> {
    return (await this.conn.ready()) as ScriptClient;
  }

  /** The first send, whose outcome the caller gets; then the retries or the second send, in the background. */
  private finalise(part: string[]): Promise<void> {
    const f: Finalise = { part, since: Date.now(), due: 0, failures: 0, confirming: false };
    return new Promise((resolve, reject) => {
      this.firstSends.push({ f, done: (failure) => (failure === null ? resolve() : reject(failure)) });
      if (this.firstSends.length >= FINALISE_BATCH || this.closed) void this.sendFirst();
      else this.firstTimer ??= setTimeout(() => void this.sendFirst(), FIRST_SEND_MS);
    });
  }

  private async sendFirst(): Promise<void> {
    if (this.firstTimer) clearTimeout(this.firstTimer);
    this.firstTimer = null;
    const batch = this.firstSends;
    if (batch.length === 0) return;
    this.firstSends = [];
    await this.send('first', batch.map((b) => b.f)).then((failure) => {
      for (const b of batch) {
        this.after(b.f, failure === null);
        b.done(failure);
      }
      this.onPending(this.pendingFinalise);
    });
  }

  /** Decides what comes after a send of `f`: nothing, a retry with backoff, or the second send (the caller reports the count). */
  private after(f: Finalise, ok: boolean): void {
    if (this.closed) return;
    const now = Date.now();
    if (ok) {
      if (f.confirming || this.resendMs === 0) return;
      f.confirming = true;
      f.failures = 0;
      f.since = now;
      f.due = now + this.resendMs;
    } else {
      f.failures += 1;
      if (now - f.since >= this.retryMs) {
        if (!f.confirming) this.onLost();
        return;
      }
      f.due = now + Math.min(RETRY_MIN_MS * 2 ** (f.failures - 1), RETRY_MAX_MS);
    }
    if (this.pending.size >= MAX_PENDING_FINALISE) {
      // Let the oldest go (a Set iterates in insertion order): its retry or its second send is lost.
      const oldest = this.pending.values().next().value;
      if (oldest) {
        this.pending.delete(oldest);
        if (!oldest.confirming) this.onLost();
      }
    }
    this.pending.add(f);
    if (!this.timer) {
      this.timer = setTimeout(() => this.sendDue(), TICK_MS);
      this.timer.unref();
    }
  }

  /** Sends what is due again, FINALISE_BATCH per script call: one call per tick at most rates. */
  private sendDue(): void {
    this.timer = null;
    const now = Date.now();
    let batch: Finalise[] = [];
    for (const f of this.pending) {
      if (f.due > now) continue;
      this.pending.delete(f);
      batch.push(f);
      if (batch.length === FINALISE_BATCH) {
        this.again(batch);
        batch = [];
      }
    }
    if (batch.length > 0) this.again(batch);
    if (this.pending.size > 0 && !this.closed) {
      this.timer = setTimeout(() => this.sendDue(), TICK_MS);
      this.timer.unref();
    }
  }

  private again(batch: Finalise[]): void {
    this.sendingAgain += batch.length;
    void this.send('again', batch).then((failure) => {
      this.sendingAgain -= batch.length;
      for (const f of batch) this.after(f, failure === null);
      this.onPending(this.pendingFinalise);
    });
  }

  /** One script call for the batch; resolves with the failure, or null. */
  private async send(kind: 'first' | 'again', batch: Finalise[]): Promise<unknown> {
    const args = [this.keys.base];
    for (const f of batch) args.push(...f.part);
    // KEYS[1] only routes the call to the ledger's slot: any of its keys does.
    const key = this.keys.request(batch[0]!.part[0]!);
    try {
      const client = await this.connected();
      await (kind === 'first' ? client.tokenwardenBudgetFinalise(key, ...args) : client.tokenwardenBudgetRefinalise(key, ...args));
      return null;
    } catch (err) {
      return err ?? new Error('budget ledger call failed');
    }
  }
}
