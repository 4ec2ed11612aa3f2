/** The memory ledger: the shared contract, plus forgetting old windows (Redis does it with TTLs). */
import { describe, expect, it } from 'vitest';
import { MemoryLedger } from '../../src/ledger/memory.js';
import { COUNTER_GRACE_MS, SETTLE_GRACE_MS } from '../../src/ledger/rules.js';
import { DAY_MS, HOUR_MS } from '../../src/time.js';
import { item, ledgerContract, requestId, T0 } from './ledger-contract.js';

ledgerContract('memory', async ({ now }) => ({ ledger: new MemoryLedger({ now }), cleanup: async () => {} }));

describe('MemoryLedger expiry', () => {
  it('forgets a calendar counter a grace period after its window ends, and old would-block hours', async () => {
    let t = T0;
    const ledger = new MemoryLedger({ now: () => t, wouldBlockRetentionMs: DAY_MS });
    const id = requestId();
    await ledger.reserve({ requestId: id, leaseMs: 1_000, items: [item('day', { amount: 5, max: 1, enforce: false })], consumer: 'a', nowMs: t });
    await ledger.settle({ requestId: id, actual: { day: 5 } });
    t = T0 + HOUR_MS + COUNTER_GRACE_MS - 1;
    expect((await ledger.read([{ counter: 'day', max: 1 }]))[0]?.used).toBe(5);
    expect(await ledger.wouldBlock(T0, T0 + HOUR_MS)).toHaveLength(1);
    t += 1;
    expect((await ledger.read([{ counter: 'day', max: 1 }]))[0]?.used).toBe(0);
    expect(await ledger.wouldBlock(T0, T0 + HOUR_MS)).toEqual([]);
  });

  it('forgets a finalised request after the settle grace period', async () => {
    let t = T0;
    const ledger = new MemoryLedger({ now: () => t });
    const id = requestId();
    await ledger.reserve({ requestId: id, leaseMs: 1_000, items: [item('c')], consumer: 'a', nowMs: t });
    await ledger.settle({ requestId: id, actual: { c: 1 } });
    t += SETTLE_GRACE_MS - 1;
    await ledger.settle({ requestId: id, actual: { c: 1 } });
    expect((await ledger.read([{ counter: 'c', max: 100 }]))[0]?.used).toBe(1);
    t += 1;
    await ledger.settle({ requestId: id, actual: { c: 1 } });
    expect((await ledger.read([{ counter: 'c', max: 100 }]))[0]?.used).toBe(2);
  });
});
