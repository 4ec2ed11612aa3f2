/**
 * Budgets on a real redis-server through faults: the store goes away (each budget's on_store_error
 * decides, and every such decision is counted) and comes back (decisions work again); a sidecar
 * process is killed while it holds a reservation (the lease runs out, and the budget is whole again
 * for the other sidecars).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { EnvoyEmulator, type ExchangeInput, type ExchangeResult } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { headers, rawClient } from './support/raw-client.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startTestServer, type TestServer } from './support/server.js';
import { freePort, startSidecar, type Sidecar } from './support/sidecar-process.js';
import { eventually } from './support/wait.js';

let sequence = 0;

interface Chat {
  requestHeaders: [string, string][];
  requestBody: Buffer;
  input: ExchangeInput;
}

/** An OpenAI chat completion asking for `maxTokens`; the upstream reports exactly that many. */
function chat(consumer: string, maxTokens: number): Chat {
  const body = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: maxTokens, messages: [{ role: 'user', content: 'Say hi.' }] });
  const answer = JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'gpt-4o-mini-2024-07-18',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'length' }],
    usage: { prompt_tokens: 12, completion_tokens: maxTokens, total_tokens: 12 + maxTokens },
  });
  const requestHeaders: [string, string][] = [
    [':method', 'POST'],
    [':authority', 'api.openai.com'],
    [':path', '/v1/chat/completions'],
    [':scheme', 'https'],
    ['content-type', 'application/json'],
    ['content-length', String(Buffer.byteLength(body))],
    ['x-consumer-id', consumer],
    ['x-request-id', `faults-${process.pid}-${++sequence}`],
  ];
  return {
    requestHeaders,
    requestBody: Buffer.from(body),
    input: {
      request: { headers: requestHeaders, body_chunks: [body] },
      upstream: { headers: [[':status', '200'], ['content-type', 'application/json']], body_chunks: [answer] },
    },
  };
}

const BUDGETS = `
budgets:
  - id: fail-closed
    mode: enforce
    on_store_error: closed
    select: { consumers: [closed-app] }
    limits: [{ requests: 100, per: day }]
  - id: fail-open
    mode: enforce
    on_store_error: open
    select: { consumers: [open-app] }
    limits: [{ requests: 100, per: day }]
  - id: leased
    mode: enforce
    select: { consumers: [lease-app] }
    limits: [{ output_tokens: 100, per: day }]
`;

async function startOnRedis(redis: RedisServer): Promise<TestServer> {
  const parsed = parseConfig(BUDGETS, 'budgets-faults.yaml', {});
  return startTestServer((c) => {
    c.admin.address = '127.0.0.1:0';
    c.store.type = 'redis';
    c.store.redis.url = redis.url;
    c.budgets = parsed.budgets;
    c.budget_templates = parsed.budget_templates;
    c.governance.registry_poll_ms = 3_600_000;
  });
}

async function limitState(srv: TestServer, id: string): Promise<{ max: number; used: number; reserved: number }> {
  const res = await fetch(`http://${srv.adminAddress}/api/v1/budgets/${id}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { limits: { max: number; used: number; reserved: number }[] }).limits[0]!;
}


async function storeErrors(srv: TestServer): Promise<Record<string, number>> {
  const metric = await srv.server.metrics.budgetStoreErrors.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.op}/${v.labels.decision}`, v.value]));
}

describe('budgets when the Redis store is unreachable', () => {
  let redis: RedisServer;
  let srv: TestServer;
  let envoy: EnvoyEmulator;
  beforeAll(async () => {
    redis = await startRedis();
    srv = await startOnRedis(redis);
    envoy = new EnvoyEmulator(srv.address, SIDECAR);
  });
  afterAll(async () => {
    await envoy.close();
    await srv.stop();
    await redis.close();
  });

  it('fails closed or open per budget, counts each such decision, and recovers when Redis is back', async () => {
    const send = (consumer: string): Promise<ExchangeResult> => envoy.exchange(chat(consumer, 10).input);
    // Redis up: both budgets admit and count.
    expect((await send('closed-app')).downstream.status).toBe(200);
    expect((await send('open-app')).downstream.status).toBe(200);
    await eventually(async () => expect(await limitState(srv, 'fail-closed')).toMatchObject({ used: 1, reserved: 0 }));
    expect(await storeErrors(srv)).toEqual({});

    await redis.stop();
    const closed = await send('closed-app');
    expect(closed.downstream.status).toBe(429);
    expect(closed.upstream.contacted).toBe(false);
    expect(closed.downstream.headers?.get('x-tokenwarden-budget')).toBe('fail-closed');
    expect(Number(closed.downstream.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(closed.downstream.body.toString('utf8')).error.message).toContain('fail-closed');

    const open = await send('open-app');
    expect(open.downstream.status).toBe(200);
    expect(open.upstream.contacted).toBe(true);
    expect(await storeErrors(srv)).toMatchObject({ 'reserve/refused': 1, 'reserve/admitted': 1 });

    await redis.restart();
    // The restarted Redis is empty; decisions use it again as soon as the client has reconnected.
    await eventually(async () => {
      const r = await send('closed-app');
      expect(r.downstream.status).toBe(200);
    });
    await eventually(async () => expect(await limitState(srv, 'fail-closed')).toMatchObject({ used: 1, reserved: 0 }));
    expect((await send('open-app')).downstream.status).toBe(200);
  });
});

describe('a sidecar killed while it holds a reservation', () => {
  let redis: RedisServer;
  let dir: string;
  let killed: Sidecar | undefined;
  let other: TestServer | undefined;
  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'tw-budget-lease-'));
  });
  afterAll(async () => {
    killed?.child.kill('SIGKILL');
    await killed?.exited;
    await other?.stop();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves nothing reserved once its lease has run out', async () => {
    const grpcAddress = `127.0.0.1:${await freePort()}`;
    const file = path.join(dir, 'sidecar.yaml');
    writeFileSync(
      file,
      [
        `grpc: { address: "${grpcAddress}" }`,
        'admin: { address: "" }',
        `store: { type: redis, redis: { url: "${redis.url}" } }`,
        'consumer: { fingerprint_secret: lease-test }',
        'governance: { lease_ms: 1000, ledger_timeout_ms: 1000 }',
        BUDGETS,
      ].join('\n'),
    );
    killed = await startSidecar(file, grpcAddress);

    // The whole budget (100 output tokens) is reserved by a request whose response never comes.
    const client = rawClient(grpcAddress);
    const stream = client.open();
    const held = chat('lease-app', 100);
    stream.write({ request_headers: { headers: headers(held.requestHeaders) } });
    stream.write({ request_body: { body: held.requestBody, end_of_stream: true } });
    const answers = await stream.next(2);
    expect(answers[1]!.response).toBe('request_body');
    killed.child.kill('SIGKILL');
    await killed.exited;
    client.close();

    other = await startOnRedis(redis);
    const envoy = new EnvoyEmulator(other.address, SIDECAR);
    try {
      // Until the lease runs out the reservation of the dead sidecar still holds the budget...
      const refused = await envoy.exchange(chat('lease-app', 100).input);
      expect(refused.downstream.status).toBe(429);
      expect(refused.upstream.contacted).toBe(false);
      // ...then it is gone without anyone settling or releasing it.
      await eventually(async () => expect(await limitState(other!, 'leased')).toMatchObject({ used: 0, reserved: 0 }));
      const full = await envoy.exchange(chat('lease-app', 100).input);
      expect(full.downstream.status).toBe(200);
      expect(full.upstream.contacted).toBe(true);
      await eventually(async () => expect(await limitState(other!, 'leased')).toMatchObject({ max: 100, used: 100, reserved: 0 }));
    } finally {
      await envoy.close();
    }
  });
});
