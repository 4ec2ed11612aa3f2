import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { PriceBook, type PriceRates } from '../../src/metering/prices.js';
import { usdToMicro } from '../../src/metering/money.js';
import type { PriceOverride } from '../../src/config/types.js';
import type { Usage } from '../../src/domain.js';
import { fixtureText } from '../support/fixtures.js';

const AT = new Date('2026-01-15T12:00:00Z');

interface Expected {
  provider: string;
  model: string | null;
  response_model: string | null;
  usage: Usage;
}
function fixture(name: string): Expected {
  return JSON.parse(fixtureText(name)).expected as Expected;
}

function usage(partial: Partial<Usage>): Usage {
  return {
    input_tokens: null,
    output_tokens: null,
    total_tokens: null,
    cached_input_tokens: null,
    cache_write_tokens: null,
    reasoning_tokens: null,
    ...partial,
  };
}

/** The catalog's own price for the same exchange, in micro-dollars (unrounded). */
function catalogMicro(model: string, providerId: string, u: Usage, at = AT): number {
  const result = calcPrice(
    {
      input_tokens: u.input_tokens ?? 0,
      cache_read_tokens: u.cached_input_tokens ?? 0,
      cache_write_tokens: u.cache_write_tokens ?? 0,
      output_tokens: u.output_tokens ?? 0,
    },
    model,
    { providerId, timestamp: at },
  );
  if (result === null) throw new Error(`catalog has no ${providerId}/${model}`);
  return result.total_price * 1e6;
}

const book = new PriceBook([]);

describe('catalog prices for fixture exchanges', () => {
  it.each([
    // [fixture, catalog provider, catalog model, hand-computed µUSD]
    // gpt-4o-2024-08-06: 24 x $2.50 + 6 x $10 per Mtok = 60 + 60
    ['openai_chat_completions_stream_include_usage', 'openai', 'gpt-4o-2024-08-06', 120],
    // o4-mini: (2315-1792) x 1.10 + 1792 x 0.275 + 604 x 4.40 (reasoning is output) = 575.3 + 492.8 + 2657.6
    ['openai_chat_completions_reasoning_cached', 'openai', 'o4-mini-2025-04-16', 3726],
    // claude-haiku-4-5 with a cache write: (1948-1536) x 1 + 1536 x 1.25 + 58 x 5
    ['anthropic_messages_stream', 'anthropic', 'claude-haiku-4-5-20251001', 2622],
    // claude-sonnet-4-5 with a cache read: 23 x 3 + 2048 x 0.30 + 31 x 15 = 69 + 614.4 + 465
    ['anthropic_messages_prompt_cache_read', 'anthropic', 'claude-sonnet-4-5-20250929', 1148],
    // gemini-2.5-flash with thoughts (part of output): 14 x 0.30 + 560 x 2.50
    ['gemini_generate_content_thinking', 'google', 'gemini-2.5-flash', 1404],
    // Bedrock inference-profile ARN -> amazon.nova-pro-v1:0: 87 x 0.80 + 54 x 3.20
    ['bedrock_converse_inference_profile_arn', 'aws', 'us.amazon.nova-pro-v1:0', 242],
    // Azure: the deployment name is unknown, the response model is gpt-4o: 45 x 2.50 + 38 x 10
    ['azure_openai_deployment_chat', 'azure', 'gpt-4o-2024-11-20', 493],
  ])('%s', (name, providerId, model, micro) => {
    const e = fixture(name);
    const cost = book.cost(e.provider, [e.response_model, e.model], e.usage, AT);
    expect(cost).toEqual({ microUsd: micro, source: 'catalog' });
    expect(Math.abs(micro - catalogMicro(model, providerId, e.usage))).toBeLessThanOrEqual(0.5);
  });

  it('uses the requested model when the response names none (Bedrock Converse)', () => {
    const e = fixture('bedrock_converse_cache_read');
    expect(e.response_model).toBeNull();
    const micro = catalogMicro('us.anthropic.claude-3-5-sonnet-20241022-v2:0', 'aws', e.usage);
    expect(book.cost(e.provider, [null, e.model], e.usage, AT)?.microUsd).toBe(Math.round(micro));
  });

  it('applies the catalog tiers for long prompts', () => {
    const u = usage({ input_tokens: 300_000, cached_input_tokens: 100_000, output_tokens: 1_000 });
    const cost = book.cost('gcp_gemini', ['gemini-2.5-pro'], u, AT);
    // above 200k tokens every class is at the higher tier: 200k x 2.50 + 100k x 0.25 + 1k x 15
    expect(cost?.microUsd).toBe(540_000);
    expect(Math.abs(540_000 - catalogMicro('gemini-2.5-pro', 'google', u))).toBeLessThanOrEqual(0.5);
  });

  it('uses the price in force at the exchange time', () => {
    const u = usage({ input_tokens: 300_000, output_tokens: 0 });
    const before = book.cost('anthropic', ['claude-opus-4-6'], u, new Date('2026-01-01T00:00:00Z'));
    const after = book.cost('anthropic', ['claude-opus-4-6'], u, new Date('2026-06-01T00:00:00Z'));
    expect(before?.microUsd).toBe(Math.round(catalogMicro('claude-opus-4-6', 'anthropic', u, new Date('2026-01-01'))));
    expect(after?.microUsd).toBe(Math.round(catalogMicro('claude-opus-4-6', 'anthropic', u, new Date('2026-06-01'))));
    expect(before?.microUsd).not.toBe(after?.microUsd);
  });
});

describe('unpriced exchanges', () => {
  it('is null for unknown models and self-hosted providers without an override', () => {
    const u = usage({ input_tokens: 10, output_tokens: 5 });
    expect(book.cost('openai', ['no-such-model-xyz'], u, AT)).toBeNull();
    expect(book.cost('vllm', ['meta-llama/Llama-3.1-8B-Instruct'], u, AT)).toBeNull();
    expect(book.cost('openai_compatible', ['gpt-oss-120b'], u, AT)).toBeNull();
    expect(book.cost('openai', [null, null], u, AT)).toBeNull();
  });

  it('is null when neither input nor output is reported', () => {
    expect(book.cost('openai', ['gpt-4o'], usage({ cached_input_tokens: 10 }), AT)).toBeNull();
  });

  it('prices an embedding (input only) and counts missing classes as 0', () => {
    const cost = book.cost('openai', ['text-embedding-3-large'], usage({ input_tokens: 1000 }), AT);
    expect(cost).toEqual({ microUsd: 130, source: 'catalog' }); // 1000 x $0.13
  });

  it('clamps inconsistent reports instead of failing', () => {
    // 50 cached tokens cannot exceed input: input is taken as 50, all cached.
    const u = usage({ input_tokens: 10, cached_input_tokens: 50, output_tokens: 0 });
    expect(book.cost('openai', ['gpt-4o'], u, AT)).toEqual({ microUsd: 63, source: 'catalog' }); // 50 x 1.25 = 62.5
  });
});

describe('overrides and lookups', () => {
  const overrides: PriceOverride[] = [
    { provider: 'vllm', model: 'meta-llama/*', input_per_mtok: 0.2, output_per_mtok: 0.4 },
    { provider: 'openai', model: 'gpt-4o*', output_per_mtok: 20 },
    { provider: 'azure_openai', model: 'support-*', input_per_mtok: 1, output_per_mtok: 2, reasoning_per_mtok: 50 },
    { provider: '*', model: 'input-only', input_per_mtok: 1 },
  ];
  const priced = new PriceBook(overrides);

  it('prices self-hosted models that an override names', () => {
    const u = usage({ input_tokens: 1000, output_tokens: 500 });
    expect(priced.cost('vllm', ['meta-llama/Llama-3.1-8B-Instruct'], u, AT)).toEqual({ microUsd: 400, source: 'override' });
  });

  it('wins over the catalog and keeps catalog rates for the classes it does not set', () => {
    const u = usage({ input_tokens: 2000, cached_input_tokens: 1500, output_tokens: 300 });
    // input 500 x 2.50 and cached 1500 x 1.25 from the catalog; output 300 x 20 from the override
    expect(priced.cost('openai', ['gpt-4o-2024-08-06'], u, AT)).toEqual({ microUsd: 1250 + 1875 + 6000, source: 'override' });
    expect(book.cost('openai', ['gpt-4o-2024-08-06'], u, AT)).toEqual({ microUsd: 1250 + 1875 + 3000, source: 'catalog' });
  });

  it('matches the requested model when the response model has no override, and prices reasoning apart', () => {
    const u = usage({ input_tokens: 100, output_tokens: 100, reasoning_tokens: 40 });
    // 100 x 1 + 60 x 2 + 40 x 50
    expect(priced.cost('azure_openai', ['gpt-4o-2024-11-20', 'support-gpt4o'], u, AT)).toEqual({
      microUsd: 100 + 120 + 2000,
      source: 'override',
    });
  });

  it('is unpriced when tokens of a class have no rate anywhere', () => {
    expect(priced.cost('ollama', ['input-only'], usage({ input_tokens: 10 }), AT)).toEqual({ microUsd: 10, source: 'override' });
    expect(priced.cost('ollama', ['input-only'], usage({ input_tokens: 10, output_tokens: 1 }), AT)).toBeNull();
  });

  it('tries the lookup after overrides and before the catalog, and survives a throwing lookup', () => {
    const calls: string[] = [];
    const lookup = (provider: string, model: string): PriceRates | null => {
      calls.push(`${provider}/${model}`);
      if (model === 'boom') throw new Error('lookup failed');
      return model.startsWith('gpt-4.1') ? { input: 1, output: 1 } : null;
    };
    const custom = new PriceBook(overrides, { lookup });
    const u = usage({ input_tokens: 1000, output_tokens: 1000 });
    expect(custom.cost('openai', ['gpt-4.1-2025-04-14'], u, AT)).toEqual({ microUsd: 2000, source: 'lookup' });
    expect(custom.cost('openai', ['gpt-4o'], u, AT)?.source).toBe('override');
    expect(custom.cost('openai', ['boom', 'gpt-4o-mini'], u, AT)?.source).toBe('override');
    expect(custom.cost('openai', ['boom', 'o3-mini'], u, AT)).toEqual({ microUsd: 5500, source: 'catalog' });
    expect(calls).not.toContain('openai/gpt-4o');
  });
});

describe('money', () => {
  it('rounds once per exchange, half up', () => {
    expect(usdToMicro(0.0000025)).toBe(3); // 2.4999999999999996 in binary
    expect(usdToMicro(0.0000024999)).toBe(2);
    expect(usdToMicro(0.0000015)).toBe(2);
    expect(usdToMicro(1.2345675)).toBe(1_234_568);
    // two classes of 0.4 µUSD each: rounded once (0.8 -> 1), not per class (0 + 0)
    const u = usage({ input_tokens: 4, cached_input_tokens: 0, output_tokens: 1 });
    const cheap = new PriceBook([{ provider: '*', model: 'cheap', input_per_mtok: 0.1, output_per_mtok: 0.4 }]);
    expect(cheap.cost('vllm', ['cheap'], u, AT)?.microUsd).toBe(1);
  });

});
