/**
 * Showback and chargeback (mounted through ../json-routes.ts):
 *
 *   GET /api/v1/showback          usage and cost by owner, consumer, provider, model or API per
 *                                 hour, day or month: {groupBy, bucket, from, to, items, totals}
 *   GET /api/v1/showback.csv      the same items as CSV
 *   GET /api/v1/export/focus.csv  the FOCUS-aligned chargeback export (focus.ts)
 *
 * Every figure comes from the inventory's hourly buckets (the counters the inventory records are
 * made of, split by API), read with one store call: within bucket retention (store.retention_hours)
 * the totals equal the inventory's exactly. A day is 24 UTC hours; a month is the sum of its UTC
 * days. Owners are applied at query time: each consumer is grouped under the owner the catalog
 * resolves it to now (`(unowned)` without one), so re-assigning a consumer moves its past usage too.
 */
import type { CatalogView } from '../../catalog/types.js';
import { governanceLabels } from '../../catalog/catalog.js';
import type { ApiKind, Usage } from '../../domain.js';
import type { RequestSubject } from '../../governance/types.js';
import type { Logger } from '../../log.js';
import type { PriceBook } from '../../metering/prices.js';
import { addBucket, emptyBucket } from '../../inventory/rollup.js';
import type { BucketCounts, InventoryStore, UsageKey, UsagePoint, UsageQuery } from '../../inventory/types.js';
import { DAY_MS, HOUR_MS } from '../../time.js';
import { csvRow, TOKEN_COLUMNS, tokenCells, type Cell } from '../csv.js';
import { storeCall } from '../inventory/api.js';
import { FOCUS_COLUMNS, focusCells, focusRows, METERS, type FocusGroup, type ListPrices, type Meter } from './focus.js';
import type { JsonRoute } from '../json-routes.js';
import { parseTimestamp } from '../query.js';
import { badParameter, jsonReply, type Reply } from '../reply.js';
import { isoTime, microToUsd } from '../views.js';

/** List prices of a provider's model at a time (epoch ms); null when it has none. */
export type ListPriceLookup = (provider: string, model: string, at: number) => ListPrices | null;

export interface ShowbackApiDeps {
  store: InventoryStore;
  /** The catalog in force: owners are resolved through it at query time. */
  catalog: () => CatalogView;
  prices: ListPriceLookup;
  /** Longest wait for the store call (503 beyond). */
  storeTimeoutMs: number;
  now: () => number;
  logger?: Logger;
  /** Ids of the budgets that apply to a request (PolicySet.applicable), for the FOCUS Tags; omitted: labels only. */
  budgets?: (subject: RequestSubject) => string[];
}

export type ShowbackGroupBy = 'owner' | 'consumer' | 'provider' | 'model' | 'api';
export type ShowbackBucket = 'hour' | 'day' | 'month';

/** The owner group of consumers the catalog gives no owner. */
export const UNOWNED = '(unowned)';
/** The API group of buckets written before buckets had an API. */
export const UNKNOWN_API = '(unknown)';

export interface ShowbackQuery {
  groupBy: ShowbackGroupBy;
  bucket: ShowbackBucket;
  /** Epoch ms, aligned to the bucket; `to` exclusive. */
  from: number;
  to: number;
  consumer?: string;
  provider?: string;
  model?: string;
  api?: string;
  owner?: string;
}

const GROUP_BYS: readonly ShowbackGroupBy[] = ['owner', 'consumer', 'provider', 'model', 'api'];
const BUCKETS: readonly ShowbackBucket[] = ['hour', 'day', 'month'];
const FILTERS = ['consumer', 'provider', 'model', 'api', 'owner'] as const;
const SHOWBACK_PARAMS = ['group_by', 'bucket', 'from', 'to', ...FILTERS];
const FOCUS_PARAMS = ['bucket', 'from', 'to', ...FILTERS];
const DEFAULT_RANGE_MS = 30 * DAY_MS;
/** Longest range accepted (before alignment), so one request cannot ask for years of buckets. */
const MAX_RANGE_MS = 366 * DAY_MS;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Epoch ms from epoch milliseconds, an RFC 3339 date-time, or a date (UTC midnight); null when invalid. */
export function parseTime(raw: string): number | null {
  const m = DATE_ONLY.exec(raw);
  if (!m) return parseTimestamp(raw);
  const [year, month, day] = m.slice(1).map(Number) as [number, number, number];
  const t = Date.UTC(year, month - 1, day);
  const d = new Date(t);
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day ? t : null;
}

/** Start of the UTC hour, day or month containing `t`. */
export function bucketStartOf(t: number, bucket: ShowbackBucket): number {
  if (bucket === 'hour') return Math.floor(t / HOUR_MS) * HOUR_MS;
  if (bucket === 'day') return Math.floor(t / DAY_MS) * DAY_MS;
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** End (exclusive) of the bucket starting at `start`. */
export function bucketEndOf(start: number, bucket: ShowbackBucket): number {
  if (bucket === 'hour') return start + HOUR_MS;
  if (bucket === 'day') return start + DAY_MS;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

function readParams(query: URLSearchParams, allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of query.keys()) {
    if (!allowed.includes(name)) throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
    if (seen.has(name)) throw badParameter(name, `parameter "${name}" is given more than once`);
    seen.add(name);
  }
}

function choice<T extends string>(query: URLSearchParams, name: string, choices: readonly T[], fallback: T): T {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!(choices as readonly string[]).includes(raw)) throw badParameter(name, `${name} must be one of ${choices.join(', ')}`);
  return raw as T;
}

function time(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  const ms = parseTime(raw);
  if (ms === null) throw badParameter(name, `${name} must be an ISO-8601 date (2025-01-31), date-time (2025-01-31T12:00:00Z) or epoch milliseconds`);
  return ms;
}

/**
 * Range and filters shared by the showback and FOCUS endpoints. Defaults: the last 30 days up to
 * now, day buckets. The range covers every bucket that overlaps [from, to).
 */
function parseRange(query: URLSearchParams, now: number, groupBy: ShowbackGroupBy): ShowbackQuery {
  const bucket = choice(query, 'bucket', BUCKETS, 'day');
  const rawTo = time(query, 'to');
  const to = rawTo ?? now + 1;
  const from = time(query, 'from') ?? to - DEFAULT_RANGE_MS;
  if (from >= to) throw badParameter(rawTo === undefined ? 'from' : 'to', 'from must be before to (default: now)');
  if (to - from > MAX_RANGE_MS) throw badParameter('from', 'the range from..to must not exceed 366 days');
  const q: ShowbackQuery = { groupBy, bucket, from: bucketStartOf(from, bucket), to: bucketEndOf(bucketStartOf(to - 1, bucket), bucket) };
  for (const name of FILTERS) {
    const v = query.get(name);
    if (v !== null) q[name] = v;
  }
  return q;
}

export function parseShowback(query: URLSearchParams, now: number): ShowbackQuery {
  readParams(query, SHOWBACK_PARAMS);
  return parseRange(query, now, choice(query, 'group_by', GROUP_BYS, 'owner'));
}

export function parseFocus(query: URLSearchParams, now: number): ShowbackQuery {
  readParams(query, FOCUS_PARAMS);
  return parseRange(query, now, 'consumer');
}

/**
 * The store query: every bucket key, in hour buckets or day buckets (months are summed from days).
 * The API filter `(unknown)` selects the buckets without an API, as groupBy api names them.
 */
function storeQuery(q: ShowbackQuery): UsageQuery {
  const u: UsageQuery = { groupBy: 'key', bucket: q.bucket === 'hour' ? 'hour' : 'day', from: q.from, to: q.to };
  for (const name of ['consumer', 'provider', 'model'] as const) if (q[name] !== undefined) u[name] = q[name];
  if (q.api !== undefined) u.api = q.api === UNKNOWN_API ? '' : q.api;
  return u;
}

function ownerOf(catalog: CatalogView, consumer: string): string {
  return catalog.consumer(consumer).owner ?? UNOWNED;
}

function groupOf(q: ShowbackQuery, key: UsageKey, catalog: CatalogView): string {
  switch (q.groupBy) {
    case 'owner':
      return ownerOf(catalog, key.consumer);
    case 'consumer':
      return key.consumer;
    case 'provider':
      return key.provider;
    case 'model':
      return `${key.provider}/${key.model}`;
    default:
      return key.api === '' ? UNKNOWN_API : key.api;
  }
}

function nameOf(q: ShowbackQuery, group: string, catalog: CatalogView): string | null {
  if (q.groupBy === 'owner') return group === UNOWNED ? null : (catalog.owner(group)?.name ?? null);
  if (q.groupBy === 'consumer') return catalog.consumer(group).displayName;
  return null;
}

/** The owner filter: an owner id, or `(unowned)`. */
function ownerMatches(q: ShowbackQuery, catalog: CatalogView, consumer: string): boolean {
  return q.owner === undefined || ownerOf(catalog, consumer) === q.owner;
}

export interface ShowbackItem extends BucketCounts {
  group: string;
  name: string | null;
  bucketStart: number;
}

/** Points of groupBy `key` regrouped by the showback grouping and bucket, sorted by group then bucketStart. */
export function showbackItems(q: ShowbackQuery, points: readonly UsagePoint[], catalog: CatalogView): ShowbackItem[] {
  const items = new Map<string, ShowbackItem>();
  for (const p of points) {
    if (!p.key || !ownerMatches(q, catalog, p.key.consumer)) continue;
    const group = groupOf(q, p.key, catalog);
    const bucketStart = bucketStartOf(p.bucketStart, q.bucket);
    const id = `${group}\u0000${bucketStart}`;
    let item = items.get(id);
    if (!item) {
      item = { group, name: nameOf(q, group, catalog), bucketStart, ...emptyBucket() };
      items.set(id, item);
    }
    addBucket(item, p);
  }
  return [...items.values()].sort((a, b) => compare(a.group, b.group) || a.bucketStart - b.bucketStart);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function countersJson(c: BucketCounts) {
  return {
    requests: c.requests,
    errors: c.errors,
    reported: { ...c.reported },
    estimated: { ...c.estimated },
    costMicroUsd: c.costMicroUsd,
    unpricedRequests: c.unpricedRequests,
  };
}

export function showbackJson(q: ShowbackQuery, items: readonly ShowbackItem[]) {
  const totals = emptyBucket();
  for (const item of items) addBucket(totals, item);
  return {
    groupBy: q.groupBy,
    bucket: q.bucket,
    from: isoTime(q.from),
    to: isoTime(q.to),
    items: items.map((i) => ({
      group: i.group,
      name: i.name,
      bucketStart: isoTime(i.bucketStart),
      bucketEnd: isoTime(bucketEndOf(i.bucketStart, q.bucket)),
      ...countersJson(i),
    })),
    totals: countersJson(totals),
  };
}

export const SHOWBACK_COLUMNS = [
  'group_by',
  'group',
  'name',
  'bucket',
  'bucket_start',
  'bucket_end',
  'requests',
  'errors',
  ...TOKEN_COLUMNS,
  'cost_micro_usd',
  'cost_usd',
  'unpriced_requests',
] as const;

export function showbackCells(q: ShowbackQuery, i: ShowbackItem): Cell[] {
  return [
    q.groupBy,
    i.group,
    i.name,
    q.bucket,
    isoTime(i.bucketStart),
    isoTime(bucketEndOf(i.bucketStart, q.bucket)),
    i.requests,
    i.errors,
    ...tokenCells(i.reported, i.estimated),
    i.costMicroUsd,
    microToUsd(i.costMicroUsd),
    i.unpricedRequests,
  ];
}

/** The FOCUS groups (charge period x consumer x provider x model, APIs summed), sorted. */
export function focusGroups(q: ShowbackQuery, points: readonly UsagePoint[], deps: Pick<ShowbackApiDeps, 'prices' | 'budgets'>, catalog: CatalogView): FocusGroup[] {
  const sums = new Map<string, { start: number; key: UsageKey; counts: BucketCounts; apis: Set<string> }>();
  for (const p of points) {
    if (!p.key || !ownerMatches(q, catalog, p.key.consumer)) continue;
    const start = bucketStartOf(p.bucketStart, q.bucket);
    const id = JSON.stringify([start, p.key.consumer, p.key.provider, p.key.model]);
    let sum = sums.get(id);
    if (!sum) {
      sum = { start, key: p.key, counts: emptyBucket(), apis: new Set() };
      sums.set(id, sum);
    }
    addBucket(sum.counts, p);
    sum.apis.add(p.key.api);
  }
  const prices = new Map<string, ListPrices | null>();
  const priceOf = (provider: string, model: string, at: number): ListPrices | null => {
    const id = JSON.stringify([provider, model, at]);
    if (!prices.has(id)) prices.set(id, deps.prices(provider, model, at));
    return prices.get(id) ?? null;
  };
  const byKey = (a: UsageKey, b: UsageKey): number => compare(a.consumer, b.consumer) || compare(a.provider, b.provider) || compare(a.model, b.model);
  return [...sums.values()]
    .sort((a, b) => a.start - b.start || byKey(a.key, b.key))
    .map(({ start, key, counts, apis }) => {
      const consumer = catalog.consumer(key.consumer);
      const owner = consumer.owner === null ? null : catalog.owner(consumer.owner);
      const budgets = deps.budgets
        ? [...new Set([...apis].flatMap((api) => deps.budgets!({ consumer: key.consumer, labels: governanceLabels(consumer), templates: consumer.budgetTemplates, provider: key.provider, model: key.model, api: api as ApiKind })))]
        : null;
      return {
        periodStart: start,
        periodEnd: bucketEndOf(start, q.bucket),
        provider: key.provider,
        model: key.model,
        endpoint: catalog.resource(key.provider, key.model)?.endpoint ?? null,
        consumerId: key.consumer,
        consumerName: consumer.displayName,
        ownerId: consumer.owner,
        ownerName: owner?.name ?? null,
        labels: consumer.labels,
        budgets,
        reported: counts.reported,
        estimated: counts.estimated,
        costMicroUsd: counts.costMicroUsd,
        estimatedCostMicroUsd: counts.estimatedCostMicroUsd,
        unpricedRequests: counts.unpricedRequests,
        prices: priceOf(key.provider, key.model, start),
      };
    });
}

/** Tokens per probe: below every catalog tier threshold (128k prompt tokens and up), exact to 1e-5 USD per million tokens. */
const PROBE_TOKENS = 100_000;

function probe(meter: Meter | null, n: number): Usage {
  return {
    input_tokens: meter === 'output' || meter === null ? 0 : n,
    output_tokens: meter === 'output' ? n : 0,
    total_tokens: meter === null ? 0 : n,
    cached_input_tokens: meter === 'cached_input' ? n : null,
    cache_write_tokens: meter === 'cache_write' ? n : null,
    reasoning_tokens: null,
  };
}

/**
 * List prices from the PriceBook that prices exchanges (config overrides, lookup, catalog): each
 * meter's rate is the cost of N tokens of that meter alone, less the cost of none (a per-request
 * fee, when the model has one), over N.
 */
export function priceBookListPrices(book: Pick<PriceBook, 'cost'>): ListPriceLookup {
  return (provider, model, at) => {
    const when = new Date(at);
    const fee = book.cost(provider, [model], probe(null, 0), when)?.microUsd ?? 0;
    const prices: ListPrices = {};
    for (const meter of METERS) {
      const cost = book.cost(provider, [model], probe(meter, PROBE_TOKENS), when);
      if (cost !== null) prices[meter] = (cost.microUsd - fee) / PROBE_TOKENS;
    }
    return Object.keys(prices).length > 0 ? prices : null;
  };
}

/** Rows written per chunk of a streamed export. */
const ROWS_PER_CHUNK = 500;

async function* focusCsv(groups: readonly FocusGroup[]): AsyncIterable<string> {
  yield csvRow(FOCUS_COLUMNS);
  let chunk = '';
  let rows = 0;
  for (const g of groups) {
    for (const row of focusRows(g)) {
      chunk += csvRow(focusCells(row));
      if (++rows % ROWS_PER_CHUNK === 0) {
        yield chunk;
        chunk = '';
      }
    }
  }
  if (chunk) yield chunk;
}

function csvReply(filename: string, body: string | AsyncIterable<string>): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'text/csv; charset=utf-8; header=present', 'content-disposition': `attachment; filename="${filename}"` },
    body,
  };
}

export function showbackRoutes(deps: ShowbackApiDeps): JsonRoute[] {
  const points = (q: ShowbackQuery): Promise<UsagePoint[]> => storeCall(deps, 'inventory store', 'usage', () => deps.store.usage(storeQuery(q)));
  return [
    {
      method: 'GET',
      path: '/api/v1/showback',
      async handle({ query }) {
        const q = parseShowback(query, deps.now());
        return jsonReply(200, showbackJson(q, showbackItems(q, await points(q), deps.catalog())));
      },
    },
    {
      method: 'GET',
      path: '/api/v1/showback.csv',
      async handle({ query }) {
        const q = parseShowback(query, deps.now());
        const items = showbackItems(q, await points(q), deps.catalog());
        const body = csvRow(SHOWBACK_COLUMNS) + items.map((i) => csvRow(showbackCells(q, i))).join('');
        return csvReply(`tokenwarden-showback-${q.groupBy}-${q.bucket}.csv`, body);
      },
    },
    {
      method: 'GET',
      path: '/api/v1/export/focus.csv',
      async handle({ query }) {
        const q = parseFocus(query, deps.now());
        const groups = focusGroups(q, await points(q), deps, deps.catalog());
        return csvReply(`tokenwarden-focus-${q.bucket}.csv`, focusCsv(groups));
      },
    },
  ];
}
