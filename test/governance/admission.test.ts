/** Admission and settlement against the real policy set, windows and memory ledger. */
import { describe, expect, it, vi } from 'vitest';
import type { Usage } from '../../src/domain.js';
import { Admitter, SEEN_FRESH_MS, type AdmitterDeps, type StoreErrorEvent } from '../../src/governance/admission.js';
import { PolicySet } from '../../src/governance/policy-set.js';
import type { Budget, Limit, RequestSubject } from '../../src/governance/types.js';
import { counterKey, windowBounds } from '../../src/governance/windows.js';
import { MemoryLedger } from '../../src/ledger/memory.js';
import type { ReserveRequest, ReserveResult } from '../../src/governance/ledger.js';

const T0 = Date.UTC(2025, 0, 15, 10, 0, 0);
const DAY: Limit['window'] = { kind: 'day', timezone: 'Europe/Paris', weekStart: 1 };
const SUBJECT: RequestSubject = { consumer: 'app-1', labels: { team: 'search' }, provider: 'openai', model: 'gpt-4o', api: 'chat_completions' };

const limit = (metric: Limit['metric'], max: number, window: Limit['window'] = DAY): Limit => ({ metric, max, window });

function budget(id: string, limits: Limit[], extra: Partial<Budget> = {}): Budget {
  return { id, selector: {}, limits, mode: 'enforce', onStoreError: 'open', stopStreams: false, source: 'config', ...extra };
}

/** 2 µUSD per input token, 10 per output token; `mystery` has no price. */
function price(_provider: string, model: string, usage: Usage): number | null {
  return model === 'mystery' ? null : (usage.input_tokens ?? 0) * 2 + (usage.output_tokens ?? 0) * 10;
}

const usage = (input: number | null, output: number | null, total: number | null = null): Usage => ({
  input_tokens: input,
  output_tokens: output,
  total_tokens: total,
  cached_input_tokens: null,
  cache_write_tokens: null,
  reasoning_tokens: null,
});

/** The memory ledger, recording each reserve call. */
class RecordingLedger extends MemoryLedger {
  readonly reserves: ReserveRequest[] = [];
  override async reserve(req: ReserveRequest): Promise<ReserveResult> {
    this.reserves.push(req);
    return super.reserve(req);
  }
}

let seq = 0;
/** `ledger`: a ledger to use instead of a fresh recording one (counters are read from it). */
function setup(budgets: Budget[], deps: Partial<AdmitterDeps> = {}, ledger: MemoryLedger = new RecordingLedger({ now: () => T0 })) {
  const errors: StoreErrorEvent[] = [];
  const policies = new PolicySet(budgets, []);
  const admitter = new Admitter({
    policies: () => policies,
    ledger,
    price,
    defaultMaxOutputTokens: 100,
    leaseMs: 60_000,
    ledgerTimeoutMs: 50,
    onStoreError: (e) => errors.push(e),
    ...deps,
  });
  const reserves: ReserveRequest[] = ledger instanceof RecordingLedger ? ledger.reserves : [];
  const admit = (promptTokens: number, maxOutputTokens: number | null, subject: RequestSubject = SUBJECT) =>
    admitter.admit({ requestId: `req-${++seq}`, subject, promptTokens, maxOutputTokens, nowMs: T0 });
  /** used/reserved of limit `index` of `b` now. */
  const counter = async (b: Budget, index = 0) => {
    const l = b.limits[index]!;
    const [state] = await ledger.read([{ counter: counterKey(b.id, index, l.window, T0), max: l.max, rollingMs: l.window.kind === 'rolling' ? l.window.seconds * 1000 : undefined }]);
    return { used: state!.used, reserved: state!.reserved };
  };
  return { ledger, reserves, admitter, admit, counter, errors };
}

describe('Admitter.admit', () => {
  it('estimates each metric: prompt, max output (or the per-model default), their sum, price, one request', async () => {
    const all = budget('all', [limit('input_tokens', 1e6), limit('output_tokens', 1e6), limit('total_tokens', 1e6), limit('cost_micro_usd', 1e9), limit('requests', 1e6)]);
    const defaults = vi.fn((_provider: string, model: string) => (model === 'gpt-4o' ? 700 : 1));
    const { admit, reserves } = setup([all], { defaultMaxOutputTokens: defaults });

    const given = await admit(120, 30);
    expect(given.admitted).toBe(true);
    expect(given.unpriced).toBe(false);
    expect(reserves[0]!.items.map((i) => i.amount)).toEqual([120, 30, 150, 120 * 2 + 30 * 10, 1]);

    await admit(120, null);
    expect(defaults).toHaveBeenCalledWith('openai', 'gpt-4o');
    expect(reserves[1]!.items.map((i) => i.amount)).toEqual([120, 700, 820, 120 * 2 + 700 * 10, 1]);
  });

  it('counts an unpriced model as 0 towards cost limits and flags it', async () => {
    const money = budget('money', [limit('cost_micro_usd', 10), limit('total_tokens', 1e6)]);
    const { admit, reserves } = setup([money]);
    const a = await admit(1000, 1000, { ...SUBJECT, model: 'mystery' });
    expect(a.admitted).toBe(true);
    expect(a.unpriced).toBe(true);
    expect(reserves[0]!.items.map((i) => i.amount)).toEqual([0, 2000]);
  });

  it('builds one item per budget and limit, in one ledger call, with windows in the counter keys', async () => {
    const tpm: Limit = { metric: 'total_tokens', max: 10_000, window: { kind: 'rolling', seconds: 60 } };
    const org = budget('org', [limit('total_tokens', 1e6), tpm]);
    const team = budget('team', [limit('cost_micro_usd', 1e9)], { mode: 'monitor', selector: { labels: { team: 'search' } } });
    const other = budget('other-team', [limit('requests', 1)], { selector: { labels: { team: 'ads' } } });
    const { admit, reserves } = setup([org, team, other]);

    const a = await admit(10, 20);
    expect(reserves).toHaveLength(1);
    expect(a.budgets).toEqual(['org', 'team']);
    expect(reserves[0]).toMatchObject({ requestId: a.requestId, consumer: 'app-1', nowMs: T0, leaseMs: 60_000 });
    expect(reserves[0]!.items).toEqual([
      { counter: counterKey('org', 0, DAY, T0), budgetId: 'org', max: 1e6, amount: 30, enforce: true, windowEndMs: windowBounds(DAY, T0).end },
      { counter: counterKey('org', 1, tpm.window, T0), budgetId: 'org', max: 10_000, amount: 30, enforce: true, rollingMs: 60_000 },
      { counter: counterKey('team', 0, DAY, T0), budgetId: 'team', max: 1e9, amount: 20 + 200, enforce: false, windowEndMs: windowBounds(DAY, T0).end },
    ]);
  });

  it('makes no ledger call when no budget applies', async () => {
    const { admit, reserves } = setup([budget('ads', [limit('requests', 1)], { selector: { consumers: ['ads-*'] } })]);
    const a = await admit(10, 10);
    expect(a).toMatchObject({ admitted: true, budgets: [], items: [], tightest: null, storeError: false });
    expect(reserves).toHaveLength(0);
  });

  it('admits across nested budgets only when all admit, and reserves nothing on refusal', async () => {
    const org = budget('org', [limit('total_tokens', 1000)]);
    const team = budget('team', [limit('total_tokens', 600)], { selector: { labels: { team: 'search' } } });
    const app = budget('app', [limit('total_tokens', 400)], { selector: { consumers: ['app-1'] } });
    const { admit, counter } = setup([org, team, app]);

    expect((await admit(150, 150)).admitted).toBe(true);
    const refused = await admit(50, 51); // 300 + 101 > 400 for app only
    expect(refused.admitted).toBe(false);
    expect(refused.blockedBy.map((s) => s.budget.id)).toEqual(['app']);
    expect(refused.blockedBy[0]!.limits[0]).toMatchObject({ used: 0, reserved: 300, remaining: 100, exceeded: true, resetAtMs: windowBounds(DAY, T0).end });
    expect(await counter(org)).toEqual({ used: 0, reserved: 300 });
    expect(await counter(team)).toEqual({ used: 0, reserved: 300 });

    // Another consumer of the same team is not limited by app-1's budget.
    const peer = await admit(100, 100, { ...SUBJECT, consumer: 'app-2' });
    expect(peer.admitted).toBe(true);
    expect(peer.budgets).toEqual(['org', 'team']);
    // Now the team is at 500 of 600: exactly 100 more fits, 101 does not.
    expect((await admit(50, 51, { ...SUBJECT, consumer: 'app-2' })).blockedBy.map((s) => s.budget.id)).toEqual(['team']);
    expect((await admit(50, 50, { ...SUBJECT, consumer: 'app-2' })).admitted).toBe(true);
    expect(await counter(org)).toEqual({ used: 0, reserved: 600 });
  });

  it('dates a rolling limit\'s reset when everything counted now has rolled out', async () => {
    const tpm = budget('tpm', [{ metric: 'total_tokens', max: 100, window: { kind: 'rolling', seconds: 60 } }]);
    const { admit } = setup([tpm]);
    expect((await admit(60, 40)).admitted).toBe(true);
    const refused = await admit(1, 0);
    // T0 starts a 10 s sub-bucket: it counts until six more have passed.
    expect(refused.blockedBy[0]!.limits[0]).toMatchObject({ remaining: 0, exceeded: true, resetAtMs: T0 + 70_000 });
  });

  it('reports the tightest budget by remaining share, after this reservation', async () => {
    const org = budget('org', [limit('total_tokens', 1000)]);
    const app = budget('app', [limit('total_tokens', 10_000), limit('requests', 4)]);
    const { admit } = setup([org, app]);
    const a = await admit(100, 100); // org 80% left; app requests 75% left
    expect(a.tightest?.budget.id).toBe('app');
    expect(a.tightest?.limits.map((l) => l.remaining)).toEqual([9800, 3]);
    const b = await admit(300, 300); // org 20% left
    expect(b.tightest?.budget.id).toBe('org');
  });

  it('never refuses in monitor mode but reports and counts the would-block', async () => {
    const watch = budget('watch', [limit('total_tokens', 100)], { mode: 'monitor' });
    const enforced = budget('roomy', [limit('total_tokens', 1e6)]);
    const { admit, ledger, counter } = setup([watch, enforced]);
    const a = await admit(100, 50);
    expect(a.admitted).toBe(true);
    expect(a.blockedBy).toEqual([]);
    expect(a.wouldBlock.map((s) => s.budget.id)).toEqual(['watch']);
    expect(await counter(watch)).toEqual({ used: 0, reserved: 150 });
    expect(await ledger.wouldBlock(T0 - 3_600_000, T0 + 3_600_000)).toEqual([
      { budgetId: 'watch', consumer: 'app-1', hourStart: T0, count: 1 },
    ]);
  });
});

describe('Admitter with a prompt ceiling', () => {
  const tokens = (id: string, max: number, extra: Partial<Budget> = {}) => budget(id, [limit('total_tokens', max)], extra);

  /** A request whose prompt comes as `ceiling`, counted as `count` when admission asks. */
  function ask(s: ReturnType<typeof setup>, ceiling: number, count: number, nowMs = T0) {
    const countPrompt = vi.fn(async () => count);
    const admission = s.admitter.admit({ requestId: `req-${++seq}`, subject: SUBJECT, promptTokens: ceiling, countPrompt, maxOutputTokens: 10, nowMs });
    return { admission, countPrompt };
  }
  const amounts = (s: ReturnType<typeof setup>) => s.reserves.map((r) => r.items.map((i) => i.amount));

  /** Another sidecar's reservation of `amount` on limit 0 of `b`. */
  const elsewhere = (s: ReturnType<typeof setup>, b: Budget, amount: number) =>
    s.ledger.reserve({
      requestId: `other-${++seq}`, leaseMs: 60_000, consumer: 'app-2', nowMs: T0,
      items: [{ counter: counterKey(b.id, 0, DAY, T0), budgetId: b.id, max: b.limits[0]!.max, amount, enforce: true, windowEndMs: windowBounds(DAY, T0).end }],
    });

  it('counts the prompt for a counter not seen yet, reserves the ceiling while a fresh answer leaves room, and counts again once stale', async () => {
    const s = setup([tokens('t', 10_000)]);
    const first = ask(s, 400, 100);
    expect(await first.admission).toMatchObject({ admitted: true, promptTokens: 100 });
    expect(first.countPrompt).toHaveBeenCalledTimes(1);

    const fresh = ask(s, 400, 100, T0 + SEEN_FRESH_MS - 1);
    expect(await fresh.admission).toMatchObject({ admitted: true, promptTokens: 400 });
    expect(fresh.countPrompt).not.toHaveBeenCalled();

    const stale = ask(s, 400, 100, T0 + 2 * SEEN_FRESH_MS);
    expect((await stale.admission).promptTokens).toBe(100);
    expect(stale.countPrompt).toHaveBeenCalledTimes(1);
    expect(amounts(s)).toEqual([[110], [410], [110]]);
  });

  it('counts the prompt when the ceiling would fill a counter past half its limit', async () => {
    const s = setup([tokens('t', 1000)]);
    await ask(s, 300, 100).admission; // 110 of 1000
    const roomy = ask(s, 300, 100); // 420 with it
    await roomy.admission;
    const tight = ask(s, 300, 100); // 730 with it
    expect((await tight.admission).admitted).toBe(true);
    expect([roomy.countPrompt.mock.calls.length, tight.countPrompt.mock.calls.length]).toEqual([0, 1]);
    expect(amounts(s)).toEqual([[110], [310], [110]]);
  });

  it('counts reservations this process has in flight against the room it saw', async () => {
    const s = setup([tokens('t', 1000)]);
    await ask(s, 300, 100).admission; // 110 of 1000
    const concurrent = [ask(s, 300, 100), ask(s, 300, 100)];
    await Promise.all(concurrent.map((c) => c.admission));
    expect(concurrent.map((c) => c.countPrompt.mock.calls.length)).toEqual([0, 1]);
  });

  it('admits a request that fits with its count when the ceiling alone is refused, under a fresh lease', async () => {
    const t = tokens('t', 1000);
    const s = setup([t]);
    await ask(s, 100, 50).admission; // 60 reserved, 940 left as seen here
    await elsewhere(s, t, 700); // another sidecar: 240 left
    const { admission, countPrompt } = ask(s, 300, 200);
    const a = await admission;
    expect(a).toMatchObject({ admitted: true, promptTokens: 200, blockedBy: [] });
    expect(countPrompt).toHaveBeenCalledTimes(1);
    expect(amounts(s).slice(2)).toEqual([[310], [210]]);
    expect(s.reserves[3]!.requestId).toBe(`${s.reserves[2]!.requestId}:counted`);
    expect(a.requestId).toBe(s.reserves[3]!.requestId);
    expect(await s.counter(t)).toEqual({ used: 0, reserved: 60 + 700 + 210 });

    await s.admitter.settle(a, { usage: usage(190, 5), costMicroUsd: null });
    expect(await s.counter(t)).toEqual({ used: 195, reserved: 60 + 700 });
  });

  it('refuses with the counted amounts and no second ledger call when the count does not fit either', async () => {
    const t = tokens('t', 1000);
    const s = setup([t]);
    await ask(s, 100, 50).admission;
    await elsewhere(s, t, 700);
    const a = await ask(s, 300, 231).admission; // 241 > 240
    expect(a).toMatchObject({ admitted: false, promptTokens: 231 });
    expect(a.blockedBy[0]!.limits[0]).toMatchObject({ used: 0, reserved: 760, remaining: 240, exceeded: true });
    expect(a.items.map((i) => i.amount)).toEqual([241]);
    expect(amounts(s).slice(2)).toEqual([[310]]);
    expect(await s.counter(t)).toEqual({ used: 0, reserved: 760 });
  });

  it('near a limit shared by several sidecars, admits exactly what fits by count and refuses only what does not', async () => {
    const t = tokens('t', 1000);
    const ledger = new RecordingLedger({ now: () => T0 });
    const sidecars = [setup([t], {}, ledger), setup([t], {}, ledger), setup([t], {}, ledger)];
    // 36 requests of 25 tokens by count (ceiling 40 + 10 output), one at a time: 900 spent.
    for (let i = 0; i < 36; i++) {
      const a = await ask(sidecars[i % 3]!, 40, 15).admission;
      await sidecars[i % 3]!.admitter.settle(a, { usage: usage(15, 10), costMicroUsd: null });
    }
    const race = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(sidecars[i % 3]!, 40, 15).admission));
    const admitted = race.filter((a) => a.admitted);
    expect(admitted).toHaveLength(4);
    expect(admitted.every((a) => a.promptTokens === 15)).toBe(true);
    expect(race.filter((a) => !a.admitted).every((a) => a.blockedBy[0]!.limits[0]!.remaining! < 25)).toBe(true);
    expect(await sidecars[0]!.counter(t)).toEqual({ used: 900, reserved: 100 });
  });

  it('never counts the prompt for limits the prompt does not change', async () => {
    const s = setup([budget('out', [limit('output_tokens', 1000), limit('requests', 1)])]);
    const { admission, countPrompt } = ask(s, 400, 100);
    expect((await admission).admitted).toBe(true);
    expect(countPrompt).not.toHaveBeenCalled();
    expect(amounts(s)).toEqual([[10, 1]]);
  });

  it('reserves the ceiling on a monitor budget not seen yet, and counts once it was seen tight', async () => {
    const s = setup([tokens('watch', 1000, { mode: 'monitor' })]);
    const unseen = ask(s, 400, 100);
    expect((await unseen.admission).wouldBlock).toEqual([]);
    const tight = ask(s, 400, 100); // 820 of 1000 with the ceiling
    expect((await tight.admission).wouldBlock).toEqual([]);
    expect([unseen.countPrompt.mock.calls.length, tight.countPrompt.mock.calls.length]).toEqual([0, 1]);
    expect(amounts(s)).toEqual([[410], [110]]);
    expect(await s.ledger.wouldBlock(T0 - 3_600_000, T0 + 3_600_000)).toEqual([]);
  });
});

describe('Admitter on store errors', () => {
  const open = budget('open', [limit('total_tokens', 10)]);
  const closed = budget('closed', [limit('total_tokens', 10)], { onStoreError: 'closed' });
  const closedMonitor = budget('closed-monitor', [limit('total_tokens', 10)], { onStoreError: 'closed', mode: 'monitor' });

  /** A ledger whose reserve fails or never answers. */
  function broken(reserve: (req: ReserveRequest) => Promise<ReserveResult>): MemoryLedger {
    const ledger = new MemoryLedger({ now: () => T0 });
    ledger.reserve = reserve;
    return ledger;
  }

  it.each([
    ['rejects', () => Promise.reject(new Error('ECONNREFUSED'))],
    ['hangs past the deadline', () => new Promise<ReserveResult>(() => {})],
  ])('when the ledger %s, fails open or closed per budget', async (_name, reserve) => {
    const { admit, errors } = setup([open, closedMonitor], {}, broken(reserve));
    const admitted = await admit(1, 1);
    expect(admitted).toMatchObject({ admitted: true, storeError: true, blockedBy: [], tightest: null });
    expect(errors).toMatchObject([{ op: 'reserve', requestId: admitted.requestId, admitted: true }]);

    const strict = setup([open, closed], {}, broken(reserve));
    const refused = await strict.admit(1, 1);
    expect(refused).toMatchObject({ admitted: false, storeError: true });
    expect(refused.blockedBy.map((s) => [s.budget.id, s.known, s.limits[0]!.remaining])).toEqual([['closed', false, null]]);
    expect(strict.errors[0]).toMatchObject({ op: 'reserve', admitted: false });
  });

  it('releases a reservation that lands after a fail-closed refusal', async () => {
    const ledger = new MemoryLedger({ now: () => T0 });
    let land!: () => void;
    const landed = new Promise<void>((resolve) => (land = resolve));
    const real = ledger.reserve.bind(ledger);
    ledger.reserve = async (req) => {
      await landed;
      return real(req);
    };
    const released = new Promise<string>((resolve) => {
      const release = ledger.release.bind(ledger);
      ledger.release = async (id) => {
        await release(id);
        resolve(id);
      };
    });
    const { admit, counter } = setup([closed], {}, ledger);
    const refused = await admit(2, 3);
    expect(refused.admitted).toBe(false);
    land();
    expect(await released).toBe(refused.requestId);
    expect(await counter(closed)).toEqual({ used: 0, reserved: 0 });
  });

  it('releases a reservation the ledger made though the call failed after the deadline (reply lost)', async () => {
    const ledger = new MemoryLedger({ now: () => T0 });
    let fail!: () => void;
    const lost = new Promise<void>((resolve) => (fail = resolve));
    const real = ledger.reserve.bind(ledger);
    ledger.reserve = async (req) => {
      await real(req);
      await lost;
      throw new Error('connection reset before the reply');
    };
    const { admit, counter } = setup([closed], {}, ledger);
    const refused = await admit(2, 3);
    expect(refused).toMatchObject({ admitted: false, storeError: true });
    expect((await counter(closed)).reserved).toBeGreaterThan(0);
    fail();
    await vi.waitFor(async () => expect(await counter(closed)).toEqual({ used: 0, reserved: 0 }));
  });

  it('counts the usage of a request admitted open once the store answers again, though nothing was reserved', async () => {
    const rolling = budget('tpm', [limit('total_tokens', 1000, { kind: 'rolling', seconds: 60 })]);
    const daily = budget('daily', [limit('total_tokens', 1000)]);
    const ledger = broken(() => Promise.reject(new Error('ECONNREFUSED')));
    const { admit, admitter, counter } = setup([daily, rolling], {}, ledger);
    const a = await admit(100, 500);
    expect(a).toMatchObject({ admitted: true, storeError: true });
    await admitter.settle(a, { usage: usage(100, 40), costMicroUsd: null });
    expect(await counter(daily)).toEqual({ used: 140, reserved: 0 });
    expect(await counter(rolling)).toEqual({ used: 140, reserved: 0 });
  });

  it('never rejects even when the ledger throws synchronously', async () => {
    const throwing = broken(() => {
      throw new Error('boom');
    });
    const { admit } = setup([open], {}, throwing);
    expect(await admit(1, 1)).toMatchObject({ admitted: true, storeError: true });
  });
});

describe('Admitter settlement', () => {
  const b = budget('b', [limit('input_tokens', 1e6), limit('output_tokens', 1e6), limit('total_tokens', 1e6), limit('cost_micro_usd', 1e9), limit('requests', 100)]);
  const all = async (counter: (b: Budget, i: number) => Promise<{ used: number; reserved: number }>) =>
    Promise.all([0, 1, 2, 3, 4].map((i) => counter(b, i)));

  it('replaces the reservation with the actual usage and cost, once', async () => {
    const { admit, admitter, counter } = setup([b]);
    const a = await admit(100, 500);
    expect((await all(counter)).map((c) => c.reserved)).toEqual([100, 500, 600, 5200, 1]);
    await admitter.settle(a, { usage: usage(90, 40, 130), costMicroUsd: 580 });
    expect(await all(counter)).toEqual([90, 40, 130, 580, 1].map((used) => ({ used, reserved: 0 })));
    // A redelivered final chunk settles again: nothing changes.
    await admitter.settle(a, { usage: usage(90, 40, 130), costMicroUsd: 580 });
    expect((await all(counter)).map((c) => c.used)).toEqual([90, 40, 130, 580, 1]);
  });

  it('sums input and output when no total is reported, and counts an unknown cost as 0', async () => {
    const { admit, admitter, counter } = setup([b]);
    const a = await admit(100, 500);
    await admitter.settle(a, { usage: usage(90, null), costMicroUsd: null });
    expect((await all(counter)).map((c) => c.used)).toEqual([90, 0, 90, 0, 1]);
  });

  it('releases failed upstream calls that report no usage', async () => {
    const { admit, admitter, counter } = setup([b]);
    const a = await admit(100, 500);
    await admitter.finish(a, { usage: usage(null, null), costMicroUsd: null });
    expect(await all(counter)).toEqual([0, 0, 0, 0, 0].map(() => ({ used: 0, reserved: 0 })));
    const c = await admit(100, 500);
    await admitter.release(c);
    expect((await all(counter)).map((x) => x.reserved)).toEqual([0, 0, 0, 0, 0]);
  });

  it('touches nothing for refused requests', async () => {
    const tiny = budget('tiny', [limit('total_tokens', 5)]);
    const { admit, admitter, counter } = setup([tiny]);
    const ok = await admit(2, 2);
    const refused = await admit(2, 2);
    expect(refused.admitted).toBe(false);
    await admitter.settle(refused, { usage: usage(1, 1), costMicroUsd: null });
    await admitter.release(refused);
    expect(await counter(tiny)).toEqual({ used: 0, reserved: 4 });
    await admitter.settle(ok, { usage: usage(1, 1), costMicroUsd: null });
    expect(await counter(tiny)).toEqual({ used: 2, reserved: 0 });
  });

  it('reports settle and release failures instead of rejecting', async () => {
    const ledger = new MemoryLedger({ now: () => T0 });
    const { admit, admitter, errors } = setup([b], {}, ledger);
    const a = await admit(1, 1);
    ledger.settle = () => Promise.reject(new Error('down'));
    ledger.release = () => new Promise(() => {});
    await admitter.settle(a, { usage: usage(1, 1), costMicroUsd: 12 });
    await admitter.release(a);
    expect(errors.map((e) => e.op)).toEqual(['settle', 'release']);
  });
});
