/**
 * ExchangeRecord -> InventoryDelta, and the merge of two deltas of the same key. Pure functions: the
 * Recorder uses them to aggregate exchanges between flushes.
 */
import { ANONYMOUS_CONSUMER, type ExchangeRecord } from '../domain.js';
import { addBucket, apiParts, emptyBucket, ERROR_KINDS, TOKEN_CLASSES } from './rollup.js';
import { emptyErrors, emptyTokens, type ApiCounts, type ErrorCounts, type InventoryDelta, type InventoryKey, type TokenCounts } from './types.js';

export function inventoryKey(r: ExchangeRecord): InventoryKey {
  return { consumer: r.consumer?.id ?? ANONYMOUS_CONSUMER, provider: r.provider, model: r.model ?? r.responseModel ?? '' };
}

/**
 * At most one error kind per exchange, so a record's error total never exceeds its requests. What
 * tokenwarden saw wrong with the exchange itself comes first: a malformed request that the upstream
 * rejects with a 400 is bad input (its root cause), not an anonymous 4xx. The order matches the
 * `outcome` label of tokenwarden_exchanges_total, so the inventory and the metrics agree.
 */
export function errorKind(r: ExchangeRecord): keyof ErrorCounts | null {
  if (r.completion === 'aborted') return 'aborted';
  if (r.error === 'stream_truncated') return 'truncated';
  if (r.error !== null) return 'bad_input';
  if (r.status !== null && r.status >= 500 && r.status <= 599) return 'upstream_5xx';
  if (r.status !== null && r.status >= 400 && r.status <= 499) return 'upstream_4xx';
  return null;
}

function tokensOf(r: ExchangeRecord): TokenCounts {
  const u = r.usage;
  return {
    input: u.input_tokens ?? 0,
    cached_input: u.cached_input_tokens ?? 0,
    cache_write: u.cache_write_tokens ?? 0,
    output: u.output_tokens ?? 0,
    reasoning: u.reasoning_tokens ?? 0,
  };
}

/**
 * The delta of one exchange: tokens go to `reported` or `estimated` by the record's usage source.
 * It needs no split by API (InventoryDelta.byApi): its lastApi is its API; mergeDelta adds one.
 */
export function deltaOf(r: ExchangeRecord): InventoryDelta {
  const errors = emptyErrors();
  const kind = errorKind(r);
  if (kind) errors[kind] = 1;
  return {
    key: inventoryKey(r),
    firstSeen: r.startedAt,
    lastSeen: r.endedAt,
    requests: 1,
    errors,
    reported: r.usageSource === 'reported' ? tokensOf(r) : emptyTokens(),
    estimated: r.usageSource === 'estimated' ? tokensOf(r) : emptyTokens(),
    costMicroUsd: r.costMicroUsd ?? 0,
    unpricedRequests: r.unpriced ? 1 : 0,
    lastApi: r.api,
    responseModels: r.responseModel ? [r.responseModel] : [],
    consumerResolver: r.consumer?.resolver ?? null,
  };
}

/** Adds `parts` into `into`, API by API (in place: record() runs this per exchange). */
function addParts(into: ApiCounts[], parts: readonly ApiCounts[]): void {
  for (const part of parts) {
    let sum = into.find((p) => p.api === part.api);
    if (!sum) {
      sum = { api: part.api, ...emptyBucket() };
      into.push(sum);
    }
    addBucket(sum, part);
  }
}

function addInto<K extends string>(into: Record<K, number>, from: Record<K, number>, keys: readonly K[]): void {
  for (const k of keys) into[k] += from[k];
}

/**
 * Adds `later` (a delta of the same key, made after `into`) to `into`. The latest exchange (by
 * lastSeen; on a tie, the later one) gives lastApi and consumerResolver.
 */
export function mergeDelta(into: InventoryDelta, later: InventoryDelta): void {
  // Split by API first: the split of a delta without one depends on lastApi, changed below.
  into.byApi ??= apiParts(into);
  addParts(into.byApi, apiParts(later));
  into.firstSeen = Math.min(into.firstSeen, later.firstSeen);
  if (later.lastSeen >= into.lastSeen) {
    into.lastSeen = later.lastSeen;
    into.lastApi = later.lastApi;
    into.consumerResolver = later.consumerResolver;
  }
  into.requests += later.requests;
  addInto(into.errors, later.errors, ERROR_KINDS);
  addInto(into.reported, later.reported, TOKEN_CLASSES);
  addInto(into.estimated, later.estimated, TOKEN_CLASSES);
  into.costMicroUsd += later.costMicroUsd;
  into.unpricedRequests += later.unpricedRequests;
  for (const m of later.responseModels) if (!into.responseModels.includes(m)) into.responseModels.push(m);
}
