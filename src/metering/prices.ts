/**
 * Pricing an exchange: config overrides, then an optional custom lookup, then the bundled catalog.
 * Unknown prices give null (unpriced), never a silent 0.
 */

import type { ModelPrice } from '@pydantic/genai-prices';
import { LRUCache } from 'lru-cache';
import type { CatalogView, ResourcePrice } from '../catalog/types.js';
import type { PriceOverride } from '../config/types.js';
import type { Usage } from '../domain.js';
import { appliedPrices, catalogUsd, findCatalogModel, type CatalogModel } from './genai-prices.js';
import { compileGlob, type Glob } from '../glob.js';
import { usdToMicro } from './money.js';
import { microCost, PRICE_KEYS, ratesFor, type TokenClasses } from './rates.js';


/** USD per million tokens. Absent classes fall back to the catalog's rate, else input (cache) or output (reasoning). */
export interface PriceRates {
  input: number;
  cached_input?: number;
  cache_write?: number;
  output: number;
  reasoning?: number;
}

export interface Cost {
  /** Integer micro-dollars, rounded once per exchange (half up). */
  microUsd: number;
  source: 'override' | 'lookup' | 'catalog';
}

export interface PriceBookOptions {
  /** Custom prices, tried after config overrides and before the catalog; called per exchange. */
  lookup?: (provider: string, model: string) => PriceRates | null;
  /** Distinct (provider, model) resolutions kept. */
  cacheSize?: number;
}

/** A resource's price override as rates; absent classes stay undefined and keep the bundled price. */
function resourceRates(price: ResourcePrice | undefined): PriceRates | null {
  if (price === undefined) return null;
  return { input: price.input_mtok, cached_input: price.cached_input_mtok, cache_write: price.cache_write_mtok, output: price.output_mtok } as PriceRates;
}

/**
 * A server's PriceBook lookup, asked after the config's overrides: the embedder's prices, then the
 * price overrides of the catalog's resources (the catalog in force at each exchange).
 */
export function resourcePriceLookup(
  catalog: () => CatalogView,
  custom?: (provider: string, model: string) => PriceRates | null,
): (provider: string, model: string) => PriceRates | null {
  return (provider, model) => custom?.(provider, model) ?? resourceRates(catalog().resource(provider, model)?.price);
}

/** Rates given by an override or a lookup; every class optional (merged over the catalog). */
type PartialRates = Partial<PriceRates>;

interface CompiledOverride {
  provider: Glob;
  model: Glob;
  rates: PartialRates;
}

interface Resolution {
  override: PartialRates | null;
  catalog: CatalogModel | null;
}

const DEFAULT_CACHE_SIZE = 4096;

function rate(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function overrideRates(o: PriceOverride): PartialRates {
  return {
    input: rate(o.input_per_mtok),
    cached_input: rate(o.cached_input_per_mtok),
    cache_write: rate(o.cache_write_per_mtok),
    output: rate(o.output_per_mtok),
    reasoning: rate(o.reasoning_per_mtok),
  };
}

function lookupRates(r: PriceRates | null | undefined): PartialRates | null {
  if (r === null || typeof r !== 'object') return null;
  const rates: PartialRates = {
    input: rate(r.input),
    cached_input: rate(r.cached_input),
    cache_write: rate(r.cache_write),
    output: rate(r.output),
    reasoning: rate(r.reasoning),
  };
  return rates.input === undefined && rates.output === undefined ? null : rates;
}

function count(value: number | null | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Token classes to price, or null when neither input nor output is known. input_tokens includes
 * cache reads and writes, and output_tokens includes reasoning; inconsistent reports are clamped
 * (input is at least reads + writes, reasoning at most output).
 */
function tokenClasses(usage: Usage): TokenClasses | null {
  if (usage === null || typeof usage !== 'object') return null;
  if (usage.input_tokens == null && usage.output_tokens == null) return null;
  const cacheRead = count(usage.cached_input_tokens);
  const cacheWrite = count(usage.cache_write_tokens);
  const output = count(usage.output_tokens);
  return {
    input: Math.max(count(usage.input_tokens), cacheRead + cacheWrite),
    cacheRead,
    cacheWrite,
    output,
    reasoning: Math.min(count(usage.reasoning_tokens), output),
  };
}

/** The catalog price set with the given classes replaced. */
function mergeRates(base: ModelPrice, rates: PartialRates): ModelPrice {
  const merged: ModelPrice = { ...base };
  if (rates.input !== undefined) merged[PRICE_KEYS.input] = rates.input;
  if (rates.cached_input !== undefined) merged[PRICE_KEYS.cacheRead] = rates.cached_input;
  if (rates.cache_write !== undefined) merged[PRICE_KEYS.cacheWrite] = rates.cache_write;
  if (rates.output !== undefined) merged[PRICE_KEYS.output] = rates.output;
  return merged;
}

/**
 * Micro-dollars for `tokens` at `prices`, or null when a class with tokens has no rate (cache
 * reads and writes fall back to input, reasoning to output). Exact integer arithmetic, except for
 * price sets only the catalog's calculation understands (per-request fees).
 */
function priceAt(prices: ModelPrice, tokens: TokenClasses, at: Date, reasoningRate?: number): number | null {
  const apart = reasoningRate === undefined ? 0 : tokens.reasoning;
  if (tokens.input > 0 && prices[PRICE_KEYS.input] === undefined) return null;
  if (tokens.output - apart > 0 && prices[PRICE_KEYS.output] === undefined) return null;
  const rates = ratesFor(prices, tokens.input);
  if (rates !== null) return microCost(rates, tokens, reasoningRate);
  const usd = catalogUsd(prices, { ...tokens, output: tokens.output - apart }, at);
  if (usd === null) return null;
  return usdToMicro(usd + (apart * (reasoningRate ?? 0)) / 1e6);
}

export class PriceBook {
  private readonly overrides: CompiledOverride[];
  private readonly lookup: PriceBookOptions['lookup'];
  private readonly cache: LRUCache<string, Resolution>;

  constructor(overrides: readonly PriceOverride[], options: PriceBookOptions = {}) {
    this.overrides = (Array.isArray(overrides) ? overrides : [])
      .filter((o) => typeof o?.provider === 'string' && typeof o.model === 'string')
      .map((o) => ({ provider: compileGlob(o.provider), model: compileGlob(o.model), rates: overrideRates(o) }));
    this.lookup = options.lookup;
    this.cache = new LRUCache({ max: Math.max(1, options.cacheSize ?? DEFAULT_CACHE_SIZE) });
  }

  /**
   * Cost of one exchange at time `at` (default now). `models` are tried in order (response model
   * first, then the requested one) against overrides, then the lookup, then the catalog. Null =
   * unpriced: no price known, a class with tokens has no rate, or the usage has neither input nor
   * output. Never throws.
   */
  cost(provider: string, models: readonly (string | null)[], usage: Usage, at?: Date): Cost | null {
    try {
      const tokens = tokenClasses(usage);
      if (tokens === null) return null;
      const when = at instanceof Date && !Number.isNaN(at.getTime()) ? at : new Date();
      // At most two names (response model, requested model): plain loops, no Set per exchange.
      const names: string[] = [];
      for (const m of models) if (typeof m === 'string' && m.trim() !== '' && !names.includes(m)) names.push(m);
      const resolved = names.map((m) => this.resolve(provider, m));
      const catalog = resolved.find((r) => r.catalog !== null)?.catalog ?? null;

      const override = resolved.find((r) => r.override !== null)?.override;
      if (override) return this.withRates(override, catalog, tokens, when, 'override');
      for (const name of names) {
        const rates = this.callLookup(provider, name);
        if (rates !== null) return this.withRates(rates, catalog, tokens, when, 'lookup');
      }
      if (catalog === null) return null;
      const prices = appliedPrices(catalog.prices, when);
      const microUsd = prices === null ? null : priceAt(prices, tokens, when);
      return microUsd === null ? null : { microUsd, source: 'catalog' };
    } catch {
      return null;
    }
  }

  private resolve(provider: string, model: string): Resolution {
    const key = `${provider}\u0000${model}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const match = this.overrides.find((o) => o.provider.matches(provider) && o.model.matches(model));
    const resolution: Resolution = {
      override: match?.rates ?? null,
      catalog: findCatalogModel(provider, model),
    };
    this.cache.set(key, resolution);
    return resolution;
  }

  private callLookup(provider: string, model: string): PartialRates | null {
    if (this.lookup === undefined) return null;
    try {
      return lookupRates(this.lookup(provider, model));
    } catch {
      return null;
    }
  }

  /** Rates merged over the catalog's (when the model is in it). */
  private withRates(
    rates: PartialRates,
    catalog: CatalogModel | null,
    tokens: TokenClasses,
    at: Date,
    source: Cost['source'],
  ): Cost | null {
    const base = catalog === null ? {} : appliedPrices(catalog.prices, at);
    if (base === null) return null;
    const microUsd = priceAt(mergeRates(base, rates), tokens, at, rates.reasoning);
    return microUsd === null ? null : { microUsd, source };
  }
}
