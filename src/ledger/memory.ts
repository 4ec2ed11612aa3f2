/**
 * The budget ledger in memory (one process): the reference semantics of BudgetLedger, which the
 * Redis ledger (redis.ts, ../store/lua/ledger-*.lua) reproduces in Lua; both follow the rules in
 * rules.ts. Every method runs to completion synchronously, so each decision is atomic
 * without locks.
 */
import type { BudgetLedger, CounterWindow, ItemState, ReserveRequest, ReserveResult, SettleRequest, WouldBlockCount } from '../governance/ledger.js';
import {
  counterExpiry,
  parseWouldBlock,
  rollingBuckets,
  settledCounterExpiry,
  SETTLE_GRACE_MS,
  sortWouldBlock,
  validateReserve,
  validateSettle,
  WOULD_BLOCK_RETENTION_MS,
  wouldBlockField,
  wouldBlockHours,
} from './rules.js';
import { HOUR_MS } from '../time.js';

interface Lease {
  amount: number;
  expiresAt: number;
}

interface Counter {
  /** Calendar counters: settled usage. */
  used: number;
  /** Rolling counters: settled usage per sub-bucket start. */
  buckets: Map<number, number> | null;
  rollingMs: number;
  leases: Map<string, Lease>;
  expiresAt: number;
}

export interface MemoryLedgerOptions {
  /** Epoch ms (default Date.now): settle, release and read time; reserve uses the request's nowMs. */
  now?: () => number;
  wouldBlockRetentionMs?: number;
}

/** Drops expired data at most this often (store clock). */
const SWEEP_INTERVAL_MS = 60_000;

export class MemoryLedger implements BudgetLedger {
  private readonly now: () => number;
  private readonly retentionMs: number;
  private readonly counters = new Map<string, Counter>();
  /** requestId -> the counters it holds leases on, until the lease (plus grace) ends. */
  private readonly records = new Map<string, { counters: string[]; expiresAt: number }>();
  /** requestId -> when its "finalised" marker is forgotten. */
  private readonly finalised = new Map<string, number>();
  /** hour start -> would-block field -> count. */
  private readonly blocked = new Map<number, Map<string, number>>();
  private nextSweep = 0;

  constructor(opts: MemoryLedgerOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.retentionMs = opts.wouldBlockRetentionMs ?? WOULD_BLOCK_RETENTION_MS;
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    validateReserve(req);
    const now = req.nowMs;
    this.sweep(now);
    const record = this.records.get(req.requestId);
    if (record && record.expiresAt > now) {
      // A retried reserve of a request that already holds its leases: reserve nothing twice.
      return { admitted: true, items: req.items.map((i) => this.state(i.counter, i.max, 0, now)) };
    }
    const before = req.items.map((i) => this.state(i.counter, i.max, i.amount, now));
    const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
    req.items.forEach((item, i) => {
      if (before[i]!.exceeded) this.countWouldBlock(hour, wouldBlockField(item.budgetId, req.consumer));
    });
    if (req.items.some((item, i) => item.enforce && before[i]!.exceeded)) return { admitted: false, items: before };
    const expiresAt = now + req.leaseMs;
    for (const item of req.items) {
      const c = this.counter(item.counter, item.rollingMs);
      c.leases.set(req.requestId, { amount: item.amount, expiresAt });
      c.expiresAt = Math.max(c.expiresAt, counterExpiry(item, now, req.leaseMs));
    }
    this.records.set(req.requestId, { counters: req.items.map((i) => i.counter), expiresAt: expiresAt + SETTLE_GRACE_MS });
    return { admitted: true, items: before.map((s, i) => ({ ...s, reserved: s.reserved + req.items[i]!.amount })) };
  }

  async settle(req: SettleRequest): Promise<void> {
    validateSettle(req);
    this.finalise(req.requestId, req.actual, req.windows);
  }

  async release(requestId: string): Promise<void> {
    this.finalise(requestId, null);
  }

  async wouldBlock(fromMs: number, toMs: number): Promise<WouldBlockCount[]> {
    const now = this.now();
    this.sweep(now);
    const out: WouldBlockCount[] = [];
    for (const hour of wouldBlockHours(fromMs, toMs, now, this.retentionMs)) {
      const counts = this.blocked.get(hour);
      if (counts) out.push(...parseWouldBlock(hour, Object.fromEntries(counts)));
    }
    return sortWouldBlock(out);
  }

  async read(counters: { counter: string; max: number; rollingMs?: number }[]): Promise<ItemState[]> {
    const now = this.now();
    return counters.map((c) => this.state(c.counter, c.max, 0, now));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  /** Settle (actual amounts) or release (null): once per request id. */
  private finalise(requestId: string, actual: Record<string, number> | null, windows?: Record<string, CounterWindow>): void {
    const now = this.now();
    this.sweep(now);
    const until = this.finalised.get(requestId);
    if (until !== undefined && until > now) return;
    this.finalised.set(requestId, now + SETTLE_GRACE_MS);
    const record = this.records.get(requestId);
    this.records.delete(requestId);
    const names = new Set([...(record?.counters ?? []), ...Object.keys(actual ?? {})]);
    for (const name of names) {
      const amount = actual?.[name] ?? 0;
      const c = this.live(name, now) ?? (amount > 0 ? this.created(name, windows?.[name], now) : undefined);
      if (!c) continue;
      c.leases.delete(requestId);
      if (amount === 0) continue;
      if (c.buckets) {
        const { current, subMs } = rollingBuckets(c.rollingMs, now);
        c.buckets.set(current, (c.buckets.get(current) ?? 0) + amount);
        c.expiresAt = Math.max(c.expiresAt, now + c.rollingMs + subMs);
      } else {
        c.used += amount;
      }
    }
  }

  /** A counter's state at `now` (expired leases dropped) and whether `amount` more would not fit. */
  private state(name: string, max: number, amount: number, now: number): ItemState {
    const c = this.live(name, now);
    const used = c ? this.usedOf(c, now) : 0;
    let reserved = 0;
    for (const lease of c?.leases.values() ?? []) reserved += lease.amount;
    return { counter: name, used, reserved, max, exceeded: used + reserved + amount > max };
  }

  /** Settled usage; for a rolling counter, of the sub-buckets that still count (older ones are dropped). */
  private usedOf(c: Counter, now: number): number {
    if (!c.buckets) return c.used;
    const { oldest } = rollingBuckets(c.rollingMs, now);
    let used = 0;
    for (const [start, n] of c.buckets) {
      if (start >= oldest) used += n;
      else c.buckets.delete(start);
    }
    return used;
  }

  /** The counter if it has not expired, with its expired leases dropped. */
  private live(name: string, now: number): Counter | undefined {
    const c = this.counters.get(name);
    if (!c) return undefined;
    if (c.expiresAt <= now) {
      this.counters.delete(name);
      return undefined;
    }
    for (const [id, lease] of c.leases) if (lease.expiresAt <= now) c.leases.delete(id);
    return c;
  }

  private counter(name: string, rollingMs: number | undefined): Counter {
    let c = this.counters.get(name);
    if (!c) {
      c = { used: 0, buckets: rollingMs === undefined ? null : new Map(), rollingMs: rollingMs ?? 0, leases: new Map(), expiresAt: 0 };
      this.counters.set(name, c);
    }
    return c;
  }

  /** A counter a settle creates, if its window lasts (settledCounterExpiry). */
  private created(name: string, window: CounterWindow | undefined, now: number): Counter | undefined {
    if (!window) return undefined;
    const expiresAt = settledCounterExpiry(window, now);
    if (expiresAt === null) return undefined;
    const c = this.counter(name, window.rollingMs);
    c.expiresAt = expiresAt;
    return c;
  }

  private countWouldBlock(hour: number, field: string): void {
    let counts = this.blocked.get(hour);
    if (!counts) this.blocked.set(hour, (counts = new Map()));
    counts.set(field, (counts.get(field) ?? 0) + 1);
  }

  /** Forgets expired counters, lease records, finalised markers and would-block hours. */
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + SWEEP_INTERVAL_MS;
    for (const [name, c] of this.counters) if (c.expiresAt <= now) this.counters.delete(name);
    for (const [id, r] of this.records) if (r.expiresAt <= now) this.records.delete(id);
    for (const [id, until] of this.finalised) if (until <= now) this.finalised.delete(id);
    for (const hour of this.blocked.keys()) if (hour + HOUR_MS + this.retentionMs <= now) this.blocked.delete(hour);
  }
}
