/**
 * The BudgetLedger contract: one suite run against every implementation (memory and Redis). Each
 * test gets a fresh, empty ledger and a clock it controls (reserve is told the time; settle, release
 * and read ask the ledger's clock).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BudgetLedger, LedgerItem, ReserveRequest } from '../../src/governance/ledger.js';
import { HOUR_MS } from '../../src/time.js';

export interface LedgerUnderTest {
  ledger: BudgetLedger;
  cleanup(): Promise<void>;
}

export type MakeLedger = (opts: { now: () => number }) => Promise<LedgerUnderTest>;

/** 2025-01-15T10:00:00Z, an hour boundary. */
export const T0 = Date.UTC(2025, 0, 15, 10);
const SEC = 1_000;
const LEASE_MS = 30 * SEC;

let seq = 0;
export const requestId = (): string => `req-${process.pid}-${++seq}`;

/** An enforce item of a calendar window ending in an hour, amount 1, with overrides. */
export function item(counter: string, over: Partial<LedgerItem> = {}): LedgerItem {
  return { counter, budgetId: `budget-of-${counter}`, max: 100, amount: 1, enforce: true, windowEndMs: T0 + HOUR_MS, ...over };
}

export function ledgerContract(name: string, make: MakeLedger): void {
  describe(`BudgetLedger contract: ${name}`, () => {
    let t = T0;
    let current: LedgerUnderTest | null = null;

    async function fresh(): Promise<BudgetLedger> {
      t = T0;
      current = await make({ now: () => t });
      return current.ledger;
    }

    afterEach(async () => {
      await current?.cleanup();
      current = null;
    });

    const request = (items: LedgerItem[], over: Partial<ReserveRequest> = {}): ReserveRequest => ({
      requestId: requestId(),
      leaseMs: LEASE_MS,
      items,
      consumer: 'alice',
      nowMs: t,
      ...over,
    });

    const usage = async (ledger: BudgetLedger, counter: string, max = 100): Promise<{ used: number; reserved: number }> => {
      const [state] = await ledger.read([{ counter, max }]);
      return { used: state!.used, reserved: state!.reserved };
    };

    it('admits or refuses all counters together: enforce items refuse, monitor items only report', async () => {
      const ledger = await fresh();
      const first = await ledger.reserve(
        request([item('org', { max: 100, amount: 20 }), item('team', { max: 10, amount: 20, enforce: false }), item('model', { max: 50, amount: 20 })]),
      );
      expect(first).toEqual({
        admitted: true,
        items: [
          { counter: 'org', used: 0, reserved: 20, max: 100, exceeded: false },
          { counter: 'team', used: 0, reserved: 20, max: 10, exceeded: true },
          { counter: 'model', used: 0, reserved: 20, max: 50, exceeded: false },
        ],
      });
      // model (enforce) cannot take 40 more: nothing is reserved anywhere.
      const second = await ledger.reserve(
        request([item('org', { max: 100, amount: 40 }), item('team', { max: 10, amount: 40, enforce: false }), item('model', { max: 50, amount: 40 })]),
      );
      expect(second.admitted).toBe(false);
      expect(second.items.map((i) => [i.counter, i.reserved, i.exceeded])).toEqual([
        ['org', 20, false],
        ['team', 20, true],
        ['model', 20, true],
      ]);
      expect(await usage(ledger, 'org')).toEqual({ used: 0, reserved: 20 });
      expect(await usage(ledger, 'team')).toEqual({ used: 0, reserved: 20 });
      expect(await usage(ledger, 'model')).toEqual({ used: 0, reserved: 20 });
    });

    it('admits an exact fit at the limit and refuses one more', async () => {
      const ledger = await fresh();
      const a = request([item('c', { amount: 60 })]);
      await ledger.reserve(a);
      await ledger.settle({ requestId: a.requestId, actual: { c: 60 } });
      expect((await ledger.reserve(request([item('c', { amount: 30 })]))).admitted).toBe(true);
      // used 60 + reserved 30 + 11 > 100
      const over = await ledger.reserve(request([item('c', { amount: 11 })]));
      expect(over).toEqual({ admitted: false, items: [{ counter: 'c', used: 60, reserved: 30, max: 100, exceeded: true }] });
      // used 60 + reserved 30 + 10 == 100
      expect(await ledger.reserve(request([item('c', { amount: 10 })]))).toEqual({
        admitted: true,
        items: [{ counter: 'c', used: 60, reserved: 40, max: 100, exceeded: false }],
      });
      expect((await ledger.reserve(request([item('c', { amount: 1 })]))).admitted).toBe(false);
      expect((await ledger.reserve(request([item('c', { amount: 0 })]))).admitted).toBe(true);
    });

    it('settles with less than reserved and frees the difference', async () => {
      const ledger = await fresh();
      const a = request([item('c', { amount: 80 }), item('d', { amount: 80, max: 1_000 })]);
      await ledger.reserve(a);
      expect((await ledger.reserve(request([item('c', { amount: 30 })]))).admitted).toBe(false);
      // d is missing from actual: its reservation is freed with no usage.
      await ledger.settle({ requestId: a.requestId, actual: { c: 30 } });
      expect(await usage(ledger, 'c')).toEqual({ used: 30, reserved: 0 });
      expect(await usage(ledger, 'd', 1_000)).toEqual({ used: 0, reserved: 0 });
      expect((await ledger.reserve(request([item('c', { amount: 70 })]))).admitted).toBe(true);
    });

    it('counts a repeated settle once, and a settle after a release not at all', async () => {
      const ledger = await fresh();
      const a = request([item('c', { amount: 10 })]);
      await ledger.reserve(a);
      await ledger.settle({ requestId: a.requestId, actual: { c: 12 } });
      await ledger.settle({ requestId: a.requestId, actual: { c: 12 } });
      await ledger.release(a.requestId);
      expect(await usage(ledger, 'c')).toEqual({ used: 12, reserved: 0 });

      const b = request([item('c', { amount: 10 })]);
      await ledger.reserve(b);
      await ledger.release(b.requestId);
      await ledger.release(b.requestId);
      expect(await usage(ledger, 'c')).toEqual({ used: 12, reserved: 0 });
      await ledger.settle({ requestId: b.requestId, actual: { c: 5 } });
      expect(await usage(ledger, 'c')).toEqual({ used: 12, reserved: 0 });
    });

    it('reserves once when the same request is reserved again (a retried call)', async () => {
      const ledger = await fresh();
      const a = request([item('c', { amount: 40 })]);
      await ledger.reserve(a);
      const again = await ledger.reserve(a);
      expect(again).toEqual({ admitted: true, items: [{ counter: 'c', used: 0, reserved: 40, max: 100, exceeded: false }] });
      expect(await usage(ledger, 'c')).toEqual({ used: 0, reserved: 40 });
    });

    it('frees an expired lease; a settle after expiry still counts its usage once', async () => {
      const ledger = await fresh();
      const a = request([item('c', { amount: 100 })]);
      await ledger.reserve(a);
      t += LEASE_MS - 1;
      expect((await ledger.reserve(request([item('c')]))).admitted).toBe(false);
      expect(await usage(ledger, 'c')).toEqual({ used: 0, reserved: 100 });
      t += 1;
      expect(await usage(ledger, 'c')).toEqual({ used: 0, reserved: 0 });
      const b = request([item('c', { amount: 50 })]);
      expect((await ledger.reserve(b)).admitted).toBe(true);
      // The expired request did spend: its late settle counts, once, and leaves b's lease alone.
      await ledger.settle({ requestId: a.requestId, actual: { c: 40 } });
      await ledger.settle({ requestId: a.requestId, actual: { c: 40 } });
      expect(await usage(ledger, 'c')).toEqual({ used: 40, reserved: 50 });
      expect((await ledger.reserve(request([item('c', { amount: 11 })]))).admitted).toBe(false);
      expect((await ledger.reserve(request([item('c', { amount: 10 })]))).admitted).toBe(true);
    });

    it('counts the usage of a request that reserved nothing (admitted on a store error) while its window lasts', async () => {
      const ledger = await fresh();
      const calendar = { windowEndMs: T0 + HOUR_MS };
      const rolling = { rollingMs: 60 * SEC };
      // No reservation ever made these counters (the store was down at admission).
      await ledger.settle({ requestId: requestId(), actual: { c: 30, tpm: 7, late: 5 }, windows: { c: calendar, tpm: rolling, late: { windowEndMs: T0 - 2 * 24 * HOUR_MS } } });
      expect(await usage(ledger, 'c')).toEqual({ used: 30, reserved: 0 });
      expect((await ledger.read([{ counter: 'tpm', max: 60, rollingMs: 60 * SEC }]))[0]!.used).toBe(7);
      // A window long over counts nothing: its counter would have expired.
      expect(await usage(ledger, 'late')).toEqual({ used: 0, reserved: 0 });
      expect((await ledger.reserve(request([item('c', { amount: 71 })]))).admitted).toBe(false);
      expect((await ledger.reserve(request([item('c', { amount: 70 })]))).admitted).toBe(true);
      // Without the windows such usage has nowhere to go (the ledger does not know the window).
      await ledger.settle({ requestId: requestId(), actual: { other: 9 } });
      expect(await usage(ledger, 'other')).toEqual({ used: 0, reserved: 0 });
      t = T0 + 70 * SEC;
      expect((await ledger.read([{ counter: 'tpm', max: 60, rollingMs: 60 * SEC }]))[0]!.used).toBe(0);
    });

    it('sums only the sub-buckets of the last rolling window', async () => {
      const ledger = await fresh();
      // 60 s window: six 10 s sub-buckets.
      const rolling = (over: Partial<LedgerItem> = {}): LedgerItem => item('tpm', { rollingMs: 60 * SEC, windowEndMs: undefined, max: 60, ...over });
      const spend = async (n: number): Promise<void> => {
        const r = request([rolling({ amount: n })]);
        expect((await ledger.reserve(r)).admitted).toBe(true);
        await ledger.settle({ requestId: r.requestId, actual: { tpm: n } });
      };
      const used = async (): Promise<number> => (await ledger.read([{ counter: 'tpm', max: 60, rollingMs: 60 * SEC }]))[0]!.used;
      await spend(30);
      t = T0 + 25 * SEC;
      await spend(20);
      expect(await used()).toBe(50);
      expect((await ledger.reserve(request([rolling({ amount: 11 })]))).admitted).toBe(false);
      // Still within the sub-bucket that overlaps the last 60 s: the spend at T0 counts.
      t = T0 + 69 * SEC;
      expect(await used()).toBe(50);
      t = T0 + 70 * SEC;
      expect(await used()).toBe(20);
      expect((await ledger.reserve(request([rolling({ amount: 40 })]))).admitted).toBe(true);
      t = T0 + 90 * SEC;
      expect(await used()).toBe(0);
    });

    it('counts would-block events per budget, consumer and hour, monitor and enforce alike', async () => {
      const ledger = await fresh();
      const monitor = item('m', { budgetId: 'team-a', max: 5, amount: 10, enforce: false });
      const enforce = item('e', { budgetId: 'org', max: 5, amount: 10 });
      await ledger.reserve(request([monitor]));
      await ledger.reserve(request([monitor]));
      await ledger.reserve(request([item('fits', { budgetId: 'team-a' })]));
      t = T0 + HOUR_MS + 5 * SEC;
      await ledger.reserve(request([monitor, enforce], { consumer: 'bob|x' }));
      t = T0 + 2 * HOUR_MS;
      expect(await ledger.wouldBlock(T0, T0 + 2 * HOUR_MS)).toEqual([
        { budgetId: 'team-a', consumer: 'alice', hourStart: T0, count: 2 },
        { budgetId: 'org', consumer: 'bob|x', hourStart: T0 + HOUR_MS, count: 1 },
        { budgetId: 'team-a', consumer: 'bob|x', hourStart: T0 + HOUR_MS, count: 1 },
      ]);
      expect(await ledger.wouldBlock(T0 + 1, T0 + 2 * HOUR_MS)).toHaveLength(2);
      expect(await ledger.wouldBlock(T0, T0 + HOUR_MS)).toHaveLength(1);
    });

    it('never overshoots under concurrent reserves', async () => {
      const ledger = await fresh();
      const results = await Promise.all(
        Array.from({ length: 200 }, () => ledger.reserve(request([item('hot', { amount: 1 }), item('cold', { amount: 1, max: 1_000 })]))),
      );
      expect(results.filter((r) => r.admitted)).toHaveLength(100);
      expect(await usage(ledger, 'hot')).toEqual({ used: 0, reserved: 100 });
      expect(await usage(ledger, 'cold', 1_000)).toEqual({ used: 0, reserved: 100 });
    });

    it('reads unknown counters as empty and flags counters over their limit', async () => {
      const ledger = await fresh();
      expect(await ledger.read([])).toEqual([]);
      const a = request([item('c', { amount: 10, enforce: false, max: 5 })]);
      await ledger.reserve(a);
      await ledger.settle({ requestId: a.requestId, actual: { c: 8 } });
      expect(await ledger.read([{ counter: 'c', max: 8 }, { counter: 'c', max: 7 }, { counter: 'nothing', max: 0 }])).toEqual([
        { counter: 'c', used: 8, reserved: 0, max: 8, exceeded: false },
        { counter: 'c', used: 8, reserved: 0, max: 7, exceeded: true },
        { counter: 'nothing', used: 0, reserved: 0, max: 0, exceeded: false },
      ]);
    });

    it('rejects amounts that are not non-negative integers', async () => {
      const ledger = await fresh();
      await expect(ledger.reserve(request([item('c', { amount: 1.5 })]))).rejects.toThrow(/integer/);
      await expect(ledger.reserve(request([item('c'), item('c')]))).rejects.toThrow(/twice/);
      await expect(ledger.settle({ requestId: 'x', actual: { c: -1 } })).rejects.toThrow(/integer/);
      expect(await usage(ledger, 'c')).toEqual({ used: 0, reserved: 0 });
    });
  });
}
