/**
 * The bundled @pydantic/genai-prices catalog: which catalog provider and model an exchange maps to,
 * and the catalog's own price arithmetic (tiers by prompt size, date and time-of-day prices).
 */

import { calcPrice, type ModelInfo, type ModelPrice, type Provider } from '@pydantic/genai-prices';

/** Our provider names to catalog provider ids; self-hosted and unknown providers are not in it. */
const CATALOG_PROVIDER: Readonly<Record<string, string>> = {
  openai: 'openai',
  azure_openai: 'azure', // falls back to the catalog's openai, anthropic, deepseek... models
  anthropic: 'anthropic',
  aws_bedrock: 'aws',
  gcp_gemini: 'google',
  gcp_vertex: 'google', // also serves Claude (the catalog falls back to anthropic)
  mistral: 'mistral',
  groq: 'groq',
  cohere: 'cohere',
};

export function catalogProviderId(provider: string): string | null {
  return Object.hasOwn(CATALOG_PROVIDER, provider) ? (CATALOG_PROVIDER[provider] ?? null) : null;
}

/**
 * The model name the catalog matches on. Bedrock ARNs (`arn:aws:bedrock:...:inference-profile/
 * us.anthropic.claude-...`, `...:foundation-model/...`) keep their last path segment (opaque
 * application inference profiles stay unpriced); Google resource paths (`publishers/google/models/x`,
 * `models/x`) keep the model id. Cross-region prefixes (`us.`, `eu.`) and dates are matched by the
 * catalog itself.
 */
export function catalogModelName(provider: string, model: string): string {
  const name = model.trim();
  const slash = name.lastIndexOf('/');
  if (slash === -1) return name;
  if (provider === 'aws_bedrock' && name.startsWith('arn:')) return name.slice(slash + 1);
  if (provider === 'gcp_gemini' || provider === 'gcp_vertex') return name.slice(slash + 1);
  return name;
}

/** Token classes in the catalog's terms: `input` includes cache reads and writes. */
export interface CatalogTokens {
  input: number;
  cacheRead: number;
  cacheWrite: number;
  output: number;
}

/** A resolved catalog model: priced later without repeating the (costly) model lookup. */
export interface CatalogModel {
  /** Catalog model id, e.g. `gpt-4o`. */
  id: string;
  prices: ModelInfo['prices'];
}

const PRICE_MODEL = 'priced-model';

/** Finds the catalog model for `model` at `provider`, or null. Never throws. */
export function findCatalogModel(provider: string, model: string): CatalogModel | null {
  const providerId = catalogProviderId(provider);
  if (providerId === null || model.trim() === '') return null;
  try {
    const found = calcPrice({}, catalogModelName(provider, model), { providerId });
    return found ? { id: found.model.id, prices: found.model.prices } : null;
  } catch {
    return null;
  }
}

function calcWith(prices: ModelInfo['prices'], usage: Record<string, number>, at: Date) {
  const provider: Provider = {
    id: 'tokenwarden',
    name: 'tokenwarden',
    api_pattern: '',
    models: [{ id: PRICE_MODEL, match: { equals: PRICE_MODEL }, prices }],
  };
  try {
    return calcPrice(usage, PRICE_MODEL, { provider, timestamp: at });
  } catch {
    return null;
  }
}

/** The price set in force at `at` (date and time-of-day conditions resolved by the catalog). */
export function appliedPrices(prices: ModelInfo['prices'], at: Date): ModelPrice | null {
  if (!Array.isArray(prices)) return prices;
  return calcWith(prices, {}, at)?.model_price ?? null;
}

/**
 * USD for `tokens` at `prices` computed by the catalog itself (tiers by prompt size, per-request
 * fees). Null if the catalog rejects the data. Costs 10-30 µs: used only where flat arithmetic
 * (rates.ts) does not apply.
 */
export function catalogUsd(prices: ModelPrice, tokens: CatalogTokens, at: Date): number | null {
  const usage = {
    input_tokens: tokens.input,
    cache_read_tokens: tokens.cacheRead,
    cache_write_tokens: tokens.cacheWrite,
    output_tokens: tokens.output,
  };
  return calcWith(prices, usage, at)?.total_price ?? null;
}
