/**
 * `tokenwarden demo`: replays the built-in samples into a running tokenwarden as Envoy would and
 * prints, per exchange, what tokenwarden answered (the dynamic metadata an access log would show),
 * then the totals.
 */
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { MetadataValue } from '../extproc/struct.js';
import { AI_GATEWAY_NAMESPACE } from '../extproc/metadata.js';
import { ExtProcClient, SideStreamError, type ExchangeOutcome } from './client.js';
import { DEMO_SAMPLES, type DemoSample } from './samples.js';

export const DEFAULT_DEMO_TARGET = '127.0.0.1:50051';
const DEFAULT_TIMEOUT_MS = 10_000;
/** Where a server with the default configuration serves its inventory. */
const DEFAULT_INVENTORY_URL = 'http://127.0.0.1:9090/api/v1/inventory';

export interface DemoOptions {
  /** `host:port`, `[ipv6]:port` or `unix:/path` of tokenwarden's gRPC server. */
  target?: string;
  /** Exchanges to send, cycling through the samples; default: each sample once. */
  count?: number;
  /** Receives each output line (without newline); default: stdout. */
  write?: (line: string) => void;
  /** Deadline of each exchange's gRPC stream. */
  timeoutMs?: number;
}

export interface DemoExchange {
  sample: string;
  /** The exchange's keys in tokenwarden's metadata namespace (empty for traffic that is not LLM traffic). */
  metadata: Record<string, MetadataValue>;
  outcome: ExchangeOutcome;
}

export interface DemoReport {
  target: string;
  exchanges: DemoExchange[];
  /** Exchanges tokenwarden metered (it returned metadata for them). */
  metered: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** Metered exchanges without a price. */
  unpriced: number;
}

/** The demo could not run (server unreachable, no answer, protocol error): a one-line reason. */
export class DemoError extends Error {}

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const target = options.target ?? DEFAULT_DEMO_TARGET;
  const count = options.count ?? DEMO_SAMPLES.length;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const client = new ExtProcClient(target, timeoutMs);
  const report: DemoReport = { target, exchanges: [], metered: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, unpriced: 0 };
  const started = performance.now();
  try {
    write(`Replaying ${count} sample exchange${count === 1 ? '' : 's'} into tokenwarden at ${target}, as Envoy would:`);
    for (let i = 0; i < count; i++) {
      const sample = DEMO_SAMPLES[i % DEMO_SAMPLES.length]!;
      const outcome = await exchange(client, sample, target, timeoutMs);
      const entry: DemoExchange = { sample: sample.name, metadata: ownNamespace(outcome), outcome };
      report.exchanges.push(entry);
      tally(report, entry.metadata);
      write(`${`[${i + 1}/${count}]`.padEnd(String(count).length * 2 + 4)}${sample.name.padEnd(20)}${describe(entry)}`);
    }
  } finally {
    client.close();
  }
  write(totals(report, (performance.now() - started) / 1000));
  write(
    target === DEFAULT_DEMO_TARGET
      ? `Inventory (updated within a second): curl -s ${DEFAULT_INVENTORY_URL}`
      : 'Inventory (updated within a second): GET /api/v1/inventory on that server\'s admin address',
  );
  return report;
}

async function exchange(client: ExtProcClient, sample: DemoSample, target: string, timeoutMs: number): Promise<ExchangeOutcome> {
  try {
    return await client.exchange(sample, randomUUID());
  } catch (err) {
    if (!(err instanceof SideStreamError)) throw err;
    if (err.code === GrpcStatus.UNAVAILABLE) {
      throw new DemoError(`cannot reach tokenwarden at ${target} (${connectionError(err.message)}). Is "tokenwarden serve" running there?`);
    }
    if (err.code === GrpcStatus.DEADLINE_EXCEEDED) throw new DemoError(`tokenwarden at ${target} did not answer within ${timeoutMs} ms`);
    throw new DemoError(`exchange "${sample.name}" failed: ${err.message}`);
  }
}

/** grpc-js wraps the socket error ("No connection established. Last error: Error: connect ECONNREFUSED ..."). */
function connectionError(details: string): string {
  return /Last error: (?:Error: )?(.*?)(?:\. Resolution note|$)/.exec(details)?.[1] ?? details;
}

/** tokenwarden writes under its configured namespace (default "tokenwarden"): the one that is not the AI Gateway's. */
function ownNamespace(outcome: ExchangeOutcome): Record<string, MetadataValue> {
  const name = Object.keys(outcome.metadata).find((ns) => ns !== AI_GATEWAY_NAMESPACE);
  return name === undefined ? {} : (outcome.metadata[name] ?? {});
}

const num = (v: MetadataValue | undefined): number | null => (typeof v === 'number' ? v : null);
const str = (v: MetadataValue | undefined): string | null => (typeof v === 'string' ? v : null);

function tally(report: DemoReport, m: Record<string, MetadataValue>): void {
  if (str(m['provider']) === null) return;
  report.metered++;
  report.inputTokens += num(m['input_tokens']) ?? 0;
  report.outputTokens += num(m['output_tokens']) ?? 0;
  const cost = num(m['cost_usd']);
  if (cost === null) report.unpriced++;
  else report.costUsd += cost;
}

const usd = (value: number): string => `$${value.toFixed(6)}`;
const thousands = (value: number): string => value.toLocaleString('en-US');

function describe({ metadata: m, outcome }: DemoExchange): string {
  if (outcome.immediateStatus !== null) return `answered by tokenwarden with HTTP ${outcome.immediateStatus} (not sent upstream)`;
  const provider = str(m['provider']);
  if (provider === null) {
    return outcome.skippedRest ? 'not LLM traffic: skipped after the request headers (one round trip)' : 'no metadata returned';
  }
  const model = str(m['model']) ?? '?';
  const served = str(m['response_model']);
  const parts = [
    `${provider} ${model}${served !== null && served !== model ? ` -> ${served}` : ''}`,
    `consumer=${str(m['consumer']) ?? '?'}`,
    `in=${num(m['input_tokens']) ?? '?'} out=${num(m['output_tokens']) ?? '?'} (${str(m['usage_source']) ?? 'none'})`,
    num(m['cost_usd']) === null ? 'unpriced' : usd(num(m['cost_usd'])!),
  ];
  if (outcome.requestBodyRewritten) parts.push('include_usage added');
  const error = str(m['error']);
  if (error !== null) parts.push(`error=${error}`);
  return parts.join('  ');
}

function totals(r: DemoReport, seconds: number): string {
  const other = r.exchanges.length - r.metered;
  const unpriced = r.unpriced > 0 ? `, ${r.unpriced} unpriced` : '';
  return (
    `Sent ${r.exchanges.length} exchanges in ${seconds.toFixed(1)} s: ${r.metered} metered ` +
    `(${thousands(r.inputTokens)} input + ${thousands(r.outputTokens)} output tokens, ${usd(r.costUsd)}${unpriced}), ${other} other.`
  );
}
