/**
 * `tokenwarden demo` replays its samples into a real server over gRPC, as Envoy would: the server
 * must record each exchange as the sample describes it, and the demo must print what it saw.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo, type DemoReport } from '../src/demo/run.js';
import { DEMO_SAMPLES } from '../src/demo/samples.js';
import type { ExchangeRecord } from '../src/domain.js';
import { startTestServer, type TestServer } from './support/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Expected {
  sample: string;
  provider: string;
  api: string;
  model: string;
  responseModel: string | null;
  stream: boolean;
  consumer: string | null;
  input: number;
  output: number;
  priced: boolean;
}

// What each sample's bodies say (see src/demo/samples.ts), as tokenwarden normalises it.
const EXPECTED: Expected[] = [
  { sample: 'openai-chat', provider: 'openai', api: 'chat_completions', model: 'gpt-4o-mini', responseModel: 'gpt-4o-mini-2024-07-18', stream: false, consumer: 'checkout-service', input: 1245, output: 187, priced: true },
  { sample: 'openai-chat-stream', provider: 'openai', api: 'chat_completions', model: 'gpt-4o', responseModel: 'gpt-4o-2024-08-06', stream: true, consumer: 'support-bot', input: 356, output: 42, priced: true },
  { sample: 'anthropic-stream', provider: 'anthropic', api: 'messages', model: 'claude-3-5-haiku-20241022', responseModel: 'claude-3-5-haiku-20241022', stream: true, consumer: 'support-bot', input: 892, output: 128, priced: true },
  { sample: 'gemini', provider: 'gcp_gemini', api: 'generate_content', model: 'gemini-2.0-flash', responseModel: 'gemini-2.0-flash', stream: false, consumer: null, input: 2048, output: 311, priced: true },
  { sample: 'bedrock-converse', provider: 'aws_bedrock', api: 'converse', model: 'anthropic.claude-3-haiku-20240307-v1:0', responseModel: null, stream: false, consumer: 'finance-reports', input: 1520, output: 240, priced: true },
  { sample: 'ollama-stream', provider: 'ollama', api: 'ollama_chat', model: 'llama3.2:3b', responseModel: 'llama3.2:3b', stream: true, consumer: 'data-pipeline', input: 64, output: 212, priced: false },
];

let server: TestServer;
let report: DemoReport;
const lines: string[] = [];

beforeAll(async () => {
  server = await startTestServer();
  report = await runDemo({ target: server.address, write: (line) => lines.push(line) });
});

afterAll(async () => {
  await server?.stop();
});

function recordOf(model: string): ExchangeRecord {
  const found = server.records.filter((r) => r.model === model);
  expect(found, `records for ${model}`).toHaveLength(1);
  return found[0]!;
}

describe('tokenwarden demo (library)', () => {
  it('sends every sample once and the server records each LLM exchange as the sample says', () => {
    expect(report.exchanges.map((e) => e.sample)).toEqual(DEMO_SAMPLES.map((s) => s.name));
    // The request that is not LLM traffic is never recorded; each LLM sample exactly once.
    expect(server.records).toHaveLength(EXPECTED.length);
    for (const want of EXPECTED) {
      const r = recordOf(want.model);
      expect(r, want.sample).toMatchObject({
        mode: 'inline',
        provider: want.provider,
        api: want.api,
        responseModel: want.responseModel,
        stream: want.stream,
        status: 200,
        usageSource: 'reported',
        error: null,
        completion: 'complete',
        unpriced: !want.priced,
      });
      expect(r.usage.input_tokens, want.sample).toBe(want.input);
      expect(r.usage.output_tokens, want.sample).toBe(want.output);
      expect(r.costMicroUsd !== null, want.sample).toBe(want.priced);
      if (want.consumer !== null) expect(r.consumer, want.sample).toEqual({ id: want.consumer, resolver: 'header' });
    }
  });

  it('identifies a consumer without a consumer header by a fingerprint of its API key, never the key', () => {
    const gemini = recordOf('gemini-2.0-flash');
    expect(gemini.consumer?.resolver).toBe('api_key');
    expect(gemini.consumer?.id).toMatch(/^key:[0-9a-f]+$/);
    expect(JSON.stringify(gemini)).not.toContain('AIza-demo');
  });

  it('gets include_usage added to the OpenAI stream that did not ask for usage, and the cached prompt tokens counted', () => {
    expect(recordOf('gpt-4o').usageInjected).toBe(true);
    expect(report.exchanges.find((e) => e.sample === 'openai-chat-stream')?.outcome.requestBodyRewritten).toBe(true);
    expect(recordOf('gpt-4o-mini').usage.cached_input_tokens).toBe(1024);
  });

  it('has the request that is not LLM traffic skipped after its headers', () => {
    const other = report.exchanges.find((e) => e.sample === 'inventory-api');
    expect(other?.outcome.skippedRest).toBe(true);
    expect(other?.metadata).toEqual({});
  });

  it('prints one line per exchange with what tokenwarden answered, then the totals', () => {
    expect(lines[0]).toBe(`Replaying ${DEMO_SAMPLES.length} sample exchanges into tokenwarden at ${server.address}, as Envoy would:`);
    for (const want of EXPECTED) {
      const line = lines.find((l) => l.includes(` ${want.sample} `));
      expect(line, want.sample).toContain(`${want.provider} ${want.model}`);
      expect(line, want.sample).toContain(`in=${want.input} out=${want.output} (reported)`);
      expect(line, want.sample).toMatch(want.priced ? /\$\d+\.\d{6}/ : /unpriced/);
    }
    expect(lines.find((l) => l.includes(' openai-chat-stream '))).toContain('include_usage added');
    expect(lines.find((l) => l.includes(' inventory-api '))).toContain('not LLM traffic');

    const input = EXPECTED.reduce((sum, e) => sum + e.input, 0);
    const output = EXPECTED.reduce((sum, e) => sum + e.output, 0);
    const cost = server.records.reduce((sum, r) => sum + (r.costMicroUsd ?? 0), 0) / 1e6;
    expect(report).toMatchObject({ metered: EXPECTED.length, inputTokens: input, outputTokens: output, unpriced: 1 });
    expect(report.costUsd).toBeCloseTo(cost, 9);
    const totals = lines.find((l) => l.startsWith('Sent '));
    expect(totals).toMatch(
      new RegExp(`^Sent 7 exchanges in [\\d.]+ s: 6 metered \\(${input.toLocaleString('en-US')} input \\+ ${output.toLocaleString('en-US')} output tokens, \\$${cost.toFixed(6).replace('.', '\\.')}, 1 unpriced\\), 1 other\\.$`),
    );
  });
});

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Finished> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, ...out })));
}

/** A loopback port with nothing listening (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('tokenwarden demo (command line)', () => {
  it('replays --count exchanges, cycling through the samples, and exits 0', async () => {
    const before = server.records.length;
    const run = await cli(['demo', '--target', server.address, '--count', '9']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`[9/9] ${DEMO_SAMPLES[1]!.name}`);
    expect(run.stdout).toMatch(/^Sent 9 exchanges in [\d.]+ s: 8 metered /m);
    // Samples 8 and 9 are the first two again: 8 LLM exchanges in all.
    expect(server.records.length - before).toBe(8);
  });

  it('explains an unreachable target and exits 1', async () => {
    const port = await closedPort();
    const run = await cli(['demo', '--target', `127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`tokenwarden demo: cannot reach tokenwarden at 127.0.0.1:${port} (connect ECONNREFUSED`);
    expect(run.stderr).toContain('Is "tokenwarden serve" running there?');
  });

  it('refuses a malformed --target or --count as a usage error (exit 2)', async () => {
    const badTarget = await cli(['demo', '--target', 'localhost']);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toContain('--target: expected host:port');
    const badCount = await cli(['demo', '--count', '0']);
    expect(badCount.code).toBe(2);
    expect(badCount.stderr).toContain('--count must be a whole number from 1 to');
  });
});
