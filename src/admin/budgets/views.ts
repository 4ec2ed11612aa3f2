/**
 * The budgets API's pure parts: which ledger counters describe a budget now, how a budget and its
 * counters' state are shown, and the would-block report. No I/O.
 */
import type { Budget, Limit, LimitMetric } from '../../governance/types.js';
import { counterKey, windowBounds } from '../../governance/windows.js';
import type { ItemState, WouldBlockCount } from '../../governance/ledger.js';
import { budgetDefinitionJson, limitEntryJson } from './body.js';
import { isoTime, microToUsd } from '../views.js';

/** One limit's counter at a moment: what the ledger is asked, and the window shown. */
export interface LimitCounter {
  counter: string;
  max: number;
  rollingMs?: number;
  start: number;
  end: number;
}

/** The counters admission uses at `nowMs` (same keys, so the figures are the ones it decides on). */
export function limitCounters(budget: Budget, nowMs: number): LimitCounter[] {
  return budget.limits.map((limit, index) => {
    const bounds = windowBounds(limit.window, nowMs);
    const c: LimitCounter = { counter: counterKey(budget.id, index, limit.window, nowMs), max: limit.max, start: bounds.start, end: bounds.end };
    if (limit.window.kind === 'rolling') c.rollingMs = limit.window.seconds * 1000;
    return c;
  });
}

const UNITS: Record<LimitMetric, string> = {
  input_tokens: 'tokens',
  output_tokens: 'tokens',
  total_tokens: 'tokens',
  requests: 'requests',
  cost_micro_usd: 'micro_usd',
};

function limitJson(limit: Limit, counter: LimitCounter, state: ItemState | undefined) {
  const used = state?.used ?? 0;
  const reserved = state?.reserved ?? 0;
  const remaining = Math.max(0, limit.max - used - reserved);
  const amounts = { max: limit.max, used, reserved, remaining };
  return {
    ...limitEntryJson(limit),
    // The counter's figures, in its unit: tokens, requests or micro-dollars.
    unit: UNITS[limit.metric],
    ...amounts,
    // Money is counted in micro-dollars; the exact decimal USD is added for people reading it.
    ...(limit.metric === 'cost_micro_usd'
      ? { usd: { max: microToUsd(limit.max), used: microToUsd(used), reserved: microToUsd(reserved), remaining: microToUsd(remaining) } }
      : {}),
    exhausted: remaining === 0,
    window_start: isoTime(counter.start),
    window_end: isoTime(counter.end),
  };
}

/** A budget with the state of each limit (`states` by counter key; a counter never touched is 0). */
export function budgetStateJson(budget: Budget, counters: readonly LimitCounter[], states: ReadonlyMap<string, ItemState>) {
  return {
    ...budgetDefinitionJson(budget),
    limits: budget.limits.map((limit, i) => limitJson(limit, counters[i]!, states.get(counters[i]!.counter))),
  };
}

export interface WouldBlockFilter {
  from: number;
  to: number;
  budget?: string;
  consumer?: string;
}

/**
 * Would-block counts over the range: per budget (with its mode now, null when it no longer exists)
 * and per budget and consumer, largest first, each with its hourly counts.
 */
export function wouldBlockJson(filter: WouldBlockFilter, counts: readonly WouldBlockCount[], modeOf: (budgetId: string) => string | null) {
  const pairs = new Map<string, { budget: string; consumer: string; count: number; hours: { hour_start: string; count: number }[] }>();
  const budgets = new Map<string, { budget: string; mode: string | null; count: number; consumers: number }>();
  for (const c of counts) {
    if (filter.budget !== undefined && c.budgetId !== filter.budget) continue;
    if (filter.consumer !== undefined && c.consumer !== filter.consumer) continue;
    const key = JSON.stringify([c.budgetId, c.consumer]);
    let pair = pairs.get(key);
    if (pair === undefined) {
      pair = { budget: c.budgetId, consumer: c.consumer, count: 0, hours: [] };
      pairs.set(key, pair);
      const b = budgets.get(c.budgetId) ?? { budget: c.budgetId, mode: modeOf(c.budgetId), count: 0, consumers: 0 };
      b.consumers += 1;
      budgets.set(c.budgetId, b);
    }
    pair.count += c.count;
    pair.hours.push({ hour_start: isoTime(c.hourStart), count: c.count });
    budgets.get(c.budgetId)!.count += c.count;
  }
  const byCount = <T extends { count: number }>(key: (x: T) => string) => (a: T, b: T) => b.count - a.count || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  for (const pair of pairs.values()) pair.hours.sort((a, b) => (a.hour_start < b.hour_start ? -1 : 1));
  const items = [...pairs.values()].sort(byCount((p) => JSON.stringify([p.budget, p.consumer])));
  return {
    from: isoTime(filter.from),
    to: isoTime(filter.to),
    total: items.reduce((sum, p) => sum + p.count, 0),
    budgets: [...budgets.values()].sort(byCount((b) => b.budget)),
    items,
  };
}
