/**
 * Shared by the Redis failover and resharding tests (test/faults/redis-*-failover.test.ts,
 * redis-cluster-reshard.test.ts): three `tokenwarden serve` processes on a Sentinel or Cluster
 * deployment, continuous mixed traffic through one emulated Envoy per sidecar, and the accounting
 * that checks the budgets and the inventory afterwards.
 *
 * Traffic: OpenAI chat completions, JSON and SSE, each reporting 12 input + 5 output tokens, from
 * three consumers with one enforce budget each:
 * - `tokens-app`, budget `tokens` (total_tokens, on_store_error: closed): never exhausted, so a 429 is
 *   always a store-error refusal;
 * - `money-app`, budget `money` (cost_usd, on_store_error: open): always admitted, by the ledger
 *   (with budget headers) or by on_store_error (without);
 * - `capped-app`, budget `capped` (1 request a month, on_store_error: open): admits its first
 *   request, then refuses every one, so a later 200 is always a store-error admission.
 * Admissions and refusals are told apart by the answer: a ledger decision names its budget in
 * x-tokenwarden-budget, an admission by on_store_error has no budget figures to show.
 * Envoy runs the sidecar filter strictly (failure_mode_allow: false): an ext_proc failure or a
 * message timeout would reach the client as a 500 and be reported, not hidden.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { defaultConfig, type RedisConfig } from '../../src/config/types.js';
import { amountsOf } from '../../src/governance/admission.js';
import { PriceBook } from '../../src/metering/prices.js';
import { RESEND_FINALISE_MS } from '../../src/ledger/redis.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { EnvoyEmulator, type EmulatorConfig, type ExchangeInput, type ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { eventually, until } from '../support/wait.js';
import { alive, budgetLimit, envoyTrouble, killAll, startFleetSidecar, type FleetSidecar } from './fleet.js';

export const CONSUMERS = ['tokens-app', 'money-app', 'capped-app'] as const;
export type Consumer = (typeof CONSUMERS)[number];
export const BUDGET_OF: Record<Consumer, string> = { 'tokens-app': 'tokens', 'money-app': 'money', 'capped-app': 'capped' };
/** Reported usage of every exchange. */
export const INPUT_TOKENS = 12;
export const OUTPUT_TOKENS = 5;
export const TOTAL_TOKENS = INPUT_TOKENS + OUTPUT_TOKENS;

const BUDGETS = `
budgets:
  - id: tokens
    mode: enforce
    on_store_error: closed
    select: { consumers: [tokens-app] }
    limits: [{ total_tokens: 1000000000, per: month }]
  - id: money
    mode: enforce
    on_store_error: open
    select: { consumers: [money-app] }
    limits: [{ cost_usd: 1000000, per: month }]
  - id: capped
    mode: enforce
    on_store_error: open
    select: { consumers: [capped-app] }
    limits: [{ requests: 1, per: month }]
`;

/** store.redis.connect_timeout_ms and command_timeout_ms of the sidecars. */
export const CONNECT_TIMEOUT_MS = 500;
export const COMMAND_TIMEOUT_MS = 1_000;

/** Envoy's sidecar filter, strict (no fail-open), with a message timeout a loaded CI machine keeps. */
export const ENVOY = { ...SIDECAR, failure_mode_allow: false, message_timeout_ms: 2_000 };

export interface FleetOptions {
  /** The `store.redis` map (YAML flow style) without key_prefix and timeouts. */
  redis: string;
  keyPrefix: string;
  /** governance.ledger_timeout_ms (default 500: well under the 2 s message timeout). */
  ledgerTimeoutMs?: number;
  /** store.redis.command_timeout_ms (default COMMAND_TIMEOUT_MS). */
  commandTimeoutMs?: number;
}

/** Three sidecars on the given Redis topology. */
export class FailoverFleet {
  readonly sidecars: FleetSidecar[] = [];
  private dir = '';

  async start(opts: FleetOptions): Promise<void> {
    this.dir = mkdtempSync(path.join(tmpdir(), 'tw-failover-'));
    const yaml = [
      'consumer: { fingerprint_secret: failover-test }',
      'store:',
      '  type: redis',
      `  redis: { ${opts.redis}, key_prefix: ${opts.keyPrefix}, connect_timeout_ms: ${CONNECT_TIMEOUT_MS}, command_timeout_ms: ${opts.commandTimeoutMs ?? COMMAND_TIMEOUT_MS} }`,
      '  flush_interval_ms: 100',
      `governance: { lease_ms: 3000, ledger_timeout_ms: ${opts.ledgerTimeoutMs ?? 500} }`,
      'logging: { level: warn }',
      BUDGETS,
    ].join('\n');
    for (let i = 0; i < 3; i++) this.sidecars.push(await startFleetSidecar(this.dir, `sidecar-${i}`, yaml));
  }

  /** Sidecars that exited, with their stderr. */
  exited(): string[] {
    return this.sidecars.filter((s) => !alive(s)).map((s) => `${s.name} exited:\n${s.process.stderr()}`);
  }

  async stop(): Promise<void> {
    await killAll(this.sidecars);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

let sequence = 0;

/** An OpenAI chat completion from `consumer`, JSON or SSE; the upstream reports 12 + 5 tokens. */
export function chatExchange(consumer: Consumer, stream: boolean): ExchangeInput {
  const body = JSON.stringify({
    model: 'gpt-4o-mini',
    max_tokens: OUTPUT_TOKENS,
    messages: [{ role: 'user', content: 'Say hi.' }],
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
  const usage = { prompt_tokens: INPUT_TOKENS, completion_tokens: OUTPUT_TOKENS, total_tokens: TOTAL_TOKENS };
  const upstream = stream
    ? {
        headers: [[':status', '200'], ['content-type', 'text/event-stream']] as [string, string][],
        body_chunks: [
          `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: 'hi' } }] })}\n\n`,
          `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [], usage })}\n\ndata: [DONE]\n\n`,
        ],
      }
    : {
        headers: [[':status', '200'], ['content-type', 'application/json']] as [string, string][],
        body_chunks: [
          JSON.stringify({ id: 'c1', object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'length' }], usage }),
        ],
      };
  return {
    request: {
      headers: [
        [':method', 'POST'],
        [':authority', 'api.openai.com'],
        [':path', '/v1/chat/completions'],
        [':scheme', 'https'],
        ['content-type', 'application/json'],
        ['content-length', String(Buffer.byteLength(body))],
        ['x-consumer-id', consumer],
        ['x-request-id', `failover-${process.pid}-${++sequence}`],
      ],
      body_chunks: [body],
    },
    upstream,
  };
}

export interface Seen {
  phase: string;
  sidecar: string;
  consumer: Consumer;
  stream: boolean;
  status: number | undefined;
  /** What a healthy ext_proc server never makes Envoy see (timeouts, failed streams, 5xx). */
  trouble: string[];
  contacted: boolean;
  budgetHeader: string | null;
  /** x-request-id: the ledger's request id. */
  requestId: string;
}

function seen(phase: string, sidecar: string, consumer: Consumer, stream: boolean, input: ExchangeInput, r: ExchangeResult): Seen {
  return {
    requestId: [...input.request.headers].find(([k]) => k === 'x-request-id')![1] as string,
    phase,
    sidecar,
    consumer,
    stream,
    status: r.downstream.status,
    trouble: envoyTrouble(r),
    contacted: r.upstream.contacted,
    budgetHeader: r.downstream.headers?.get('x-tokenwarden-budget') ?? null,
  };
}

/** The same traffic before any fault, until every sidecar decides every budget through the ledger. */
export async function warmUp(fleet: FailoverFleet): Promise<Seen[]> {
  const out: Seen[] = [];
  for (const s of fleet.sidecars) {
    const envoy = new EnvoyEmulator(s.grpcAddress, { ...ENVOY, message_timeout_ms: 10_000 });
    try {
      for (const consumer of CONSUMERS) {
        // The first decisions pay for loading code paths and connecting; one decided by the ledger
        // (capped-app refused: the first sidecar's first request used its one, the others admitted)
        // shows this sidecar is ready.
        await until(async () => {
          const stream = out.length % 2 === 1;
          const input = chatExchange(consumer, stream);
          const x = seen('warm-up', s.name, consumer, stream, input, await envoy.exchange(input));
          out.push(x);
          return x.budgetHeader === BUDGET_OF[consumer] && x.status === (consumer === 'capped-app' ? 429 : 200);
        }, `${s.name} to decide ${consumer}'s requests through the ledger`, 20_000);
      }
    } finally {
      await envoy.close();
    }
  }
  return out;
}

/**
 * Workers per sidecar, each cycling through the consumers, JSON and SSE, until stopped, with a pause
 * between exchanges: a few hundred exchanges a second in all, continuous through every fault window,
 * without taking both cores of a CI machine from the tests running next to it.
 */
export class MixedTraffic {
  readonly seen: Seen[] = [];
  phase = 'before';
  private running = true;
  private readonly loops: Promise<void>[];
  private readonly envoys: EnvoyEmulator[] = [];
  private readonly pauseMs: number;

  constructor(
    sidecars: FleetSidecar[],
    opts: { workersPerSidecar?: number; pauseMs?: number; envoy?: EmulatorConfig } = {},
  ) {
    this.pauseMs = opts.pauseMs ?? 10;
    this.loops = sidecars.flatMap((s) => {
      const envoy = new EnvoyEmulator(s.grpcAddress, opts.envoy ?? ENVOY);
      this.envoys.push(envoy);
      return Array.from({ length: opts.workersPerSidecar ?? 2 }, (_, w) => this.loop(s, envoy, w));
    });
  }

  private async loop(s: FleetSidecar, envoy: EnvoyEmulator, worker: number): Promise<void> {
    for (let i = worker; this.running; i++) {
      const consumer = CONSUMERS[i % CONSUMERS.length]!;
      const stream = Math.floor(i / CONSUMERS.length) % 2 === 1;
      const phase = this.phase;
      const input = chatExchange(consumer, stream);
      this.seen.push(seen(phase, s.name, consumer, stream, input, await envoy.exchange(input)));
      await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }

  /** Waits until `n` more exchanges completed in the current phase. */
  async more(n: number, timeoutMs = 30_000): Promise<void> {
    const phase = this.phase;
    const target = this.inPhase(phase).length + n;
    await until(() => this.inPhase(phase).length >= target, `${n} more exchanges in phase "${phase}"`, timeoutMs);
  }

  inPhase(phase: string): Seen[] {
    return this.seen.filter((x) => x.phase === phase);
  }

  /** Ends the loops once their exchanges in flight are done (each within Envoy's message timeout). Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.envoys.map((e) => e.close()));
  }
}

/** `tokenwarden_budget_store_errors_total` of one sidecar, by "op/decision". */
export async function storeErrors(s: FleetSidecar): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${s.adminAddress}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^tokenwarden_budget_store_errors_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out[`${labels.op}/${labels.decision}`] = (out[`${labels.op}/${labels.decision}`] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Sums `storeErrors` over the fleet. */
export async function fleetStoreErrors(fleet: FailoverFleet): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of fleet.sidecars) for (const [k, v] of Object.entries(await storeErrors(s))) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** How each consumer's exchanges were decided. */
export interface Decisions {
  /** Admitted by the ledger (200 naming the budget). */
  admitted: number;
  /** Refused by the budget (capped-app's 429s). */
  refusedByBudget: number;
  /** Decided by on_store_error: tokens-app's 429s (closed), 200s without budget headers (open). */
  byStoreError: number;
}

export function decisions(all: Seen[]): Record<Consumer, Decisions> {
  const out = Object.fromEntries(CONSUMERS.map((c) => [c, { admitted: 0, refusedByBudget: 0, byStoreError: 0 }])) as Record<Consumer, Decisions>;
  for (const x of all) {
    const d = out[x.consumer];
    if (x.status === 200) {
      if (x.budgetHeader === null) d.byStoreError++;
      else d.admitted++;
    } else if (x.status === 429) {
      if (x.consumer === 'capped-app') d.refusedByBudget++;
      else d.byStoreError++;
    }
  }
  return out;
}

/**
 * Every exchange got a conformant answer of a kind its consumer's budget allows: a 200, or a 429
 * (tokens-app: closed on a store error; capped-app: refused) that names its budget and never reached
 * the upstream; money-app (open, never exhausted) and tokens-app (never exhausted) are refused by no
 * budget; a 200 names no other budget.
 */
export function unexpectedAnswers(all: Seen[]): string[] {
  const out: string[] = [];
  for (const x of all) {
    const what = `${x.phase} / ${x.sidecar} / ${x.consumer}${x.stream ? ' (SSE)' : ''}`;
    for (const t of x.trouble) out.push(`${what}: ${t}`);
    if (x.consumer === 'money-app' && x.status !== 200) out.push(`${what}: status ${x.status} (on_store_error: open never refuses)`);
    if (x.status === 429 && (x.contacted || x.budgetHeader !== BUDGET_OF[x.consumer])) out.push(`${what}: 429 that reached the upstream or names ${x.budgetHeader}`);
    if (x.status === 200 && x.budgetHeader !== null && x.budgetHeader !== BUDGET_OF[x.consumer]) out.push(`${what}: 200 naming ${x.budgetHeader}`);
  }
  return out;
}

/**
 * What the ledger must hold once every settlement has landed: every admitted request's reported
 * usage, whoever admitted it (the ledger, or on_store_error: open), exactly once. `microUsdPerRequest`
 * is what one request costs (measured: settlement rounds each request's cost up to a micro-dollar).
 */
export function expectedUsed(all: Seen[], microUsdPerRequest: number): Record<string, number> {
  const admitted = (c: Consumer): number => all.filter((x) => x.consumer === c && x.status === 200).length;
  return { tokens: admitted('tokens-app') * TOTAL_TOKENS, money: admitted('money-app') * microUsdPerRequest, capped: admitted('capped-app') };
}

/**
 * Every store-error decision the answers show is one the sidecars counted, and the other way round:
 * tokens-app's 429s are the reserve calls refused by on_store_error, the admissions without budget
 * headers those it admitted.
 */
export function storeErrorsMatch(d: Record<Consumer, Decisions>, errors: Record<string, number>): { seen: Record<string, number>; counted: Record<string, number> } {
  return {
    seen: { refused: d['tokens-app'].byStoreError, admitted: d['money-app'].byStoreError + d['capped-app'].byStoreError },
    counted: { refused: errors['reserve/refused'] ?? 0, admitted: errors['reserve/admitted'] ?? 0 },
  };
}

/** used and reserved of the three budgets, read through a sidecar's admin API. */
export async function budgetState(s: FleetSidecar): Promise<Record<string, { used: number; reserved: number }>> {
  const out: Record<string, { used: number; reserved: number }> = {};
  for (const id of Object.values(BUDGET_OF)) out[id] = await budgetLimit(s, id);
  return out;
}

/** Requests per consumer in the shared inventory, read straight from the topology. */
export async function inventoryRequests(redis: Partial<RedisConfig>, keyPrefix: string): Promise<Record<string, number>> {
  const store = new RedisStore({ redis: { ...defaultConfig().store.redis, url: 'redis://127.0.0.1:1', ...redis, key_prefix: keyPrefix }, retentionHours: 24 });
  try {
    const page = await store.consumers({ limit: 1000 });
    return Object.fromEntries(page.items.map((c) => [c.consumer, c.requests]));
  } finally {
    await store.close();
  }
}

/** Exchanges per consumer. */
export function sentPerConsumer(all: Seen[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of all) out[x.consumer] = (out[x.consumer] ?? 0) + 1;
  return out;
}

/** What settlement counts for one request against the money budget: its cost, rounded up to a micro-dollar (as admission does). */
export function microUsdPerRequest(): number {
  const usage = { input_tokens: INPUT_TOKENS, output_tokens: OUTPUT_TOKENS, total_tokens: TOTAL_TOKENS, cached_input_tokens: null, cache_write_tokens: null, reasoning_tokens: null };
  const cost = new PriceBook([]).cost('openai', ['gpt-4o-mini'], usage);
  if (cost === null) throw new Error('gpt-4o-mini has no price');
  return amountsOf(usage, cost.microUsd).cost_micro_usd;
}

/**
 * The end state every failover test demands once traffic stopped (at `stoppedAt`): no reservation
 * left, each budget's use equal to what the admitted requests reported, the inventory equal to what
 * was sent, and still so once every second send has gone out (nothing counts twice).
 */
export async function expectExactEndState(
  fleet: FailoverFleet,
  all: Seen[],
  topology: { redis: Partial<RedisConfig>; keyPrefix: string },
  stoppedAt: number,
): Promise<void> {
  const first = fleet.sidecars[0]!;
  const expected = expectedUsed(all, microUsdPerRequest());
  const used = async (): Promise<Record<string, number>> => Object.fromEntries(Object.entries(await budgetState(first)).map(([id, s]) => [id, s.used]));
  await eventually(async () => {
    const state = await budgetState(first);
    expect(Object.values(state).map((s) => s.reserved)).toEqual([0, 0, 0]);
    expect(await used()).toEqual(expected);
  }, 20_000);
  const inventory = (): Promise<Record<string, number>> => inventoryRequests(topology.redis, topology.keyPrefix);
  await eventually(async () => expect(await inventory()).toEqual(sentPerConsumer(all)), 10_000);
  await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + RESEND_FINALISE_MS + 1_000 - Date.now())));
  expect(await used()).toEqual(expected);
  expect(await inventory()).toEqual(sentPerConsumer(all));
}
