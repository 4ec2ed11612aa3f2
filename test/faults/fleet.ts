/**
 * Shared by the fault tests: `tokenwarden serve` processes on one Redis, the emulated Envoy in front
 * of them (sidecar config with Envoy's default 200 ms message timeout), OpenAI chat exchanges whose
 * upstream reports a known usage, and readers of budget state and of the shared inventory.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultConfig } from '../../src/config/types.js';
import { RedisStore } from '../../src/inventory/redis.js';
import type { EmulatorConfig, ExchangeInput, ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { freePort, startSidecar, type Sidecar } from '../support/sidecar-process.js';

/** envoy-configs/sidecar.yaml's filter with Envoy's default message_timeout (200 ms). */
export const ENVOY: EmulatorConfig = { ...SIDECAR, message_timeout_ms: 200 };

let sequence = 0;

export interface ChatOptions {
  model?: string;
  /** The upstream answers after this long (the side stream stays open meanwhile). */
  upstreamDelayMs?: number;
}

/** The HTTP request of an OpenAI chat completion from `consumer` (for raw ext_proc streams). */
export function chatRequest(consumer: string, model = 'gpt-4o-mini'): { headers: [string, string][]; body: Buffer } {
  const body = JSON.stringify({ model, max_tokens: 5, messages: [{ role: 'user', content: 'Say hi.' }] });
  return {
    headers: [
      [':method', 'POST'],
      [':authority', 'api.openai.com'],
      [':path', '/v1/chat/completions'],
      [':scheme', 'https'],
      ['content-type', 'application/json'],
      ['content-length', String(Buffer.byteLength(body))],
      ['x-consumer-id', consumer],
      ['x-request-id', `faults-${process.pid}-${++sequence}`],
    ],
    body: Buffer.from(body),
  };
}

/** An OpenAI chat completion from `consumer`; the upstream reports 12 input and 5 output tokens. */
export function chat(consumer: string, opts: ChatOptions = {}): ExchangeInput {
  const model = opts.model ?? 'gpt-4o-mini';
  const request = chatRequest(consumer, model);
  const answer = JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'length' }],
    usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  });
  return {
    request: { headers: request.headers, body_chunks: [request.body] },
    upstream: {
      headers: [[':status', '200'], ['content-type', 'application/json']],
      body_chunks: [answer],
      ...(opts.upstreamDelayMs ? { delay_ms: opts.upstreamDelayMs } : {}),
    },
  };
}

/** What Envoy's client saw that it should never see from a healthy ext_proc server. */
export function envoyTrouble(r: ExchangeResult): string[] {
  const trouble = [...r.errors];
  if (r.counters.message_timeouts > 0) trouble.push('message timeout');
  if (r.counters.streams_failed > 0) trouble.push(`side stream failed (${r.streamEnd?.code} ${r.streamEnd?.details})`);
  if (r.counters.spurious_msgs_received > 0) trouble.push('spurious answer');
  if (r.downstream.status !== 200 && r.downstream.status !== 429) trouble.push(`status ${r.downstream.status}`);
  return trouble;
}

export interface FleetSidecar {
  name: string;
  file: string;
  grpcAddress: string;
  adminAddress: string;
  process: Sidecar;
  /** Starts it again with the same configuration (after a kill). */
  restart(): Promise<void>;
}

/** Starts `tokenwarden serve` with `yaml` plus its own gRPC and admin addresses. */
export async function startFleetSidecar(dir: string, name: string, yaml: string, opts: { shutdownGraceMs?: number } = {}): Promise<FleetSidecar> {
  const grpcAddress = `127.0.0.1:${await freePort()}`;
  const adminAddress = `127.0.0.1:${await freePort()}`;
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, [`grpc: { address: "${grpcAddress}", shutdown_grace_ms: ${opts.shutdownGraceMs ?? 5000} }`, `admin: { address: "${adminAddress}" }`, yaml].join('\n'));
  const s: FleetSidecar = {
    name,
    file,
    grpcAddress,
    adminAddress,
    process: await startSidecar(file, grpcAddress),
    async restart() {
      s.process = await startSidecar(file, grpcAddress);
    },
  };
  return s;
}

export const alive = (s: FleetSidecar): boolean => s.process.child.exitCode === null && s.process.child.signalCode === null;

export async function killAll(sidecars: FleetSidecar[]): Promise<void> {
  for (const s of sidecars) if (alive(s)) s.process.child.kill('SIGKILL');
  await Promise.all(sidecars.map((s) => s.process.exited));
}

/** The first limit of a budget as a sidecar's admin API reports it. */
export async function budgetLimit(s: FleetSidecar, id: string): Promise<{ used: number; reserved: number }> {
  const res = await fetch(`http://${s.adminAddress}/api/v1/budgets/${id}`);
  if (res.status !== 200) throw new Error(`GET budget ${id} from ${s.name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { limits: { used: number; reserved: number }[] }).limits[0]!;
}

/** An unlabelled metric of one sidecar, read from its /metrics. */
export async function metricValue(s: FleetSidecar, name: string): Promise<number> {
  const text = await (await fetch(`http://${s.adminAddress}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`${s.name}: no ${name} in /metrics`);
  return Number(m[1]);
}

/** Settlements of one sidecar waiting for (or in) a retry or their second send. */
export const settlementsPending = (s: FleetSidecar): Promise<number> => metricValue(s, 'tokenwarden_budget_settlements_pending');

/** Requests per consumer in the shared inventory (read straight from Redis). */
export async function inventoryRequests(redisUrl: string, keyPrefix: string): Promise<Record<string, number>> {
  const store = new RedisStore({ redis: { ...defaultConfig().store.redis, url: redisUrl, key_prefix: keyPrefix }, retentionHours: 24 });
  const out: Record<string, number> = {};
  try {
    for (let offset = 0; ; offset += 1000) {
      const page = await store.inventory({ offset, limit: 1000, sort: 'consumer' });
      for (const r of page.items) out[r.key.consumer] = (out[r.key.consumer] ?? 0) + r.requests;
      if (offset + page.items.length >= page.total) return out;
    }
  } finally {
    await store.close();
  }
}

/** Exchange counts by consumer. */
export function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of items) out[key(t)] = (out[key(t)] ?? 0) + 1;
  return out;
}
