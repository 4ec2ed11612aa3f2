/**
 * Exact cost arithmetic (pure). A rate in USD per million tokens is a rate in micro-dollars per
 * token, so cost = sum(tokens x rate) µUSD. Rates are scaled to integers (1e-9 µUSD) and summed
 * exactly (as Numbers while below 2^53, else as BigInt), then rounded once, half up.
 *
 * Catalog tiers are resolved as the catalog does (the rate of the last tier whose `start` is below
 * the prompt's total input tokens, cache included); a test checks every catalog model of our
 * providers against the catalog's own calculation. Price sets with a per-request fee or a shape
 * not understood here are left to the catalog (catalog.ts), which is 5-10x slower.
 */

import type { ModelPrice } from '@pydantic/genai-prices';
import type { CatalogTokens } from './genai-prices.js';

/** Token classes of one exchange: reasoning is part of output (priced apart only with its own rate). */
export interface TokenClasses extends CatalogTokens {
  reasoning: number;
}

/** Per-token rates (µUSD per token = USD per million tokens) that apply to one exchange. */
export interface TokenRates {
  input?: number;
  cacheRead?: number;
  cacheWrite?: number;
  output?: number;
}

/** Catalog price keys that our Usage carries; other keys (audio, images, searches) count 0 units. */
export const PRICE_KEYS = {
  input: 'input_mtok',
  cacheRead: 'cache_read_mtok',
  cacheWrite: 'cache_write_mtok',
  output: 'output_mtok',
} as const;

/** The catalog charges `requests_kcount` once per call whatever the usage: not a token rate. */
const PER_REQUEST_KEY = 'requests_kcount';

const SCALE = 1_000_000_000n;
const HALF = SCALE / 2n;

function isRate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** A flat or tiered price at this prompt size; undefined when absent, null when not understood. */
function rateAt(value: unknown, inputTokens: number): number | undefined | null {
  if (value === undefined) return undefined;
  if (isRate(value)) return value;
  if (typeof value !== 'object' || value === null) return null;
  const { base, tiers } = value as { base?: unknown; tiers?: unknown };
  if (!isRate(base) || !Array.isArray(tiers)) return null;
  let rate = base;
  for (const tier of [...tiers].sort((a, b) => Number(a?.start) - Number(b?.start))) {
    if (typeof tier !== 'object' || tier === null || !isRate(tier.price) || !isRate(tier.start)) return null;
    if (inputTokens > tier.start) rate = tier.price;
  }
  return rate;
}

/** Rates for an exchange with `inputTokens` prompt tokens, or null when the catalog must compute. */
export function ratesFor(prices: ModelPrice, inputTokens: number): TokenRates | null {
  if (prices[PER_REQUEST_KEY] !== undefined) return null;
  const rates: TokenRates = {};
  for (const [name, key] of Object.entries(PRICE_KEYS) as Array<[keyof TokenRates, string]>) {
    const rate = rateAt(prices[key], inputTokens);
    if (rate === null) return null;
    if (rate !== undefined) rates[name] = rate;
  }
  return rates;
}

function scaled(rate: number | undefined): bigint {
  return BigInt(Math.round((rate ?? 0) * 1e9));
}

function units(tokens: number): bigint {
  return BigInt(Math.round(tokens));
}

/**
 * Micro-dollars for `tokens` at `rates`, reasoning tokens at `reasoningRate` when given. Cache
 * reads and writes without their own rate are priced as input, as the catalog does. Classes
 * without a rate cost 0: callers check that classes with tokens have one.
 */
export function microCost(rates: TokenRates, tokens: TokenClasses, reasoningRate?: number): number {
  const read = rates.cacheRead === undefined ? 0 : tokens.cacheRead;
  const write = rates.cacheWrite === undefined ? 0 : tokens.cacheWrite;
  const apart = reasoningRate === undefined ? 0 : tokens.reasoning;
  const input = tokens.input - read - write;
  const output = tokens.output - apart;
  // Most exchanges: every product and the sum are integers below 2^53, exact as Numbers (BigInt
  // operands would make garbage on every exchange); beyond that, BigInt.
  const total =
    product(input, rates.input) + product(read, rates.cacheRead) + product(write, rates.cacheWrite) + product(output, rates.output) + product(apart, reasoningRate);
  if (!(Math.abs(total) <= MAX_EXACT_TOTAL)) {
    const big =
      units(input) * scaled(rates.input) +
      units(read) * scaled(rates.cacheRead) +
      units(write) * scaled(rates.cacheWrite) +
      units(output) * scaled(rates.output) +
      units(apart) * scaled(reasoningRate);
    return Number((big + HALF) / SCALE);
  }
  // Half up, then truncated toward zero as BigInt division does: exact, t being an integer below 2^53.
  const t = total + SCALE_NUMBER / 2;
  return (t - (t % SCALE_NUMBER)) / SCALE_NUMBER;
}

const SCALE_NUMBER = 1e9;
/** Each product is at most this, so the sum of five and the half added stay below 2^53. */
const MAX_EXACT_TOTAL = (Number.MAX_SAFE_INTEGER - SCALE_NUMBER) / 8;

/** tokens × rate scaled to an integer; Infinity (never exact) when it may exceed MAX_EXACT_TOTAL. */
function product(tokens: number, rate: number | undefined): number {
  const p = Math.round(tokens) * Math.round((rate ?? 0) * 1e9);
  return Math.abs(p) <= MAX_EXACT_TOTAL ? p : Infinity;
}

