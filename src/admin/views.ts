/**
 * The admin API's JSON shapes: snake_case keys, RFC 3339 timestamps, money as integer micro-dollars
 * and decimal USD, tokens split into provider-reported and estimated.
 */
import type {
  ConsumerSummary,
  ErrorCounts,
  InventoryRecord,
  ModelSummary,
  Rollup,
  TokenCounts,
  UsagePoint,
  UsageQuery,
} from '../inventory/types.js';
import type { PageParams } from './query.js';

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Exact decimal USD from integer micro-dollars (no binary rounding): 1234 -> "0.001234". */
export function microToUsd(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  const fraction = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '');
  return `${sign}${Math.floor(abs / 1_000_000)}${fraction ? `.${fraction}` : ''}`;
}

function money(micro: number): { cost_micro_usd: number; cost_usd: number } {
  return { cost_micro_usd: micro, cost_usd: Number(microToUsd(micro)) };
}

function tokenCounts(t: TokenCounts): TokenCounts {
  return { input: t.input, cached_input: t.cached_input, cache_write: t.cache_write, output: t.output, reasoning: t.reasoning };
}

function errorCounts(e: ErrorCounts): ErrorCounts {
  return { upstream_4xx: e.upstream_4xx, upstream_5xx: e.upstream_5xx, bad_input: e.bad_input, truncated: e.truncated, aborted: e.aborted };
}

function rollup(r: Rollup) {
  return {
    first_seen: isoTime(r.firstSeen),
    last_seen: isoTime(r.lastSeen),
    requests: r.requests,
    errors: errorCounts(r.errors),
    tokens: { reported: tokenCounts(r.reported), estimated: tokenCounts(r.estimated) },
    ...money(r.costMicroUsd),
    unpriced_requests: r.unpricedRequests,
  };
}

export function inventoryJson(r: InventoryRecord) {
  return {
    consumer: r.key.consumer,
    provider: r.key.provider,
    model: r.key.model,
    ...rollup(r),
    last_api: r.lastApi,
    response_models: [...r.responseModels],
    consumer_resolver: r.consumerResolver,
  };
}

export function consumerJson(c: ConsumerSummary) {
  return { consumer: c.consumer, models: c.models, ...rollup(c) };
}

export function modelJson(m: ModelSummary) {
  return { provider: m.provider, model: m.model, consumers: m.consumers, ...rollup(m) };
}

export function pageJson<T, J>(page: { items: T[]; total: number }, params: PageParams, view: (item: T) => J) {
  return { items: page.items.map(view), total: page.total, offset: params.offset, limit: params.limit };
}

function usagePointJson(p: UsagePoint) {
  return {
    bucket_start: isoTime(p.bucketStart),
    requests: p.requests,
    errors: p.errors,
    tokens: { reported: tokenCounts(p.reported), estimated: tokenCounts(p.estimated) },
    ...money(p.costMicroUsd),
  };
}

/** One series per group (in the store's order); buckets without traffic are absent. */
export function usageJson(q: UsageQuery, points: UsagePoint[]) {
  const groups = new Map<string, ReturnType<typeof usagePointJson>[]>();
  for (const p of points) {
    const series = groups.get(p.group);
    if (series) series.push(usagePointJson(p));
    else groups.set(p.group, [usagePointJson(p)]);
  }
  return {
    group_by: q.groupBy,
    bucket: q.bucket,
    from: isoTime(q.from),
    to: isoTime(q.to),
    series: [...groups].map(([group, pts]) => ({ group, points: pts })),
  };
}
