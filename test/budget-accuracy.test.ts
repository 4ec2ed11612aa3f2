/**
 * The accuracy claim, measured the way bench/budget-accuracy.ts prints it: three `tokenwarden serve`
 * processes share one redis-server, the budget is spent down to its last few requests, then 100
 * requests race for what is left. With exact estimates (max_tokens given and spent in full) nothing
 * may be admitted beyond the limit, and nothing the budget could still afford may be refused.
 */
import { describe, expect, it } from 'vitest';
import { runBudgetAccuracy } from '../bench/budget-accuracy.js';

describe('budget accuracy across sidecar processes', () => {
  it('3 sidecars, 100 concurrent requests at a nearly exhausted budget: no overshoot, no false block', async () => {
    const limit = 1000;
    const perRequest = 10;
    const report = await runBudgetAccuracy({ sidecars: 3, concurrent: 100, limit, perRequest });

    expect(report.limit).toBe(limit);
    expect(report.overshoot).toBe(0);
    expect(report.falseBlocks).toBe(0);
    // Every request was answered: admitted or refused by the budget, nothing else.
    expect(report.admitted + report.rejected).toBe(100);
    // The budget ends exactly spent: whatever it could afford was admitted.
    expect(report.admittedSpend).toBe(report.prespent + report.admitted * perRequest);
    expect(report.admittedSpend).toBe(limit);
    expect(report.rejected).toBeGreaterThan(0);
  }, 60_000);
});
