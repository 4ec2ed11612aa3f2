/**
 * The budget ledger in memory (one process): the reference semantics of BudgetLedger, which the
 * Redis ledger (ledger-redis.ts, ledger-script.ts) reproduces in Lua. Every method runs to completion
 * synchronously, so each decision is atomic without locks.
 *
 * Shared rules (both ledgers):
 * - Calendar counters live until their window end + COUNTER_GRACE_MS (and at least as long as a lease
 *   taken on them plus SETTLE_GRACE_MS, so a late settle still finds them); no reset job.
 * - Rolling counters (`rollingMs`) keep sub-buckets of rollingMs / ROLLING_SUB_BUCKETS (rounded up).
 *   `used` is the sum of the sub-buckets that overlap the last rollingMs, so it counts everything
 *   settled in the last rollingMs plus at most one older sub-bucket: a rolling limit errs towards
 *   refusing, never towards overshoot. A settle adds into the sub-bucket of the settle time.
 * - Leases expire at decision time + leaseMs on the callers' clocks (keep them in sync with NTP).
 * - A request is finalised once: the first settle or release wins, later ones change nothing for
 *   SETTLE_GRACE_MS. A settle whose lease already expired still adds its actual usage, to every
 *   counter that still exists; given the counters' windows it creates those that do not while their
 *   window lasts (a request admitted without a reservation still counts).
 */
import type { BudgetLedger, CounterWindow, ItemState, LedgerItem, ReserveRequest, ReserveResult, SettleRequest, WouldBlockCount } from '../governance/ledger.js';
import { DAY_MS, HOUR_MS } from './types.js';

export const ROLLING_SUB_BUCKETS = 6;
/** Calendar counters outlive their window by this much (admin API reads of the previous window). */
export const COUNTER_GRACE_MS = DAY_MS;
/** How long a finalised request is remembered (redelivered final chunks), and lease records outlive their lease. */
export const SETTLE_GRACE_MS = 15 * 60_000;
/** Default retention of would-block counts. */
export const WOULD_BLOCK_RETENTION_MS = 31 * DAY_MS;

/** The sub-buckets of a rolling counter at `nowMs`: the current one, and the oldest that still counts. */
export function rollingBuckets(rollingMs: number, nowMs: number): { subMs: number; current: number; oldest: number } {
  const subMs = Math.max(1, Math.ceil(rollingMs / ROLLING_SUB_BUCKETS));
  const floor = (t: number): number => t - (((t % subMs) + subMs) % subMs);
  return { subMs, current: floor(nowMs), oldest: floor(nowMs - rollingMs) };
}

/** When a counter touched by a reservation may disappear. */
export function counterExpiry(item: LedgerItem, nowMs: number, leaseMs: number): number {
  const afterLease = nowMs + leaseMs + SETTLE_GRACE_MS;
  if (item.rollingMs !== undefined) return afterLease + item.rollingMs;
  return Math.max(afterLease, (item.windowEndMs ?? nowMs) + COUNTER_GRACE_MS);
}

/**
 * When a counter created by a settle (its request reserved nothing on it) expires, or null when its
 * window is over and the usage no longer counts anywhere.
 */
export function settledCounterExpiry(window: CounterWindow, nowMs: number): number | null {
  if (window.rollingMs !== undefined) return nowMs + window.rollingMs + rollingBuckets(window.rollingMs, nowMs).subMs;
  if (window.windowEndMs === undefined) return null;
  const expiry = window.windowEndMs + COUNTER_GRACE_MS;
  return expiry > nowMs ? expiry : null;
}

/** Rejects what would corrupt counters (fractions, negative amounts, one counter twice in a decision). */
export function validateReserve(req: ReserveRequest): void {
  if (!Number.isSafeInteger(req.leaseMs) || req.leaseMs <= 0) throw new Error(`leaseMs must be a positive integer, got ${req.leaseMs}`);
  const seen = new Set<string>();
  for (const item of req.items) {
    if (seen.has(item.counter)) throw new Error(`counter ${JSON.stringify(item.counter)} appears twice in one reservation`);
    seen.add(item.counter);
    if (!Number.isSafeInteger(item.amount) || item.amount < 0) throw new Error(`amount must be a non-negative integer, got ${item.amount}`);
    if (!Number.isSafeInteger(item.max)) throw new Error(`max must be an integer, got ${item.max}`);
    if (item.rollingMs !== undefined && (!Number.isSafeInteger(item.rollingMs) || item.rollingMs <= 0)) {
      throw new Error(`rollingMs must be a positive integer, got ${item.rollingMs}`);
    }
  }
}

export function validateSettle(req: SettleRequest): void {
  for (const [counter, n] of Object.entries(req.actual)) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`actual amount of ${JSON.stringify(counter)} must be a non-negative integer, got ${n}`);
  }
}

/** The hours whose would-block counts fall in [fromMs, toMs), limited to what is retained. */
export function wouldBlockHours(fromMs: number, toMs: number, nowMs: number, retentionMs: number): number[] {
  // An hour's counts are kept until the hour ended `retentionMs` ago.
  const oldestKept = Math.floor((nowMs - retentionMs - HOUR_MS) / HOUR_MS) * HOUR_MS + HOUR_MS;
  const first = Math.max(Math.ceil(fromMs / HOUR_MS) * HOUR_MS, oldestKept);
  const last = Math.min(toMs, nowMs + HOUR_MS);
  const hours: number[] = [];
  for (let h = first; h < last; h += HOUR_MS) hours.push(h);
  return hours;
}

/** Would-block events are counted per (budget, consumer); JSON keeps any character in either safe. */
export const wouldBlockField = (budgetId: string, consumer: string): string => JSON.stringify([budgetId, consumer]);

export function parseWouldBlock(hourStart: number, counts: Record<string, string | number>): WouldBlockCount[] {
  return Object.entries(counts).map(([field, n]) => {
    const [budgetId, consumer] = JSON.parse(field) as [string, string];
    return { budgetId, consumer, hourStart, count: Number(n) };
  });
}

export function sortWouldBlock(counts: WouldBlockCount[]): WouldBlockCount[] {
  return counts.sort((a, b) => a.hourStart - b.hourStart || a.budgetId.localeCompare(b.budgetId) || a.consumer.localeCompare(b.consumer));
}

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
