/**
 * Budgets end to end, through the real gRPC server and the Envoy emulator in sidecar mode (request
 * buffered, response streamed, no fail-open), with the memory store. Everything is asserted where a
 * user sees it: what the client receives, whether the upstream was contacted, and what the admin API
 * and the metrics report. Calendar window boundaries are covered by the unit tests of windows.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { TokenwardenConfig } from '../src/config/types.js';
import { EnvoyEmulator, type ExchangeInput, type ExchangeResult, type UpstreamRequest } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { headers, rawClient } from './support/raw-client.js';
import { startTestServer, type TestServer } from './support/server.js';
import { eventually } from './support/wait.js';

const fixtures = loadFixtures();
const fixture = (name: string): Fixture => fixtures.find((f) => f.name === name)!;

let sequence = 0;
const uniqueRequestId = (): string => `budget-test-${process.pid}-${++sequence}`;

/** The request headers with our consumer and request id instead of the recorded ones. */
function identity(list: readonly [string, string][], consumer: string, requestId: string): [string, string][] {
  return [...list.filter(([k]) => k !== 'x-consumer-id' && k !== 'x-request-id'), ['x-consumer-id', consumer], ['x-request-id', requestId]];
}

function fromFixture(fx: Fixture, consumer: string, requestId = uniqueRequestId()): ExchangeInput {
  return {
    request: { headers: identity(fx.request.headers, consumer, requestId), body_chunks: fx.request.body_chunks },
    upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
  };
}

interface ChatOptions {
  consumer: string;
  requestId?: string;
  maxTokens?: number;
  /** The user message (default `Say hi.`). */
  content?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** Upstream answer: 200 with usage (default), or an HTML 500 page without usage. */
  fail?: boolean;
  /** Runs when the upstream receives the request, before it answers. */
  onUpstream?: (req: UpstreamRequest) => Promise<void>;
}

interface ChatParts {
  requestHeaders: [string, string][];
  requestBody: Buffer;
  responseHeaders: [string, string][];
  responseBody: Buffer;
}

/** A non-streaming OpenAI chat completion whose upstream reports exactly the given usage. */
function chatParts(o: ChatOptions): ChatParts {
  const prompt = o.promptTokens ?? 12;
  const completion = o.completionTokens ?? 5;
  const body = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: o.maxTokens ?? 100, messages: [{ role: 'user', content: o.content ?? 'Say hi.' }] });
  const answer = o.fail
    ? '<html><body>502 Bad Gateway</body></html>'
    : JSON.stringify({
        id: 'chatcmpl-1',
        object: 'chat.completion',
        model: 'gpt-4o-mini-2024-07-18',
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
      });
  return {
    requestHeaders: identity(
      [
        [':method', 'POST'],
        [':authority', 'api.openai.com'],
        [':path', '/v1/chat/completions'],
        [':scheme', 'https'],
        ['content-type', 'application/json'],
        ['content-length', String(Buffer.byteLength(body))],
      ],
      o.consumer,
      o.requestId ?? uniqueRequestId(),
    ),
    requestBody: Buffer.from(body),
    responseHeaders: [[':status', o.fail ? '500' : '200'], ['content-type', o.fail ? 'text/html' : 'application/json']],
    responseBody: Buffer.from(answer),
  };
}

function chat(o: ChatOptions): ExchangeInput {
  const p = chatParts(o);
  return {
    request: { headers: p.requestHeaders, body_chunks: [p.requestBody] },
    upstream: async (req) => {
      await o.onUpstream?.(req);
      return { headers: p.responseHeaders, body_chunks: [p.responseBody] };
    },
  };
}

/** Parses budgets and templates from YAML, as `tokenwarden serve` would. */
function budgetConfig(yaml: string): Pick<TokenwardenConfig, 'budgets' | 'budget_templates'> {
  const parsed = parseConfig(yaml, 'budgets.test.yaml', {});
  return { budgets: parsed.budgets, budget_templates: parsed.budget_templates };
}

async function startWithBudgets(yaml: string): Promise<TestServer> {
  const { budgets, budget_templates } = budgetConfig(yaml);
  return startTestServer((c) => {
    c.admin.address = '127.0.0.1:0';
    c.budgets = budgets;
    c.budget_templates = budget_templates;
    // API budgets apply when a test calls refreshBudgets(), not when a poll happens to run.
    c.governance.registry_poll_ms = 3_600_000;
  });
}

async function api(srv: TestServer, path: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${srv.adminAddress}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

interface LimitView {
  max: number;
  used: number;
  reserved: number;
  remaining: number;
  [key: string]: unknown;
}

async function budgetView(srv: TestServer, id: string): Promise<{ id: string; source: string; limits: LimitView[]; [k: string]: unknown }> {
  const { status, body } = await api(srv, `/api/v1/budgets/${encodeURIComponent(id)}`);
  expect(status).toBe(200);
  return body;
}


async function decisions(srv: TestServer, budget: string): Promise<Record<string, number>> {
  const metric = await srv.server.metrics.budgetDecisions.get();
  const out: Record<string, number> = {};
  for (const v of metric.values) if (v.labels.budget === budget) out[String(v.labels.decision)] = v.value;
  return out;
}

function expectRefusedLocally(r: ExchangeResult): void {
  expect(r.errors).toEqual([]);
  expect(r.downstream.status).toBe(429);
  expect(r.upstream.contacted).toBe(false);
  expect(r.upstream.body.length).toBe(0);
}

function expectAdmitted(r: ExchangeResult): void {
  expect(r.errors).toEqual([]);
  expect(r.downstream.status).toBe(200);
  expect(r.upstream.contacted).toBe(true);
}

const MAIN_CONFIG = `
budgets:
  - id: daily-openai
    mode: enforce
    select: { consumers: [formats], providers: [openai] }
    limits: [{ requests: 1, per: day }]
  - id: daily-anthropic
    mode: enforce
    select: { consumers: [formats], providers: [anthropic] }
    limits: [{ requests: 1, per: day }]
  - id: daily-gemini
    mode: enforce
    select: { consumers: [formats], providers: [gcp_gemini] }
    limits: [{ requests: 1, per: day }]
  - id: daily-bedrock
    mode: enforce
    select: { consumers: [formats], providers: [aws_bedrock] }
    limits: [{ requests: 1, per: day }]
  - id: watch-only
    select: { consumers: [monitor-app] }
    limits: [{ requests: 1, per: day }]
  - id: org
    mode: enforce
    select: { consumers: ["acme-*"] }
    limits: [{ output_tokens: 100000, per: month }]
  - id: team-payments
    mode: enforce
    select: { consumers: ["acme-payments-*"] }
    limits: [{ output_tokens: 30, per: day }]
  - id: app-checkout
    mode: enforce
    select: { consumers: [acme-payments-checkout] }
    limits: [{ output_tokens: 1000, per: day }]
  - id: per-consumer:tpl-vip
    mode: enforce
    limits: [{ requests: 3, per: day }]
  - id: settle-check
    mode: enforce
    select: { consumers: ["settle-*"] }
    limits:
      - { total_tokens: 1000000, per: day }
      - { output_tokens: 1000000, per: day }
      - { cost_usd: 100, per: month }
  - id: prompt-tokens
    mode: enforce
    select: { consumers: [long-prompt] }
    limits: [{ total_tokens: 1000, per: day }]
  - id: roomy-prompt-tokens
    mode: enforce
    select: { consumers: [roomy-prompt] }
    limits: [{ total_tokens: 1000000, per: day }]
  - id: dup-guard
    mode: enforce
    select: { consumers: ["dup-*"] }
    limits: [{ output_tokens: 100, per: day }]
budget_templates:
  - id: per-consumer
    mode: enforce
    group_by: consumer
    select: { consumers: ["tpl-*"] }
    limits: [{ requests: 2, per: day }]
`;

describe('budgets through the gRPC server (memory store)', () => {
  let srv: TestServer;
  let envoy: EnvoyEmulator;
  beforeAll(async () => {
    srv = await startWithBudgets(MAIN_CONFIG);
    envoy = new EnvoyEmulator(srv.address, SIDECAR);
  });
  afterAll(async () => {
    await envoy.close();
    await srv.stop();
  });

  describe('an exhausted enforce budget answers 429 in the format of the API the client called', () => {
    const cases = [
      {
        budget: 'daily-openai',
        fixture: 'openai_chat_completions_basic',
        check(body: any) {
          // What the OpenAI SDKs read: error.message, error.type, error.code.
          expect(body.error.code).toBe('budget_exceeded');
          expect(typeof body.error.type).toBe('string');
          expect(body.error.message).toContain('daily-openai');
        },
      },
      {
        budget: 'daily-anthropic',
        fixture: 'anthropic_messages_prompt_cache_read',
        check(body: any) {
          expect(body.type).toBe('error');
          expect(body.error.type).toBe('rate_limit_error');
          expect(body.error.message).toContain('daily-anthropic');
        },
      },
      {
        budget: 'daily-gemini',
        fixture: 'gemini_generate_content_thinking',
        check(body: any) {
          expect(body.error.code).toBe(429);
          expect(body.error.status).toBe('RESOURCE_EXHAUSTED');
          expect(body.error.message).toContain('daily-gemini');
        },
      },
      {
        budget: 'daily-bedrock',
        fixture: 'bedrock_converse_cache_read',
        check(body: any, r: ExchangeResult) {
          // botocore reads the error code from x-amzn-errortype and the text from `message`.
          expect(r.downstream.headers?.get('x-amzn-errortype')).toBe('ThrottlingException');
          expect(body.message).toContain('daily-bedrock');
        },
      },
    ];

    for (const c of cases) {
      it(`${c.fixture}: first request admitted with remaining headers, second refused without reaching the upstream`, async () => {
        const fx = fixture(c.fixture);
        const first = await envoy.exchange(fromFixture(fx, 'formats'));
        expectAdmitted(first);
        const h1 = first.downstream.headers!;
        expect(h1.get('x-tokenwarden-budget')).toBe(c.budget);
        expect(h1.get('x-tokenwarden-limit-requests')).toBe('1');
        expect(h1.get('x-tokenwarden-remaining-requests')).toBe('0');
        // The provider's own rate-limit headers reach the client untouched.
        expect(h1.get('x-ratelimit-limit-requests')).toBe(fx.response.headers.find(([k]) => k === 'x-ratelimit-limit-requests')?.[1]);

        const second = await envoy.exchange(fromFixture(fx, 'formats'));
        expectRefusedLocally(second);
        const h2 = second.downstream.headers!;
        expect(h2.get('content-type')).toBe('application/json');
        expect(h2.get('x-tokenwarden-budget')).toBe(c.budget);
        expect(h2.get('x-ratelimit-limit-requests')).toBe('1');
        expect(h2.get('x-ratelimit-remaining-requests')).toBe('0');
        const retryAfter = Number(h2.get('retry-after'));
        // A daily window: the client may retry when the UTC day ends.
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(86_400);
        expect(h2.get('x-ratelimit-reset-requests')).toBe(String(retryAfter));
        c.check(JSON.parse(second.downstream.body.toString('utf8')), second);

        expect(await decisions(srv, c.budget)).toEqual({ admitted: 1, blocked: 1 });
        // The refused exchange is still recorded (inventory), as refused by this budget.
        await eventually(async () => {
          const refused = srv.records.filter((rec) => rec.status === 429 && rec.consumer?.id === 'formats' && rec.provider === fx.expected.provider);
          expect(refused.map((rec) => rec.blockedBy)).toEqual([[c.budget]]);
        });
      });
    }
  });

  it('monitor mode never blocks, flags would-block on the response and reports it', async () => {
    const results: ExchangeResult[] = [];
    for (let i = 0; i < 3; i++) results.push(await envoy.exchange(chat({ consumer: 'monitor-app' })));
    for (const r of results) expectAdmitted(r);
    expect(results.map((r) => r.downstream.headers?.get('x-tokenwarden-would-block'))).toEqual([undefined, 'watch-only', 'watch-only']);

    const report = await api(srv, '/api/v1/would-block?budget=watch-only');
    expect(report.status).toBe(200);
    expect(report.body.total).toBe(2);
    expect(report.body.budgets).toEqual([{ budget: 'watch-only', mode: 'monitor', count: 2, consumers: 1 }]);
    expect(report.body.items).toHaveLength(1);
    expect(report.body.items[0]).toMatchObject({ budget: 'watch-only', consumer: 'monitor-app', count: 2 });
    expect(await decisions(srv, 'watch-only')).toEqual({ admitted: 1, would_block: 2 });
    // Monitor budgets still count what was spent.
    await eventually(async () => expect((await budgetView(srv, 'watch-only')).limits[0]).toMatchObject({ used: 3, reserved: 0 }));
  });

  it('nested budgets: the tightest refuses and nothing is reserved on the others', async () => {
    const first = await envoy.exchange(chat({ consumer: 'acme-payments-checkout', maxTokens: 20, completionTokens: 20 }));
    expectAdmitted(first);
    // The team budget (20 of 30 left after this request) is the tightest of the three.
    expect(first.downstream.headers?.get('x-tokenwarden-budget')).toBe('team-payments');
    expect(first.downstream.headers?.get('x-tokenwarden-remaining-output-tokens')).toBe('10');
    for (const id of ['org', 'team-payments', 'app-checkout']) {
      await eventually(async () => expect((await budgetView(srv, id)).limits[0]).toMatchObject({ used: 20, reserved: 0 }));
    }

    const second = await envoy.exchange(chat({ consumer: 'acme-payments-checkout', maxTokens: 20, completionTokens: 20 }));
    expectRefusedLocally(second);
    expect(second.downstream.headers?.get('x-tokenwarden-budget')).toBe('team-payments');
    expect(second.downstream.headers?.get('x-ratelimit-remaining-output-tokens')).toBe('10');
    for (const id of ['org', 'team-payments', 'app-checkout']) {
      expect((await budgetView(srv, id)).limits[0]).toMatchObject({ used: 20, reserved: 0 });
    }

    // Another team under the same org is not held back by payments' budget.
    const other = await envoy.exchange(chat({ consumer: 'acme-search-api', maxTokens: 20, completionTokens: 7 }));
    expectAdmitted(other);
    expect(other.downstream.headers?.get('x-tokenwarden-budget')).toBe('org');
    await eventually(async () => expect((await budgetView(srv, 'org')).limits[0]).toMatchObject({ used: 27, reserved: 0 }));
  });

  it('a template gives each new consumer its own budget; an explicit <template>:<consumer> budget replaces it', async () => {
    const statuses = async (consumer: string, n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await envoy.exchange(chat({ consumer }))).downstream.status ?? 0);
      return out;
    };
    expect(await statuses('tpl-newcomer', 3)).toEqual([200, 200, 429]);
    // Its own instance: another new consumer starts from zero.
    expect(await statuses('tpl-other', 1)).toEqual([200]);
    // The override allows 3 a day instead of the template's 2 (and is not added on top of it).
    expect(await statuses('tpl-vip', 4)).toEqual([200, 200, 200, 429]);

    await eventually(async () => {
      const list = await api(srv, '/api/v1/budgets?limit=1000');
      expect(list.status).toBe(200);
      const byId = new Map<string, any>(list.body.items.map((b: any) => [b.id, b]));
      expect(byId.get('per-consumer:tpl-newcomer')).toMatchObject({ source: 'template', template: { id: 'per-consumer', group: 'tpl-newcomer' }, mode: 'enforce' });
      expect(byId.get('per-consumer:tpl-newcomer').limits[0]).toMatchObject({ max: 2, used: 2, reserved: 0 });
      expect(byId.get('per-consumer:tpl-other').limits[0]).toMatchObject({ max: 2, used: 1, reserved: 0 });
      expect(byId.get('per-consumer:tpl-vip')).toMatchObject({ source: 'config' });
      expect(byId.get('per-consumer:tpl-vip').limits[0]).toMatchObject({ max: 3, used: 3, reserved: 0 });
      expect(list.body.items.filter((b: any) => b.id === 'per-consumer:tpl-vip')).toHaveLength(1);
    });
  });

  describe('settlement', () => {
    it('reserves the estimate while in flight, then counts exactly the reported usage', async () => {
      let inFlight: LimitView[] | undefined;
      const r = await envoy.exchange(
        chat({
          consumer: 'settle-exact',
          maxTokens: 500,
          promptTokens: 40,
          completionTokens: 25,
          onUpstream: async () => {
            inFlight = (await budgetView(srv, 'settle-check')).limits;
          },
        }),
      );
      expectAdmitted(r);
      // While the upstream works on it, the request holds its worst case (max_tokens for output).
      expect(inFlight![1]).toMatchObject({ used: 0, reserved: 500 });
      expect(inFlight![0]!.reserved).toBeGreaterThan(500);
      expect(inFlight![2]!.reserved).toBeGreaterThan(0);

      const record = srv.records.find((rec) => rec.consumer?.id === 'settle-exact')!;
      expect(record.usageSource).toBe('reported');
      expect(record.costMicroUsd).toBeGreaterThan(0);
      await eventually(async () => {
        const limits = (await budgetView(srv, 'settle-check')).limits;
        expect(limits.map((l) => ({ used: l.used, reserved: l.reserved }))).toEqual([
          { used: 65, reserved: 0 },
          { used: 25, reserved: 0 },
          { used: record.costMicroUsd, reserved: 0 },
        ]);
      });
    });

    it('a redelivered final chunk is settled once', async () => {
      const before = (await budgetView(srv, 'settle-check')).limits;
      const client = rawClient(srv.address);
      const s = client.open();
      const ex = chatParts({ consumer: 'settle-redelivered', maxTokens: 300, promptTokens: 10, completionTokens: 30 });
      s.write({ request_headers: { headers: headers(ex.requestHeaders) } });
      s.write({ request_body: { body: ex.requestBody, end_of_stream: true } });
      s.write({ response_headers: { headers: headers(ex.responseHeaders) } });
      s.write({ response_body: { body: ex.responseBody, end_of_stream: true } });
      s.write({ response_body: { body: ex.responseBody, end_of_stream: true } });
      // The first final chunk ends the RPC; the redelivered one reaches a finished stream.
      expect((await s.status).code).toBe(0);
      expect(s.answers).toHaveLength(4);
      s.halfCloseAndCancel();
      client.close();
      await eventually(async () => {
        const limits = (await budgetView(srv, 'settle-check')).limits;
        expect(limits[0]).toMatchObject({ used: before[0]!.used + 40, reserved: 0 });
        expect(limits[1]).toMatchObject({ used: before[1]!.used + 30, reserved: 0 });
      });
      expect(srv.records.filter((rec) => rec.consumer?.id === 'settle-redelivered')).toHaveLength(1);
    });

    it('a failed upstream call (500, no usage) gives its reservation back', async () => {
      const before = (await budgetView(srv, 'settle-check')).limits;
      const r = await envoy.exchange(chat({ consumer: 'settle-failed', maxTokens: 400, fail: true }));
      expect(r.downstream.status).toBe(500);
      expect(r.upstream.contacted).toBe(true);
      await eventually(async () => {
        const limits = (await budgetView(srv, 'settle-check')).limits;
        expect(limits.map((l) => ({ used: l.used, reserved: l.reserved }))).toEqual(before.map((l) => ({ used: l.used, reserved: 0 })));
      });
    });

    it('a stream Envoy cancels before the response leaves nothing reserved or spent', async () => {
      const before = (await budgetView(srv, 'settle-check')).limits;
      const client = rawClient(srv.address);
      const s = client.open();
      const ex = chatParts({ consumer: 'settle-cancelled', maxTokens: 700 });
      s.write({ request_headers: { headers: headers(ex.requestHeaders) } });
      s.write({ request_body: { body: ex.requestBody, end_of_stream: true } });
      const answers = await s.next(2);
      // Admitted: the request body is answered normally, not with a 429.
      expect(answers[1]!.response).toBe('request_body');
      expect((await budgetView(srv, 'settle-check')).limits[1]).toMatchObject({ used: before[1]!.used, reserved: 700 });
      s.halfCloseAndCancel();
      client.close();
      await eventually(async () => {
        const limits = (await budgetView(srv, 'settle-check')).limits;
        expect(limits.map((l) => ({ used: l.used, reserved: l.reserved }))).toEqual(before.map((l) => ({ used: l.used, reserved: 0 })));
      });
    });

    it('two requests that carry the same client-set x-request-id are both counted', async () => {
      // Envoy keeps an x-request-id an internal client already set, so a client can repeat one.
      const before = (await budgetView(srv, 'settle-check')).limits;
      for (let i = 0; i < 2; i++) {
        expectAdmitted(await envoy.exchange(chat({ consumer: 'settle-same-id', requestId: 'fixed-by-the-client', maxTokens: 200, completionTokens: 20 })));
      }
      await eventually(async () => {
        const limits = (await budgetView(srv, 'settle-check')).limits;
        expect(limits[1]).toMatchObject({ used: before[1]!.used + 40, reserved: 0 });
      });
    });
  });

  it('a request that repeats the x-request-id of one in flight still needs room in the budget', async () => {
    // 60 of 100 output tokens are held by the first request while its upstream works; the second
    // asks for 60 more under the same client-set x-request-id, which does not fit.
    let second: ExchangeResult | undefined;
    const first = await envoy.exchange(
      chat({
        consumer: 'dup-client',
        requestId: 'reused-id',
        maxTokens: 60,
        completionTokens: 60,
        onUpstream: async () => {
          second = await envoy.exchange(chat({ consumer: 'dup-client', requestId: 'reused-id', maxTokens: 60, completionTokens: 60 }));
        },
      }),
    );
    expectAdmitted(first);
    expectRefusedLocally(second!);
  });

  it('reserves a prompt by its count when its ceiling would not fit', async () => {
    // 900 bytes: a ceiling of 900 tokens, which with max_tokens 100 is over the limit; about 150 by count.
    const long = await envoy.exchange(chat({ consumer: 'long-prompt', content: 'hello '.repeat(150), maxTokens: 100 }));
    expectAdmitted(long);
    // At most the cheap bound (450) was reserved for the prompt, not the ceiling.
    expect(Number(long.downstream.headers?.get('x-tokenwarden-remaining-tokens'))).toBeGreaterThanOrEqual(1000 - 100 - 450 - 10);
  });

  it('counts a prompt only until the ledger has shown room for its ceiling', async () => {
    for (let i = 0; i < 2; i++) expectAdmitted(await envoy.exchange(chat({ consumer: 'roomy-prompt' })));
    await eventually(async () => expect(srv.records.filter((r) => r.consumer?.id === 'roomy-prompt')).toHaveLength(2));
    const estimates = srv.records.filter((r) => r.consumer?.id === 'roomy-prompt').map((r) => r.promptEstimate);
    // The first decision had not seen the budget's counter; the second reserved the ceiling, untokenised.
    expect(estimates[0]).not.toBeNull();
    expect(estimates[1]).toBeNull();
  });

  it('a budget created through the admin API applies after refreshBudgets()', async () => {
    const created = await api(srv, '/api/v1/budgets', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'api-made', mode: 'enforce', select: { consumers: ['api-client'] }, limits: [{ requests: 1, per: 'day' }] }),
    });
    expect(created.status).toBe(201);
    // Not yet polled: no budget applies to this consumer.
    const before = await envoy.exchange(chat({ consumer: 'api-client' }));
    expectAdmitted(before);
    expect(before.downstream.headers?.get('x-tokenwarden-budget')).toBeUndefined();

    await srv.server.refreshBudgets();
    const first = await envoy.exchange(chat({ consumer: 'api-client' }));
    expectAdmitted(first);
    expect(first.downstream.headers?.get('x-tokenwarden-budget')).toBe('api-made');
    const second = await envoy.exchange(chat({ consumer: 'api-client' }));
    expectRefusedLocally(second);
    expect(second.downstream.headers?.get('x-tokenwarden-budget')).toBe('api-made');
    expect((await budgetView(srv, 'api-made')).source).toBe('api');
  });
});

describe('hot reload of config budgets', () => {
  const yaml = (max: number): string => `
budgets:
  - id: reloadable
    mode: enforce
    select: { consumers: [reload-app] }
    limits: [{ requests: ${max}, per: day }]
`;
  let srv: TestServer;
  let envoy: EnvoyEmulator;
  beforeAll(async () => {
    srv = await startWithBudgets(yaml(2));
    envoy = new EnvoyEmulator(srv.address, SIDECAR);
  });
  afterAll(async () => {
    await envoy.close();
    await srv.stop();
  });

  it('keeps the counters of a budget whose id stays and applies its new limit', async () => {
    const send = async (): Promise<number> => (await envoy.exchange(chat({ consumer: 'reload-app' }))).downstream.status ?? 0;
    expect([await send(), await send(), await send()]).toEqual([200, 200, 429]);

    const next = budgetConfig(yaml(3));
    srv.server.reloadBudgets(next.budgets, next.budget_templates);
    // The two requests already spent still count: one more fits under the new limit of 3.
    expect([await send(), await send()]).toEqual([200, 429]);
    await eventually(async () => expect((await budgetView(srv, 'reloadable')).limits[0]).toMatchObject({ max: 3, used: 3, reserved: 0 }));
  });
});
