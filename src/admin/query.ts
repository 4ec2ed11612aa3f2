/**
 * Query-string parsing for the admin API: pure functions from URLSearchParams to store queries.
 * Every problem is a 400 naming the parameter: unknown or repeated names, bad values.
 */
import type { InventoryQuery, InventorySortField, UsageBucket, UsageGroupBy, UsageQuery } from '../inventory/types.js';
import { DAY_MS, HOUR_MS } from '../time.js';
import { DEFAULT_LIMIT, MAX_LIMIT } from '../inventory/query.js';
import { badParameter } from './reply.js';

/** Longest usage range accepted, so one request cannot ask for years of buckets. */
const MAX_USAGE_RANGE_MS = 366 * DAY_MS;
/** Largest epoch ms a Date can hold. */
const MAX_EPOCH_MS = 8.64e15;

export interface PageParams {
  offset: number;
  limit: number;
}

export type InventoryFilter = Omit<InventoryQuery, 'offset' | 'limit'> & Required<Pick<InventoryQuery, 'sort' | 'order'>>;

const SORT_FIELDS: Record<string, InventorySortField> = {
  last_seen: 'lastSeen',
  first_seen: 'firstSeen',
  requests: 'requests',
  cost: 'costMicroUsd',
  tokens: 'tokens',
  consumer: 'consumer',
  provider: 'provider',
  model: 'model',
};
/** Names sort A to Z by default, quantities and times largest/latest first. */
const ASCENDING_BY_DEFAULT = new Set<InventorySortField>(['consumer', 'provider', 'model']);

const KEY_FILTERS = ['consumer', 'provider', 'model'] as const;
const INVENTORY_FILTERS = [...KEY_FILTERS, 'first_seen_from', 'first_seen_to', 'last_seen_from', 'last_seen_to', 'unpriced', 'sort', 'order'];
const PAGE = ['offset', 'limit'];
const USAGE = ['group_by', 'from', 'to', 'bucket', ...KEY_FILTERS];

/** Reads declared parameters; construction rejects unknown and repeated ones. */
class Params {
  constructor(
    private readonly params: URLSearchParams,
    allowed: readonly string[],
  ) {
    const seen = new Set<string>();
    for (const name of params.keys()) {
      if (!allowed.includes(name)) throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
      if (seen.has(name)) throw badParameter(name, `parameter "${name}" is given more than once`);
      seen.add(name);
    }
  }

  string(name: string): string | undefined {
    return this.params.get(name) ?? undefined;
  }

  int(name: string, min: number, max: number, fallback: number): number {
    const raw = this.params.get(name);
    if (raw === null) return fallback;
    const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) throw badParameter(name, `${name} must be an integer from ${min} to ${max}`);
    return n;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const raw = this.params.get(name);
    if (raw === null) return undefined;
    if (!(choices as readonly string[]).includes(raw)) throw badParameter(name, `${name} must be one of ${choices.join(', ')}`);
    return raw as T;
  }

  time(name: string): number | undefined {
    const raw = this.params.get(name);
    if (raw === null) return undefined;
    const ms = parseTimestamp(raw);
    if (ms === null) throw badParameter(name, `${name} must be an RFC 3339 date-time (2025-01-31T12:00:00Z) or epoch milliseconds`);
    return ms;
  }
}

export function parsePage(params: URLSearchParams): PageParams {
  return readPage(new Params(params, PAGE));
}

function readPage(p: Params): PageParams {
  return { offset: p.int('offset', 0, Number.MAX_SAFE_INTEGER, 0), limit: p.int('limit', 1, MAX_LIMIT, DEFAULT_LIMIT) };
}

/** `/api/v1/inventory`: filters, sort and page. */
export function parseInventory(params: URLSearchParams): InventoryFilter & PageParams {
  const p = new Params(params, [...INVENTORY_FILTERS, ...PAGE]);
  return { ...readInventoryFilter(p, 'last_seen'), ...readPage(p) };
}

/**
 * `/api/v1/inventory.csv`: filters and sort; the export holds every matching record (no page). It
 * sorts by consumer by default: an order that writes do not reshuffle while the export pages.
 */
export function parseInventoryExport(params: URLSearchParams): InventoryFilter {
  return readInventoryFilter(new Params(params, INVENTORY_FILTERS), 'consumer');
}

function readInventoryFilter(p: Params, defaultSort: keyof typeof SORT_FIELDS): InventoryFilter {
  const sortName = p.choice('sort', Object.keys(SORT_FIELDS)) ?? defaultSort;
  const sort = SORT_FIELDS[sortName] as InventorySortField;
  const q: InventoryFilter = {
    sort,
    order: p.choice('order', ['asc', 'desc'] as const) ?? (ASCENDING_BY_DEFAULT.has(sort) ? 'asc' : 'desc'),
  };
  for (const name of KEY_FILTERS) {
    const v = p.string(name);
    if (v !== undefined) q[name] = v;
  }
  const bounds = [
    ['first_seen_from', 'firstSeenFrom'],
    ['first_seen_to', 'firstSeenTo'],
    ['last_seen_from', 'lastSeenFrom'],
    ['last_seen_to', 'lastSeenTo'],
  ] as const;
  for (const [name, field] of bounds) {
    const v = p.time(name);
    if (v !== undefined) q[field] = v;
  }
  const unpriced = p.choice('unpriced', ['true', 'false'] as const);
  if (unpriced !== undefined) q.unpriced = unpriced === 'true';
  return q;
}

/**
 * `/api/v1/usage`: the range covers every bucket that overlaps [from, to): `from` is aligned down
 * and `to` up to the bucket. Defaults: hour buckets over the last 24 hours (up to now).
 */
export function parseUsage(params: URLSearchParams, now: number): UsageQuery {
  const p = new Params(params, USAGE);
  const groupBy = p.choice<UsageGroupBy>('group_by', ['consumer', 'provider', 'model']);
  if (groupBy === undefined) throw badParameter('group_by', 'group_by is required: consumer, provider or model', 'missing_parameter');
  const bucket = p.choice<UsageBucket>('bucket', ['hour', 'day']) ?? 'hour';
  const size = bucket === 'hour' ? HOUR_MS : DAY_MS;
  const rawTo = p.time('to');
  const rawFrom = p.time('from') ?? (rawTo ?? now) - DAY_MS;
  const to = rawTo ?? now + 1;
  if (rawFrom >= to) throw badParameter(rawTo === undefined ? 'from' : 'to', 'from must be before to (default: now)');
  if (to - rawFrom > MAX_USAGE_RANGE_MS) throw badParameter('from', 'the range from..to must not exceed 366 days');
  const q: UsageQuery = { groupBy, bucket, from: alignDown(rawFrom, size), to: alignDown(to - 1, size) + size };
  for (const name of KEY_FILTERS) {
    const v = p.string(name);
    if (v !== undefined) q[name] = v;
  }
  return q;
}

function alignDown(ms: number, size: number): number {
  return Math.floor(ms / size) * size;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+\- ])(\d{2}):(\d{2}))$/;

/**
 * Epoch ms from epoch milliseconds (digits) or an RFC 3339 date-time; null when invalid (including
 * impossible dates such as Feb 30). A space before the offset is read as `+`, since an unencoded
 * `+` in a query string arrives as a space.
 */
export function parseTimestamp(raw: string): number | null {
  if (/^\d{1,16}$/.test(raw)) {
    const n = Number(raw);
    return n <= MAX_EPOCH_MS ? n : null;
  }
  const m = RFC3339.exec(raw);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  const d = new Date(wall);
  const valid = d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day && d.getUTCHours() === hour && d.getUTCMinutes() === minute && d.getUTCSeconds() === second;
  if (!valid) return null;
  if (m[8] !== undefined) return wall;
  const offsetHours = Number(m[10]);
  const offsetMinutes = Number(m[11]);
  if (offsetHours > 23 || offsetMinutes > 59) return null;
  const sign = m[9] === '-' ? -1 : 1;
  return wall - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
}
