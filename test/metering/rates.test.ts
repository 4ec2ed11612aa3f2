import { findProvider } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { appliedPrices, catalogProviderId, catalogUsd } from '../../src/metering/genai-prices.js';
import { microCost, ratesFor, type TokenClasses } from '../../src/metering/rates.js';

const PROVIDERS = ['openai', 'azure_openai', 'anthropic', 'aws_bedrock', 'gcp_gemini', 'mistral', 'groq', 'cohere'];
const USAGES: TokenClasses[] = [
  { input: 1000, cacheRead: 0, cacheWrite: 0, output: 200, reasoning: 0 },
  { input: 7, cacheRead: 3, cacheWrite: 2, output: 1, reasoning: 0 },
  { input: 250_000, cacheRead: 100_000, cacheWrite: 20_000, output: 5_000, reasoning: 1_000 },
];
const DATES = [new Date('2025-06-01T03:00:00Z'), new Date('2026-10-01T15:30:00Z')];

describe('exact arithmetic', () => {
  it('agrees with the catalog calculation for every catalog model of our providers', () => {
    let compared = 0;
    const mismatches: string[] = [];
    for (const provider of PROVIDERS) {
      const catalog = findProvider({ providerId: catalogProviderId(provider) ?? '' });
      for (const model of catalog?.models ?? []) {
        for (const at of DATES) {
          const prices = appliedPrices(model.prices, at);
          if (prices === null) continue;
          for (const tokens of USAGES) {
            const rates = ratesFor(prices, tokens.input);
            const usd = catalogUsd(prices, tokens, at);
            if (rates === null || usd === null) continue;
            compared++;
            const ours = microCost(rates, tokens);
            if (Math.abs(ours - usd * 1e6) > 0.5 + 1e-6) mismatches.push(`${model.id}: ${ours} vs ${usd * 1e6}`);
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(1500);
  });

  it('is exact at any size: the same micro-dollars as BigInt arithmetic, half up', () => {
    const big = (rates: Record<string, number | undefined>, t: TokenClasses, reasoning?: number): number => {
      const s = (r: number | undefined) => BigInt(Math.round((r ?? 0) * 1e9));
      const u = (n: number) => BigInt(Math.round(n));
      const read = rates.cacheRead === undefined ? 0 : t.cacheRead;
      const write = rates.cacheWrite === undefined ? 0 : t.cacheWrite;
      const apart = reasoning === undefined ? 0 : t.reasoning;
      const total = u(t.input - read - write) * s(rates.input) + u(read) * s(rates.cacheRead) + u(write) * s(rates.cacheWrite) + u(t.output - apart) * s(rates.output) + u(apart) * s(reasoning);
      return Number((total + 500_000_000n) / 1_000_000_000n);
    };
    let seed = 7;
    const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const size = () => Math.floor(rnd() ** 3 * [10, 1e4, 1e7, 1e10][Math.floor(rnd() * 4)]!);
    const rate = () => (rnd() < 0.2 ? undefined : Math.round(rnd() * [1, 100, 10_000][Math.floor(rnd() * 3)]! * 1e4) / 1e4);
    for (let i = 0; i < 20_000; i++) {
      const rates = { input: rate(), cacheRead: rate(), cacheWrite: rate(), output: rate() };
      const tokens: TokenClasses = { input: size(), cacheRead: size(), cacheWrite: size(), output: size(), reasoning: size() };
      const reasoning = rnd() < 0.5 ? undefined : rate();
      expect(microCost(rates, tokens, reasoning)).toBe(big(rates, tokens, reasoning));
    }
  });

  it('prices reasoning apart only with its own rate', () => {
    const tokens: TokenClasses = { input: 0, cacheRead: 0, cacheWrite: 0, output: 100, reasoning: 40 };
    expect(microCost({ output: 2 }, tokens)).toBe(200);
    expect(microCost({ output: 2 }, tokens, 10)).toBe(60 * 2 + 40 * 10);
  });

  it('picks the tier by total input tokens, cache included, strictly above the tier start', () => {
    const prices = { input_mtok: { base: 1, tiers: [{ start: 200_000, price: 2 }] }, output_mtok: 4 };
    expect(ratesFor(prices, 200_000)).toEqual({ input: 1, output: 4 });
    expect(ratesFor(prices, 200_001)).toEqual({ input: 2, output: 4 });
  });

  it('leaves per-request fees and unknown shapes to the catalog', () => {
    expect(ratesFor({ input_mtok: 1, requests_kcount: 5 }, 10)).toBeNull();
    expect(ratesFor({ input_mtok: { base: 1 } as never }, 10)).toBeNull();
  });
});
