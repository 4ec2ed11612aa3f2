/**
 * The FOCUS-aligned chargeback export (pure): one row per charge period x consumer x provider x
 * model x token meter x usage source, in the columns of the FinOps FOCUS specification plus `x_`
 * columns of our own.
 *
 * Meters: Input Tokens (input without cache reads and writes), Cached Input Tokens, Cache Write
 * Tokens, Output Tokens. Reasoning tokens are part of Output Tokens, as providers bill them.
 *
 * Money: EffectiveCost is the cost tokenwarden recorded (integer micro-dollars per exchange),
 * apportioned to the meters of its consumer x provider x model x period x source by their list cost
 * (by token counts when a meter has no list price), with the largest-remainder method, so the
 * meters of a group add up to the recorded cost exactly and the whole export to the inventory's
 * cost. ListUnitPrice is the price catalog's USD per token today for that period; ListCost is
 * ConsumedQuantity x ListUnitPrice. Both are exact decimals (no binary rounding).
 */
import type { TokenCounts } from '../../inventory/types.js';
import type { Cell } from '../csv.js';

export type Meter = 'input' | 'cached_input' | 'cache_write' | 'output';
export const METERS: readonly Meter[] = ['input', 'cached_input', 'cache_write', 'output'];

const METER_NAMES: Record<Meter, string> = {
  input: 'Input Tokens',
  cached_input: 'Cached Input Tokens',
  cache_write: 'Cache Write Tokens',
  output: 'Output Tokens',
};

/** List prices in USD per million tokens (= micro-dollars per token); a missing meter has none. */
export type ListPrices = Partial<Record<Meter, number>>;

/** Who sells and who hosts each provider's models (FOCUS ServiceProviderName / HostProviderName). */
const CLOUD_PROVIDERS: Readonly<Record<string, { service: string; host: string }>> = {
  openai: { service: 'OpenAI', host: 'OpenAI' },
  azure_openai: { service: 'Microsoft', host: 'Microsoft' },
  anthropic: { service: 'Anthropic', host: 'Anthropic' },
  aws_bedrock: { service: 'AWS', host: 'AWS' },
  gcp_gemini: { service: 'Google', host: 'Google' },
  gcp_vertex: { service: 'Google', host: 'Google' },
  mistral: { service: 'Mistral AI', host: 'Mistral AI' },
  groq: { service: 'Groq', host: 'Groq' },
  cohere: { service: 'Cohere', host: 'Cohere' },
};
const SELF_HOSTED: Readonly<Record<string, string>> = { ollama: 'Ollama', vllm: 'vLLM', openai_compatible: 'OpenAI-compatible endpoint' };

/** The usage of one consumer x provider x model in one charge period (all APIs). */
export interface FocusGroup {
  periodStart: number;
  periodEnd: number;
  provider: string;
  model: string;
  /** Where a self-hosted model runs (the catalog resource's endpoint), else null. */
  endpoint: string | null;
  consumerId: string;
  consumerName: string | null;
  ownerId: string | null;
  ownerName: string | null;
  labels: Record<string, string>;
  /** Ids of the budgets that apply, or null when not known. */
  budgets: string[] | null;
  reported: TokenCounts;
  estimated: TokenCounts;
  costMicroUsd: number;
  /** The part of costMicroUsd priced from estimated usage. */
  estimatedCostMicroUsd: number;
  unpricedRequests: number;
  prices: ListPrices | null;
}

export const FOCUS_COLUMNS = [
  'ChargePeriodStart',
  'ChargePeriodEnd',
  'ChargeCategory',
  'ServiceCategory',
  'ServiceSubcategory',
  'ServiceProviderName',
  'HostProviderName',
  'SkuId',
  'SkuMeter',
  'ConsumedQuantity',
  'ConsumedUnit',
  'ListUnitPrice',
  'ListCost',
  'EffectiveCost',
  'BillingCurrency',
  'ResourceId',
  'ResourceName',
  'SubAccountId',
  'SubAccountName',
  'Tags',
  'x_UsageSource',
  'x_Unpriced',
] as const;

/** 1e-9 micro-dollars per token: the scale rates.ts computes in, so list prices stay exact. */
const RATE_SCALE = 1e9;
/** Decimal places of USD amounts kept in that scale (1e-9 µUSD = 1e-15 USD). */
const RATE_DECIMALS = 15;

/** Meter quantities: input without its cache reads and writes (never below 0), output with reasoning. */
export function meterQuantities(t: TokenCounts): Record<Meter, number> {
  return {
    input: Math.max(0, t.input - t.cached_input - t.cache_write),
    cached_input: t.cached_input,
    cache_write: t.cache_write,
    output: t.output,
  };
}

/**
 * Splits an integer amount in proportion to non-negative weights, exactly: floor shares, then one
 * unit each to the largest remainders (the first on ties). All-zero weights split evenly.
 */
export function apportion(amount: number, weights: readonly bigint[]): number[] {
  if (weights.length === 0) return [];
  const total = weights.reduce((a, b) => a + b, 0n);
  const w = total > 0n ? weights : weights.map(() => 1n);
  const sum = total > 0n ? total : BigInt(weights.length);
  const abs = BigInt(Math.abs(Math.round(amount)));
  const shares = w.map((x) => (abs * x) / sum);
  let left = abs - shares.reduce((a, b) => a + b, 0n);
  const order = w.map((x, i) => ({ i, rem: (abs * x) % sum })).sort((a, b) => (b.rem > a.rem ? 1 : b.rem < a.rem ? -1 : a.i - b.i));
  for (const { i } of order) {
    if (left === 0n) break;
    shares[i]! += 1n;
    left -= 1n;
  }
  const sign = amount < 0 ? -1 : 1;
  return shares.map((s) => sign * Number(s));
}

/** An exact decimal string of n x 10^-scale, without trailing zeros: (2500n, 9) -> "0.0000025". */
export function decimal(n: bigint, scale: number): string {
  const sign = n < 0n ? '-' : '';
  const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

function scaledRate(prices: ListPrices | null, meter: Meter): bigint | null {
  const rate = prices?.[meter];
  return typeof rate === 'number' && Number.isFinite(rate) && rate >= 0 ? BigInt(Math.round(rate * RATE_SCALE)) : null;
}

export interface FocusRow {
  periodStart: number;
  periodEnd: number;
  serviceProviderName: string;
  hostProviderName: string;
  skuId: string;
  meter: Meter;
  quantity: number;
  /** USD per token, exact decimal; null without a list price. */
  listUnitPrice: string | null;
  listCost: string | null;
  /** Integer micro-dollars (written as decimal USD). */
  effectiveCostMicroUsd: number;
  resourceId: string;
  resourceName: string;
  subAccountId: string | null;
  subAccountName: string | null;
  tags: string;
  usageSource: 'reported' | 'estimated';
  unpriced: boolean;
}

/** FOCUS Tags: the consumer's labels and, under `x_budgets`, the budget ids (comma-separated, `%` and `,` percent-encoded). */
export function focusTags(labels: Record<string, string>, budgets: string[] | null): string {
  const tags: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) tags[k] = labels[k] as string;
  if (budgets !== null && budgets.length > 0) {
    tags.x_budgets = [...budgets]
      .sort()
      .map((id) => id.replaceAll('%', '%25').replaceAll(',', '%2C'))
      .join(',');
  }
  return JSON.stringify(tags);
}

/** The FOCUS rows of one group: per usage source, one row per meter with tokens. */
export function focusRows(g: FocusGroup): FocusRow[] {
  const cloud = CLOUD_PROVIDERS[g.provider];
  const common = {
    periodStart: g.periodStart,
    periodEnd: g.periodEnd,
    serviceProviderName: cloud?.service ?? SELF_HOSTED[g.provider] ?? g.provider,
    hostProviderName: cloud?.host ?? g.endpoint ?? 'self-hosted',
    skuId: `${g.provider}:${g.model}`,
    resourceId: g.consumerId,
    resourceName: g.consumerName ?? g.consumerId,
    subAccountId: g.ownerId,
    subAccountName: g.ownerId === null ? null : (g.ownerName ?? g.ownerId),
    tags: focusTags(g.labels, g.budgets),
    unpriced: g.unpricedRequests > 0,
  };
  const sources = [
    { usageSource: 'reported' as const, tokens: g.reported, cost: g.costMicroUsd - g.estimatedCostMicroUsd },
    { usageSource: 'estimated' as const, tokens: g.estimated, cost: g.estimatedCostMicroUsd },
  ];
  const rows: FocusRow[] = [];
  for (const { usageSource, tokens, cost } of sources) {
    const quantities = meterQuantities(tokens);
    let meters = METERS.filter((m) => quantities[m] > 0);
    // Cost without tokens (a per-request fee): one row keeps the export's cost whole.
    if (meters.length === 0 && cost !== 0) meters = ['input'];
    const rates = meters.map((m) => scaledRate(g.prices, m));
    const listCosts = meters.map((m, i) => (rates[i] === null ? null : BigInt(quantities[m]) * (rates[i] as bigint)));
    const byList = listCosts.every((c) => c !== null) && listCosts.some((c) => c! > 0n);
    const weights = byList ? (listCosts as bigint[]) : meters.map((m) => BigInt(quantities[m]));
    const shares = apportion(cost, weights);
    meters.forEach((meter, i) => {
      const rate = rates[i] as bigint | null;
      rows.push({
        ...common,
        meter,
        quantity: quantities[meter],
        listUnitPrice: rate === null ? null : decimal(rate, RATE_DECIMALS),
        listCost: listCosts[i] == null ? null : decimal(listCosts[i] as bigint, RATE_DECIMALS),
        effectiveCostMicroUsd: shares[i] as number,
        usageSource,
      });
    });
  }
  return rows;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function focusCells(r: FocusRow): Cell[] {
  return [
    iso(r.periodStart),
    iso(r.periodEnd),
    'Usage',
    'AI and Machine Learning',
    'Generative AI',
    r.serviceProviderName,
    r.hostProviderName,
    r.skuId,
    METER_NAMES[r.meter],
    r.quantity,
    'Tokens',
    r.listUnitPrice,
    r.listCost,
    decimal(BigInt(r.effectiveCostMicroUsd), 6),
    'USD',
    r.resourceId,
    r.resourceName,
    r.subAccountId,
    r.subAccountName,
    r.tags,
    r.usageSource,
    r.unpriced ? 'true' : 'false',
  ];
}
