/**
 * The FOCUS export rows (pure): columns, meters, list prices, exact apportioning of the recorded
 * cost, unpriced and estimated usage, provider names, tags, and CSV escaping read back.
 */
import { describe, expect, it } from 'vitest';
import { csvRow } from '../src/admin/csv.js';
import { apportion, decimal, FOCUS_COLUMNS, focusCells, focusRows, focusTags, type FocusGroup } from '../src/admin/showback/focus.js';
import { emptyTokens, type TokenCounts } from '../src/inventory/types.js';
import { parseCsv } from './support/csv.js';

const JAN = Date.UTC(2025, 0, 1);
const FEB = Date.UTC(2025, 1, 1);
const GPT_4O = { input: 2.5, cached_input: 1.25, cache_write: 2.5, output: 10 };

function group(over: Partial<FocusGroup> = {}): FocusGroup {
  return {
    periodStart: JAN,
    periodEnd: FEB,
    provider: 'openai',
    model: 'gpt-4o',
    endpoint: null,
    consumerId: 'spiffe://prod/ns/payments/sa/api',
    consumerName: 'Payments API',
    ownerId: 'payments',
    ownerName: 'Payments',
    labels: {},
    budgets: null,
    reported: emptyTokens(),
    estimated: emptyTokens(),
    costMicroUsd: 0,
    estimatedCostMicroUsd: 0,
    unpricedRequests: 0,
    prices: GPT_4O,
    ...over,
  };
}

const tokens = (t: Partial<TokenCounts>): TokenCounts => ({ ...emptyTokens(), ...t });


function asRecords(g: FocusGroup): Record<string, string>[] {
  const [header, ...rows] = parseCsv(csvRow(FOCUS_COLUMNS) + focusRows(g).map((r) => csvRow(focusCells(r))).join(''));
  return rows.map((cells) => Object.fromEntries(header!.map((h, i) => [h, cells[i]!])));
}

describe('FOCUS rows', () => {
  it('writes one row per meter with tokens, in the FOCUS columns, with exact list prices', () => {
    // 1000 input of which 200 cache reads and 100 cache writes; 500 output of which 100 reasoning.
    const rows = asRecords(group({ reported: tokens({ input: 1000, cached_input: 200, cache_write: 100, output: 500, reasoning: 100 }), costMicroUsd: 7_250 }));
    expect(Object.keys(rows[0]!)).toEqual([...FOCUS_COLUMNS]);
    expect(rows.map((r) => [r.SkuMeter, r.ConsumedQuantity, r.ListUnitPrice, r.ListCost, r.EffectiveCost])).toEqual([
      ['Input Tokens', '700', '0.0000025', '0.00175', '0.00175'],
      ['Cached Input Tokens', '200', '0.00000125', '0.00025', '0.00025'],
      ['Cache Write Tokens', '100', '0.0000025', '0.00025', '0.00025'],
      ['Output Tokens', '500', '0.00001', '0.005', '0.005'],
    ]);
    expect(rows[0]).toMatchObject({
      ChargePeriodStart: '2025-01-01T00:00:00.000Z',
      ChargePeriodEnd: '2025-02-01T00:00:00.000Z',
      ChargeCategory: 'Usage',
      ServiceCategory: 'AI and Machine Learning',
      ServiceSubcategory: 'Generative AI',
      ServiceProviderName: 'OpenAI',
      HostProviderName: 'OpenAI',
      SkuId: 'openai:gpt-4o',
      ConsumedUnit: 'Tokens',
      BillingCurrency: 'USD',
      ResourceId: 'spiffe://prod/ns/payments/sa/api',
      ResourceName: 'Payments API',
      SubAccountId: 'payments',
      SubAccountName: 'Payments',
      Tags: '{}',
      x_UsageSource: 'reported',
      x_Unpriced: 'false',
    });
  });

  it('apportions the recorded cost by list cost so the meters add up to it exactly', () => {
    // Recorded 1001 µUSD where the list says 7250: shares follow the list, the sum stays 1001.
    const g = group({ reported: tokens({ input: 1000, cached_input: 200, cache_write: 100, output: 500 }), costMicroUsd: 1_001 });
    const rows = focusRows(g);
    expect(rows.map((r) => r.effectiveCostMicroUsd)).toEqual([242, 35, 34, 690]);
    expect(rows.reduce((n, r) => n + r.effectiveCostMicroUsd, 0)).toBe(1_001);
  });

  it('splits any amount over any weights exactly (largest remainder)', () => {
    let seed = 7;
    const next = (n: number): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n;
    for (let i = 0; i < 500; i++) {
      const weights = Array.from({ length: 1 + next(4) }, () => BigInt(next(3) === 0 ? 0 : next(1_000_000)));
      const amount = next(10_000_000);
      const shares = apportion(amount, weights);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(amount);
      const total = Number(weights.reduce((a, b) => a + b, 0n));
      shares.forEach((s, j) => {
        const exact = total === 0 ? amount / weights.length : (amount * Number(weights[j])) / total;
        expect(Math.abs(s - exact)).toBeLessThan(1);
      });
    }
    expect(apportion(-10, [1n, 1n, 1n])).toEqual([-4, -3, -3]);
  });

  it('leaves list prices empty for unpriced models, splits the cost by tokens and flags unpriced usage', () => {
    const rows = asRecords(
      group({ provider: 'vllm', model: 'llama-3-70b', endpoint: 'gpu-cluster-a', prices: null, reported: tokens({ input: 300, output: 100 }), costMicroUsd: 9, unpricedRequests: 2 }),
    );
    expect(rows.map((r) => [r.SkuMeter, r.ListUnitPrice, r.ListCost, r.EffectiveCost, r.x_Unpriced])).toEqual([
      ['Input Tokens', '', '', '0.000007', 'true'],
      ['Output Tokens', '', '', '0.000002', 'true'],
    ]);
    expect(rows[0]).toMatchObject({ ServiceProviderName: 'vLLM', HostProviderName: 'gpu-cluster-a', SkuId: 'vllm:llama-3-70b' });
    // A meter without a price of its own makes the split follow tokens for the whole group.
    const partial = focusRows(group({ prices: { input: 1 }, reported: tokens({ input: 100, output: 300 }), costMicroUsd: 4 }));
    expect(partial.map((r) => [r.meter, r.listUnitPrice, r.effectiveCostMicroUsd])).toEqual([
      ['input', '0.000001', 1],
      ['output', null, 3],
    ]);
  });

  it('writes estimated usage in rows of its own with the cost priced from estimates', () => {
    const rows = asRecords(group({ reported: tokens({ input: 100 }), estimated: tokens({ input: 40, output: 10 }), costMicroUsd: 450, estimatedCostMicroUsd: 200 }));
    expect(rows.map((r) => [r.x_UsageSource, r.SkuMeter, r.ConsumedQuantity, r.EffectiveCost])).toEqual([
      ['reported', 'Input Tokens', '100', '0.00025'],
      ['estimated', 'Input Tokens', '40', '0.0001'],
      ['estimated', 'Output Tokens', '10', '0.0001'],
    ]);
  });

  it('keeps a cost without tokens in one row, and writes nothing for a group without either', () => {
    expect(focusRows(group({ costMicroUsd: 5 })).map((r) => [r.meter, r.quantity, r.effectiveCostMicroUsd, r.usageSource])).toEqual([['input', 0, 5, 'reported']]);
    expect(focusRows(group())).toEqual([]);
  });

  it('names service and host providers; unowned consumers have empty sub-account columns', () => {
    const base = { reported: tokens({ output: 1 }) };
    const names = (g: Partial<FocusGroup>) => {
      const [r] = asRecords(group({ ...base, ...g }));
      return [r!.ServiceProviderName, r!.HostProviderName, r!.SubAccountId, r!.SubAccountName, r!.ResourceName];
    };
    expect(names({ provider: 'azure_openai' })).toEqual(['Microsoft', 'Microsoft', 'payments', 'Payments', 'Payments API']);
    expect(names({ provider: 'aws_bedrock', ownerName: null })).toEqual(['AWS', 'AWS', 'payments', 'payments', 'Payments API']);
    expect(names({ provider: 'my_gateway', ownerId: null, ownerName: null, consumerName: null })).toEqual(['my_gateway', 'self-hosted', '', '', 'spiffe://prod/ns/payments/sa/api']);
  });

  it('tags with the labels and the budget ids (commas in ids encoded)', () => {
    expect(JSON.parse(focusTags({ team: 'pay', env: 'prod' }, ['team-pay', 'per-consumer:a,b']))).toEqual({ env: 'prod', team: 'pay', x_budgets: 'per-consumer:a%2Cb,team-pay' });
    expect(focusTags({ team: 'pay' }, null)).toBe('{"team":"pay"}');
    expect(focusTags({}, [])).toBe('{}');
  });

  it('escapes untrusted names: commas, quotes, line breaks and spreadsheet formulas', () => {
    const evil = '=HYPERLINK("http://x","y")';
    const [row] = asRecords(
      group({ consumerId: evil, consumerName: 'a,"b"\nc', ownerId: '+owner', ownerName: '@name', model: '-gpt', labels: { note: '=1+1' }, reported: tokens({ output: 1 }) }),
    );
    expect(row).toMatchObject({
      ResourceId: `'${evil}`,
      ResourceName: 'a,"b"\nc',
      SubAccountId: "'+owner",
      SubAccountName: "'@name",
      SkuId: 'openai:-gpt',
      Tags: '{"note":"=1+1"}',
    });
  });

  it('writes exact decimals', () => {
    expect(decimal(2_500n, 9)).toBe('0.0000025');
    expect(decimal(1_234_567n, 6)).toBe('1.234567');
    expect(decimal(3_000_000n, 6)).toBe('3');
    expect(decimal(-5n, 2)).toBe('-0.05');
    expect(decimal(0n, 6)).toBe('0');
  });
});
