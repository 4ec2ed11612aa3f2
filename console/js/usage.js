// @ts-check
/** Pure shaping of usage and showback answers for charts and rankings. */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** @typedef {{ id: string, label: string, ms: number, bucket: 'hour' | 'day' }} RangePreset */

/** @type {RangePreset[]} */
export const RANGES = [
  { id: '24h', label: 'Last 24 hours', ms: DAY_MS, bucket: 'hour' },
  { id: '7d', label: 'Last 7 days', ms: 7 * DAY_MS, bucket: 'day' },
  { id: '30d', label: 'Last 30 days', ms: 30 * DAY_MS, bucket: 'day' },
];

/** @param {string | null} id */
export function rangeOf(id) {
  return RANGES.find((r) => r.id === id) ?? /** @type {RangePreset} */ (RANGES[0]);
}

/**
 * Bucket starts covering [from, to), as the API aligns them.
 * @param {number} from @param {number} to @param {'hour' | 'day'} bucket
 */
export function bucketStarts(from, to, bucket) {
  const size = bucket === 'hour' ? HOUR_MS : DAY_MS;
  const out = [];
  for (let t = Math.floor(from / size) * size; t < to; t += size) out.push(t);
  return out;
}

/** @param {import('./types.js').Tokens} t */
export const inputTokens = (t) => t.input + t.cached_input + t.cache_write;

/**
 * Totals per bucket over every series: cost, input and output tokens (reported and estimated).
 * @param {import('./types.js').Usage} usage @param {number[]} xs
 */
export function perBucket(usage, xs) {
  const index = new Map(xs.map((t, i) => [t, i]));
  const cost = xs.map(() => 0);
  const input = xs.map(() => 0);
  const output = xs.map(() => 0);
  let requests = 0;
  for (const s of usage.series) {
    for (const p of s.points) {
      const i = index.get(Date.parse(p.bucket_start));
      requests += p.requests;
      if (i === undefined) continue;
      cost[i] = (cost[i] ?? 0) + p.cost_micro_usd;
      input[i] = (input[i] ?? 0) + inputTokens(p.tokens.reported) + inputTokens(p.tokens.estimated);
      output[i] = (output[i] ?? 0) + p.tokens.reported.output + p.tokens.estimated.output;
    }
  }
  return { cost, input, output, requests };
}

/**
 * Groups ranked by cost, then requests.
 * @param {Iterable<{ group: string, cost: number, requests: number }>} rows
 * @param {number} n
 */
export function top(rows, n) {
  /** @type {Map<string, { group: string, cost: number, requests: number }>} */
  const byGroup = new Map();
  for (const r of rows) {
    const g = byGroup.get(r.group) ?? { group: r.group, cost: 0, requests: 0 };
    g.cost += r.cost;
    g.requests += r.requests;
    byGroup.set(r.group, g);
  }
  return [...byGroup.values()].sort((a, b) => b.cost - a.cost || b.requests - a.requests || (a.group < b.group ? -1 : 1)).slice(0, n);
}

/** @param {import('./types.js').Usage} usage */
export function usageRows(usage) {
  return usage.series.flatMap((s) => s.points.map((p) => ({ group: s.group, cost: p.cost_micro_usd, requests: p.requests })));
}

/** @param {import('./types.js').ShowbackRow[]} items */
export function showbackRows(items) {
  return items.map((i) => ({ group: i.group, cost: i.costMicroUsd, requests: i.requests }));
}

/**
 * The fullest limit of a budget, as a fraction of its maximum (used + reserved).
 * @param {import('./types.js').BudgetView} b
 */
export function utilisation(b) {
  let best = { ratio: 0, limit: /** @type {import('./types.js').LimitState | undefined} */ (undefined) };
  for (const l of b.limits) {
    const ratio = l.max > 0 ? (l.used + l.reserved) / l.max : 0;
    if (best.limit === undefined || ratio > best.ratio) best = { ratio, limit: l };
  }
  return best;
}
