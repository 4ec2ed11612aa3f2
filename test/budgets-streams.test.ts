/**
 * Budgets and responses: stop_streams (a streamed response that runs past what its enforce budget
 * can still afford is stopped, its output so far counted as estimated usage), the per-model output
 * reservation, and observability mode leaving budget counters alone.
 */
import { describe, expect, it } from 'vitest';
import { EnvoyEmulator } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { startTestServer } from './support/server.js';
import type { Budget } from '../src/governance/types.js';

function budget(stopStreams: boolean): Budget {
  return {
    id: 'output-cap',
    selector: {},
    limits: [{ metric: 'output_tokens', max: 50, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } }],
    mode: 'enforce',
    onStoreError: 'open',
    stopStreams,
    source: 'config',
  };
}

/** An OpenAI chat stream of `n` content chunks of 20 bytes each, then usage and [DONE]. */
function stream(n: number): Buffer[] {
  const chunk = (content: string) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini-2024-07-18', choices: [{ index: 0, delta: { content } }] })}\n\n`;
  const out = Array.from({ length: n }, () => Buffer.from(chunk('twenty bytes of text')));
  out.push(Buffer.from(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o-mini-2024-07-18', choices: [], usage: { prompt_tokens: 9, completion_tokens: n * 4, total_tokens: 9 + n * 4 } })}\n\ndata: [DONE]\n\n`));
  return out;
}

const request = (body: object) => ({
  headers: [
    [':method', 'POST'],
    [':authority', 'api.openai.com'],
    [':path', '/v1/chat/completions'],
    [':scheme', 'https'],
    ['content-type', 'application/json'],
    ['x-consumer-id', 'team-a'],
  ] as [string, string][],
  body_chunks: [Buffer.from(JSON.stringify(body))],
});

describe('stop_streams', () => {
  it('stops a stream that runs past the budget and counts what was streamed', async () => {
    const srv = await startTestServer((c) => (c.budgets = [budget(true)]));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange({
      request: request({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      upstream: { headers: [[':status', '200'], ['content-type', 'text/event-stream']], body_chunks: stream(40), pacing: 'idle' },
    });
    await envoy.close();
    // 10 reserved + 40 left = 50 output tokens allowed; 40 chunks x 20 bytes is ~200 tokens.
    expect(r.downstream.reset).toBe(true);
    expect(r.downstream.body.length).toBeLessThan(Buffer.concat(stream(40)).length);
    const [rec] = await srv.waitForRecords(1);
    expect(rec!.blockedBy).toEqual(['output-cap']);
    expect(rec!.usageSource).toBe('estimated');
    expect(rec!.usage.output_tokens).toBeGreaterThan(50);
    expect(rec!.error).toBeNull();
    await srv.stop();
  });

  it('lets the stream finish when stop_streams is off (the overshoot is counted)', async () => {
    const srv = await startTestServer((c) => (c.budgets = [budget(false)]));
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange({
      request: request({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      upstream: { headers: [[':status', '200'], ['content-type', 'text/event-stream']], body_chunks: stream(40), pacing: 'idle' },
    });
    await envoy.close();
    expect(r.downstream.reset).toBe(false);
    expect(r.downstream.body.equals(Buffer.concat(stream(40)))).toBe(true);
    const [rec] = await srv.waitForRecords(1);
    expect(rec!.blockedBy).toEqual([]);
    expect(rec!.usage.output_tokens).toBe(160);
    await srv.stop();
  });
});

describe('output reservation without max_tokens', () => {
  it('reserves the per-model default from governance.max_output_tokens_by_model', async () => {
    const srv = await startTestServer((c) => {
      c.budgets = [{ ...budget(false), limits: [{ metric: 'output_tokens', max: 100, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } }] }];
      c.governance.max_output_tokens_by_model = [{ model: 'gpt-4o*', tokens: 60 }];
    });
    const envoy = new EnvoyEmulator(srv.address, SIDECAR);
    const r = await envoy.exchange({
      request: request({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      upstream: {
        headers: [[':status', '200'], ['content-type', 'application/json']],
        body_chunks: [Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } }))],
      },
    });
    await envoy.close();
    // Admitted with 60 output tokens held: 40 of 100 left at the decision.
    expect(r.downstream.headers?.get('x-tokenwarden-remaining-output-tokens')).toBe('40');
    await srv.stop();
  });
});

describe('budgets and observability mode', () => {
  it('a discovery gateway never touches budget counters (traffic seen by both is not counted twice)', async () => {
    const srv = await startTestServer((c) => {
      c.admin.address = '127.0.0.1:0';
      c.budgets = [{ ...budget(false), limits: [{ metric: 'requests', max: 1, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } }] }];
    });
    const envoy = new EnvoyEmulator(srv.address, OBSERVABILITY);
    const answer = JSON.stringify({ model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } });
    for (let i = 0; i < 3; i++) {
      const r = await envoy.exchange({
        request: request({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
        upstream: { headers: [[':status', '200'], ['content-type', 'application/json']], body_chunks: [Buffer.from(answer)] },
      });
      expect(r.downstream.status).toBe(200);
    }
    await envoy.close();
    await srv.waitForRecords(3);
    const res = await fetch(`http://${srv.adminAddress}/api/v1/budgets/output-cap`);
    const body = (await res.json()) as { limits: { used: number; reserved: number }[] };
    expect(res.status).toBe(200);
    expect(body.limits[0]).toMatchObject({ used: 0, reserved: 0 });
    await srv.stop();
  });
});
