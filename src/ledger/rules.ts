/**
 * The rules both budget ledgers follow (the memory ledger in TypeScript, the Redis ledger in Lua
 * with the arguments these compute):
 * - Calendar counters live until their window end + COUNTER_GRACE_MS (and at least as long as a lease
 *   taken on them plus SETTLE_GRACE_MS, so a late settle still finds them); no reset job.
 * - Rolling counters (`rollingMs`) keep sub-buckets of rollingMs / ROLLING_SUB_BUCKETS (rounded up;
 *   governance/windows.ts). `used` is the sum of the sub-buckets that overlap the last rollingMs, so
 *   it counts everything settled in the last rollingMs plus at most one older sub-bucket: a rolling
 *   limit errs towards refusing, never towards overshoot. A settle adds into the sub-bucket of the
 *   settle time.
 * - Leases expire at decision time + leaseMs on the callers' clocks (keep them in sync with NTP).
 * - A request is finalised once: the first settle or release wins, later ones change nothing for
 *   SETTLE_GRACE_MS. A settle whose lease already expired still adds its actual usage, to every
 *   counter that still exists; given the counters' windows it creates those that do not while their
 *   window lasts (a request admitted without a reservation still counts).
 */
import type { CounterWindow, LedgerItem, ReserveRequest, SettleRequest, WouldBlockCount } from '../governance/ledger.js';
import { rollingBucket } from '../governance/windows.js';
import { DAY_MS, HOUR_MS } from '../time.js';

/** Calendar counters outlive their window by this much (admin API reads of the previous window). */
export const COUNTER_GRACE_MS = DAY_MS;
/** How long a finalised request is remembered (redelivered final chunks), and lease records outlive their lease. */
export const SETTLE_GRACE_MS = 15 * 60_000;
/** Default retention of would-block counts. */
export const WOULD_BLOCK_RETENTION_MS = 31 * DAY_MS;

/** The sub-buckets of a rolling counter at `nowMs`: the current one, and the oldest that still counts. */
export function rollingBuckets(rollingMs: number, nowMs: number): { subMs: number; current: number; oldest: number } {
  const b = rollingBucket(rollingMs, nowMs);
  return { subMs: b.sizeMs, current: b.start, oldest: b.firstCounted * b.sizeMs };
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
