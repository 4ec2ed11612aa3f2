/**
 * The ledger's capacity, driven directly (no sidecar, no gRPC): `clients` RedisLedger instances (one
 * Redis connection each, as `clients` sidecars would hold) make budget admissions in an open loop at
 * a fixed rate (each scheduled at its time whatever the answers do; a reservation's latency counts
 * from its scheduled start, so a backlog shows), one reservation over every counter of the nested
 * budgets (exactly the items admission builds: src/governance/admission.ts slotsFor) followed by its
 * settlement, as every admitted exchange is settled. Step after step at growing rates (the search in
 * capacity-model.ts) until p99 passes the ledger deadline or the rate is not served.
 */
import { amountsOf, estimatedUsage, slotsFor } from '../src/governance/admission.js';
import type { LedgerItem } from '../src/governance/ledger.js';
import type { Budget } from '../src/governance/types.js';
import type { RedisConfig } from '../src/config/types.js';
import { RedisLedger } from '../src/ledger/redis.js';
import { diffSnapshots, nextRate, quantile, type RateStep, type RedisSnapshot, type SearchOptions } from './capacity-model.js';

export interface LedgerLoadOptions {
  redis: RedisConfig;
  budgets: Budget[];
  clients: number;
  stepMs: number;
  search: SearchOptions;
  /** Reads Redis (INFO) before and after each step. */
  snapshot: () => Promise<RedisSnapshot>;
  /**
   * The ledger sends every settlement a second time some seconds later, many in one call (a no-op in
   * Redis): send them SECOND_SEND_MS later instead, so that a step pays for about its own second
   * sends (all but its last SECOND_SEND_MS + a tick's, and with the previous step's), not for an
   * earlier step's long after.
   */
  secondSettle?: boolean;
  /** Called after each step (progress output). */
  onStep?: (step: RateStep) => void;
}

/** A 2 KB prompt with max_tokens 400 (the bench's chat), as admission estimates it; settled at the chat's usage. */
const ESTIMATE = estimatedUsage(520, 400);
const ACTUAL = { input_tokens: 520, output_tokens: 130, total_tokens: 650, cached_input_tokens: null, cache_write_tokens: null, reasoning_tokens: null };
const LEASE_MS = 600_000;

/** The reservation items and the settlement amounts per counter for one admission now. */
function decisionShape(budgets: Budget[], nowMs: number): { items: LedgerItem[]; actual: Record<string, number> } {
  const slots = slotsFor(budgets, amountsOf(ESTIMATE, null), nowMs);
  const used = amountsOf(ACTUAL, null);
  const actual: Record<string, number> = {};
  for (const s of slots) actual[s.item.counter] = used[s.budget.limits[s.index]!.metric];
  return { items: slots.map((s) => s.item), actual };
}

let runId = 0;

const SECOND_SEND_MS = 150;

/** A ledger client of its own (one connection), sending settlements again after SECOND_SEND_MS or never. */
function newLedger(o: Pick<LedgerLoadOptions, 'redis' | 'secondSettle'>): RedisLedger {
  return new RedisLedger({ redis: o.redis, resendFinaliseMs: o.secondSettle ? SECOND_SEND_MS : 0 });
}

/** One open-loop step at `rate` admissions/s for `durationMs`. */
export async function ledgerStep(
  ledgers: RedisLedger[],
  budgets: Budget[],
  rate: number,
  durationMs: number,
  snapshot: () => Promise<RedisSnapshot>,
): Promise<RateStep> {
  const tag = `cap${process.pid}-${++runId}`;
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  // The open loop gives up on a step whose backlog passes half a second of load (or 2,000): it failed.
  const maxInFlight = Math.max(2_000, Math.round(rate / 2));
  const latencies = new Float64Array(total);
  let answered = 0;
  let errors = 0;
  let inFlight = 0;
  let lastAnswerNs = 0n;
  const shape = decisionShape(budgets, Date.now());
  const before = await snapshot();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const intervalNs = 1e9 / rate;

  await new Promise<void>((resolve) => {
    let started = 0;
    let finished = 0;
    let gaveUp = false;
    const done = (): void => {
      finished++;
      if (finished === total) resolve();
    };
    const launch = (i: number): void => {
      const scheduled = t0 + BigInt(Math.round(i * intervalNs));
      const ledger = ledgers[i % ledgers.length]!;
      const requestId = `${tag}-${i}`;
      inFlight++;
      ledger
        .reserve({ requestId, leaseMs: LEASE_MS, items: shape.items, consumer: 'bench-consumer', nowMs: Date.now() })
        .then(
          (r) => {
            const now = process.hrtime.bigint();
            latencies[answered++] = Number(now - scheduled) / 1e6;
            lastAnswerNs = now;
            if (!r.admitted) errors++;
            return ledger.settle({ requestId, actual: shape.actual }).catch(() => void errors++);
          },
          () => void errors++,
        )
        .finally(() => {
          inFlight--;
          done();
        });
    };
    const pump = (): void => {
      const elapsed = Number(process.hrtime.bigint() - t0);
      while (started < total && started * intervalNs <= elapsed) {
        if (inFlight >= maxInFlight) {
          // Count the rest as failed and stop offering.
          gaveUp = true;
          errors += total - started;
          finished += total - started;
          started = total;
          if (finished === total) resolve();
          break;
        }
        launch(started++);
      }
      if (started >= total || gaveUp) clearInterval(ticker);
    };
    const ticker = setInterval(pump, 1);
    pump();
  });

  const wallNs = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  const after = await snapshot();
  const delta = diffSnapshots(before, after);
  const sorted = latencies.slice(0, answered).sort();
  const answerSpanS = lastAnswerNs > t0 ? Number(lastAnswerNs - t0) / 1e9 : wallNs / 1e9;
  return {
    rate,
    achieved: answered / Math.max(answerSpanS, durationMs / 1000),
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    errors,
    redisCores: delta.cpuUs / (wallNs / 1e3),
    redisUsPerAdmission: answered > 0 ? delta.cpuUs / answered : 0,
    generatorCores: (cpu.user + cpu.system) / (wallNs / 1e3),
  };
}

/**
 * Waits until Redis has worked off an overloaded step's backlog: commands ioredis timed out
 * (command_timeout_ms) may still sit in Redis's socket buffers and would run during the next step.
 * Done when a PING on every connection comes back within 20 ms (at most 30 s).
 */
async function drain(ledgers: readonly RedisLedger[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const t = performance.now();
    const ok = await Promise.all(ledgers.map((l) => l.ping().then(() => true, () => false)));
    if (ok.every(Boolean) && performance.now() - t < 20) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface LedgerCapacity {
  steps: RateStep[];
}

/** Warms up (JIT, scripts loaded), then runs the rate search. */
export async function ledgerCapacity(o: LedgerLoadOptions): Promise<LedgerCapacity> {
  const ledgers = Array.from({ length: o.clients }, () => newLedger(o));
  try {
    await Promise.all(ledgers.map((l) => l.ping()));
    await ledgerStep(ledgers, o.budgets, Math.min(500, o.search.start), Math.min(500, o.stepMs), o.snapshot);
    const steps: RateStep[] = [];
    for (let rate = nextRate(steps, o.search); rate !== null; rate = nextRate(steps, o.search)) {
      const step = await ledgerStep(ledgers, o.budgets, rate, o.stepMs, o.snapshot);
      steps.push(step);
      o.onStep?.(step);
      if (step.errors > 0 || step.p99Ms > 4 * o.search.deadlineMs) await drain(ledgers);
    }
    return { steps };
  } finally {
    await Promise.all(ledgers.map((l) => l.close()));
  }
}

export interface ClientsPoint {
  clients: number;
  step: RateStep;
}

/**
 * One step at a fixed rate per client count: what more sidecars (more connections, each carrying
 * fewer auto-pipelined commands) cost Redis at the same admission rate.
 */
export async function clientsSweep(o: Omit<LedgerLoadOptions, 'clients' | 'search'> & { clientCounts: number[]; rate: number }): Promise<ClientsPoint[]> {
  const out: ClientsPoint[] = [];
  for (const clients of o.clientCounts) {
    const ledgers = Array.from({ length: clients }, () => newLedger(o));
    try {
      await Promise.all(ledgers.map((l) => l.ping()));
      await ledgerStep(ledgers, o.budgets, Math.min(500, o.rate), 300, o.snapshot);
      const step = await ledgerStep(ledgers, o.budgets, o.rate, o.stepMs, o.snapshot);
      out.push({ clients, step });
      o.onStep?.(step);
    } finally {
      await Promise.all(ledgers.map((l) => l.close()));
    }
  }
  return out;
}
