/**
 * Budget windows: where a window starts and ends, and the counter key that names it.
 *
 * Calendar windows follow the wall clock of an IANA time zone. Days, weeks and months start at the
 * first instant whose local time is at or past the local boundary (midnight; of the 1st for a month),
 * so a day across a DST change lasts 23 or 25 hours and a midnight the clock skips starts at the
 * transition. Minutes and hours start whenever the local clock shows :00 and at offset changes, so
 * they last 60 minutes or less, never more. The window start is part of the counter key, so a new
 * window is a new counter: no reset job and no reset lag.
 *
 * Rolling windows (TPM/RPM) of length W are kept by the ledger in sub-buckets of W/6 (rounded up to
 * a whole millisecond), aligned to the epoch. A decision counts every sub-bucket that overlaps the
 * last W (the current one and 6 before it when W divides by 6), so everything spent in the last W is
 * counted (never more than the limit in any W) and a spend stops counting between W and 7W/6 after
 * it happened.
 */
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../time.js';
import type { Window } from './types.js';

export type CalendarWindow = Extract<Window, { timezone: string }>;
export type RollingWindow = Extract<Window, { kind: 'rolling' }>;

/** Half-open interval [start, end) in epoch ms. */
export interface Bounds {
  readonly start: number;
  readonly end: number;
}


// ---------------------------------------------------------------------------------------------
// Time zones

/** One formatter per zone: building an Intl.DateTimeFormat costs far more than using one. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    // Throws a RangeError for an unknown zone, so only valid zones are ever cached.
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

export function isValidTimeZone(timeZone: string): boolean {
  return canonicalTimeZone(timeZone) !== undefined;
}

/** The zone's canonical spelling (`europe/berlin` -> `Europe/Berlin`), or undefined when unknown. */
export function canonicalTimeZone(timeZone: string): string | undefined {
  if (timeZone === '') return undefined;
  try {
    return formatter(timeZone).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

const mod = (x: number, m: number): number => ((x % m) + m) % m;

/** The local wall-clock time at instant `t`, expressed as if it were a UTC instant ("naive" ms). */
function wallClock(timeZone: string, t: number): number {
  const fields = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(timeZone).formatToParts(t)) {
    if (part.type in fields) fields[part.type as keyof typeof fields] = Number(part.value);
  }
  return Date.UTC(fields.year, fields.month - 1, fields.day, fields.hour, fields.minute, fields.second) + mod(t, 1000);
}

/** UTC offset in ms at instant `t` (local = t + offset). */
function offsetAt(timeZone: string, t: number): number {
  return wallClock(timeZone, t) - t;
}

/**
 * Brackets the instant of a local time: real offsets lie within -12h..+14h and zones never change
 * offset twice within this span, so the offsets at both ends are the only candidates.
 */
const BRACKET_MS = 15 * HOUR_MS;

/** The earliest instant whose local time is at or past the naive local time `local`. */
function firstInstantAtOrAfter(timeZone: string, local: number): number {
  const before = offsetAt(timeZone, local - BRACKET_MS);
  const after = offsetAt(timeZone, local + BRACKET_MS);
  const viaBefore = local - before;
  if (before === after) return viaBefore;
  const viaAfter = local - after;
  const beforeValid = offsetAt(timeZone, viaBefore) === before;
  const afterValid = offsetAt(timeZone, viaAfter) === after;
  // Both valid: the clock went back and shows `local` twice; the window starts at the first.
  if (beforeValid && afterValid) return Math.min(viaBefore, viaAfter);
  if (beforeValid) return viaBefore;
  if (afterValid) return viaAfter;
  // Neither: `local` was skipped (clocks went forward); the first instant past it is the transition.
  return transition(timeZone, viaAfter, viaBefore);
}

/** The first instant in (lo, hi] whose offset differs from lo's (one offset change in between). */
function transition(timeZone: string, lo: number, hi: number): number {
  const old = offsetAt(timeZone, lo);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(timeZone, mid) === old) lo = mid;
    else hi = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------------------------
// Calendar windows

type DateWindow = CalendarWindow & { kind: 'day' | 'week' | 'month' };

/**
 * Minutes and hours are elapsed time: they start whenever the local clock shows :00 (so they follow
 * half-hour zones) and at offset changes, so the hour the clock repeats in autumn is two windows of
 * 60 minutes, not one local hour of 120.
 */
function clockBounds(zone: string, unitMs: number, atMs: number): Bounds {
  const offset = offsetAt(zone, atMs);
  let start = atMs - mod(atMs + offset, unitMs);
  if (offsetAt(zone, start) !== offset) start = transition(zone, start, atMs);
  const startOffset = offsetAt(zone, start);
  let end = start - mod(start + startOffset, unitMs) + unitMs;
  if (offsetAt(zone, end - 1) !== startOffset) end = transition(zone, start, end - 1);
  return { start, end };
}

/** The local date boundary at or before the naive local time `local`. */
function truncate(window: DateWindow, local: number): number {
  const day = local - mod(local, DAY_MS);
  switch (window.kind) {
    case 'day':
      return day;
    case 'week':
      return day - mod(new Date(day).getUTCDay() - window.weekStart, 7) * DAY_MS;
    case 'month': {
      const date = new Date(local);
      return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
    }
  }
}

/** The next local date boundary after the boundary `local`. */
function advance(window: DateWindow, local: number): number {
  switch (window.kind) {
    case 'day':
      return local + DAY_MS;
    case 'week':
      return local + 7 * DAY_MS;
    case 'month': {
      const date = new Date(local);
      return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
    }
  }
}

/** Days, weeks and months follow the local date: a day across a DST change lasts 23 or 25 hours. */
function dateBounds(window: DateWindow, atMs: number): Bounds {
  const zone = window.timezone;
  let local = truncate(window, wallClock(zone, atMs));
  let start = firstInstantAtOrAfter(zone, local);
  let next = advance(window, local);
  let end = firstInstantAtOrAfter(zone, next);
  // Boundaries are monotonic in local time, so these windows tile the timeline. Where the clock
  // went back across a boundary the local date can lag the tiling: step forward to the window
  // that holds atMs.
  while (end <= atMs) {
    local = next;
    start = end;
    next = advance(window, local);
    end = firstInstantAtOrAfter(zone, next);
  }
  return { start, end };
}

/** The last window computed per (kind, zone, week start): nearly every call falls inside it. */
const recent = new Map<string, Bounds>();

function calendarBounds(window: CalendarWindow, atMs: number): Bounds {
  const cacheKey = `${window.kind}|${window.timezone}|${window.weekStart}`;
  const cached = recent.get(cacheKey);
  if (cached !== undefined && cached.start <= atMs && atMs < cached.end) return cached;
  const bounds = Object.freeze(
    window.kind === 'minute' || window.kind === 'hour'
      ? clockBounds(window.timezone, window.kind === 'minute' ? MINUTE_MS : HOUR_MS, atMs)
      : dateBounds(window as DateWindow, atMs),
  );
  recent.set(cacheKey, bounds);
  return bounds;
}

// ---------------------------------------------------------------------------------------------
// Rolling windows

export const ROLLING_SUB_BUCKETS = 6;

export interface RollingBucket {
  /** Sub-bucket length in ms. */
  sizeMs: number;
  /** Index of the sub-bucket holding atMs (floor(atMs / sizeMs)); it spans [start, end). */
  index: number;
  start: number;
  end: number;
  /** Index of the oldest sub-bucket still counted: the one holding atMs - window length. */
  firstCounted: number;
  /** When the oldest counted sub-bucket stops counting: the next moment capacity comes back. */
  nextExpiry: number;
}

/** `window`: a rolling window, or its length in ms (as a ledger item carries it). */
export function rollingBucket(window: RollingWindow | number, atMs: number): RollingBucket {
  const lengthMs = typeof window === 'number' ? window : window.seconds * 1000;
  const sizeMs = Math.max(1, Math.ceil(lengthMs / ROLLING_SUB_BUCKETS));
  const index = Math.floor(atMs / sizeMs);
  const firstCounted = Math.floor((atMs - lengthMs) / sizeMs);
  return { sizeMs, index, start: index * sizeMs, end: (index + 1) * sizeMs, firstCounted, nextExpiry: (firstCounted + 1) * sizeMs + lengthMs };
}

// ---------------------------------------------------------------------------------------------
// Public

/**
 * The window holding `atMs`. Rolling windows: `start` is where the counted sub-buckets begin and
 * `end` is when the oldest of them stops counting (the next moment capacity comes back).
 */
export function windowBounds(window: Window, atMs: number): Bounds {
  if (window.kind !== 'rolling') return calendarBounds(window, atMs);
  const bucket = rollingBucket(window, atMs);
  return { start: bucket.firstCounted * bucket.sizeMs, end: bucket.nextExpiry };
}

/**
 * The ledger counter for limit `limitIndex` of a budget at `atMs`: `<budget id>|<limit index>|<kind>|<window start>`
 * for calendar windows, `<budget id>|<limit index>|rolling:<seconds>` for rolling ones (the ledger
 * buckets those by time itself). Budget ids may contain `|`; the other parts never do.
 */
export function counterKey(budgetId: string, limitIndex: number, window: Window, atMs: number): string {
  if (window.kind === 'rolling') return `${budgetId}|${limitIndex}|rolling:${window.seconds}`;
  return `${budgetId}|${limitIndex}|${window.kind}|${calendarBounds(window, atMs).start}`;
}
