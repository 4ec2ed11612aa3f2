/**
 * Secrets and prompts never leave the process. Two real `tokenwarden serve` processes share one
 * Redis without a configured fingerprint secret; every provider fixture is replayed through them,
 * then everything they produced — logs, the whole Redis keyspace (keys and values), /metrics and
 * every admin API response, exports included — is scanned for the fixtures' API keys, prompt and
 * completion text, the admin tokens and the fingerprint secret. Also: the generated secret's
 * behaviour with the memory store and an unreachable Redis, and the admin API's address rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { EnvoyEmulator } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { freePort, startSidecar, type Sidecar } from './support/sidecar-process.js';
import { startTestServer } from './support/server.js';
import { until } from './support/wait.js';
import { FINGERPRINT_SECRET_ENV } from '../src/config/load.js';
import { defaultConfig } from '../src/config/types.js';
import { createServer } from '../src/server.js';
import { createLogger } from '../src/log.js';
import { fingerprintSecretKey } from '../src/store/fingerprint-secret.js';

const fixtures = loadFixtures();
const isLlm = (fx: Fixture): boolean => fx.expected.provider !== 'unknown';

const CREDENTIAL_HEADERS = ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'];
const TEXT_KEYS = new Set(['content', 'text', 'input', 'prompt', 'system', 'thinking', 'instructions']);

/** Long strings under text-bearing keys of a JSON value (prompts and completions). */
function texts(value: unknown, key = '', out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (TEXT_KEYS.has(key) && value.length >= 16) out.push(value.slice(0, 40));
  } else if (Array.isArray(value)) {
    for (const v of value) texts(v, key, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) texts(v, k, out);
  }
  return out;
}

/** Every JSON document in a body: the whole body, or each SSE `data:` payload / NDJSON line. */
function jsonDocuments(body: Buffer): unknown[] {
  const text = body.toString('utf8');
  const candidates = [text, ...text.split('\n').map((line) => line.replace(/^data:\s?/, ''))];
  return candidates.flatMap((candidate) => {
    try {
      return [JSON.parse(candidate) as unknown];
    } catch {
      return [];
    }
  });
}

/** The secret parts of a credential header: a bearer token, a whole key header, or SigV4's key id and signature. */
function credentials(header: string): string[] {
  const value = header.replace(/^Bearer\s+/i, '');
  const sigv4 = /Credential=([^/,\s]+).*Signature=([0-9a-f]+)/.exec(value);
  return (sigv4 ? [sigv4[1]!, sigv4[2]!] : [value]).filter((v) => v.length >= 8);
}

/** API keys, prompts and completions carried by the fixtures. */
const FIXTURE_SECRETS = [
  ...new Set(
    fixtures.flatMap((fx) => [
      ...fx.request.headers.filter(([k]) => CREDENTIAL_HEADERS.includes(k)).flatMap(([, v]) => credentials(v)),
      ...jsonDocuments(Buffer.concat(fx.request.body_chunks)).flatMap((d) => texts(d)),
      ...jsonDocuments(Buffer.concat(fx.response.body_chunks)).flatMap((d) => texts(d)),
    ]),
  ),
];

const ADMIN_TOKEN = 'admin-token-9c1f7e2a';
const VIEWER_TOKEN = 'viewer-token-4b8d03e6';

/** The admin API's read routes, exports included. */
const ROUTES = [
  '/api/v1/whoami',
  '/api/v1/inventory?limit=1000',
  '/api/v1/inventory.csv',
  '/api/v1/consumers?limit=1000',
  '/api/v1/models?limit=1000',
  '/api/v1/usage?group_by=consumer',
  '/api/v1/usage.csv?group_by=model',
  '/api/v1/showback?group_by=consumer',
  '/api/v1/showback.csv?group_by=consumer',
  '/api/v1/export/focus.csv',
  '/api/v1/catalog/export',
  '/api/v1/audit',
  '/api/v1/budgets',
  '/api/v1/budget-templates',
  '/api/v1/would-block',
  '/api/v1/owners',
  '/api/v1/consumer-rules',
  '/api/v1/resources',
  '/api/v1/policies',
  '/metrics',
];

/** Every key of the Redis database with its value, whatever the type. */
async function keyspace(redis: Redis): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      const value =
        type === 'string' ? await redis.get(key)
        : type === 'hash' ? await redis.hgetall(key)
        : type === 'list' ? await redis.lrange(key, 0, -1)
        : type === 'set' ? await redis.smembers(key)
        : type === 'zset' ? await redis.zrange(key, '0', '-1', 'WITHSCORES')
        : type === 'stream' ? await redis.xrange(key, '-', '+')
        : `unscanned type ${type}`;
      out.set(key, JSON.stringify(value));
    }
  } while (cursor !== '0');
  return out;
}

describe('nothing secret leaves the process (two sidecars, one Redis, every fixture)', () => {
  let redis: RedisServer;
  let client: Redis;
  let dir: string;
  const sidecars: { process: Sidecar; admin: string }[] = [];
  const saved = process.env[FINGERPRINT_SECRET_ENV];

  beforeAll(async () => {
    // The point is the generated secret: the sidecars must not inherit one.
    delete process.env[FINGERPRINT_SECRET_ENV];
    redis = await startRedis();
    client = new Redis(redis.url);
    dir = mkdtempSync(path.join(os.tmpdir(), 'tw-security-'));
    for (const name of ['a', 'b']) {
      const grpc = `127.0.0.1:${await freePort()}`;
      const admin = `127.0.0.1:${await freePort()}`;
      const file = path.join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        [
          `grpc: { address: "${grpc}" }`,
          `admin: { address: "${admin}", tokens: [{ name: ops, token: ${ADMIN_TOKEN}, role: admin }, { name: finops, token: ${VIEWER_TOKEN}, role: viewer }] }`,
          `store: { type: redis, redis: { url: "${redis.url}" }, flush_interval_ms: 20 }`,
          'owners: [{ id: payments, name: Payments }]',
          'budgets: [{ id: tiny, mode: monitor, select: { providers: [openai] }, limits: [{ total_tokens: 10, per: day }] }]',
          'budget_templates: [{ id: each-app, mode: monitor, group_by: consumer, limits: [{ requests: 1000, per: day }] }]',
          'logging: { level: debug }',
          '',
        ].join('\n'),
      );
      sidecars.push({ process: await startSidecar(file, grpc), admin });
    }
  }, 60_000);

  afterAll(async () => {
    for (const s of sidecars) {
      s.process.child.kill('SIGTERM');
      await s.process.exited;
    }
    client?.disconnect();
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
    if (saved !== undefined) process.env[FINGERPRINT_SECRET_ENV] = saved;
  });

  const get = async (admin: string, route: string, token = VIEWER_TOKEN) => {
    const res = await fetch(`http://${admin}${route}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, text: await res.text() };
  };

  it('replays every fixture (sidecar mode through one, observability mode through the other) and shares one generated secret', async () => {
    const [a, b] = sidecars;
    const inline = new EnvoyEmulator(a!.process.grpcAddress, SIDECAR);
    const passive = new EnvoyEmulator(b!.process.grpcAddress, OBSERVABILITY);
    for (const fx of fixtures) {
      for (const envoy of [inline, passive]) {
        const r = await envoy.exchange({
          request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
          upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
          attributes: { 'source.address': '10.1.2.3:40000' },
        });
        expect(r.errors, fx.name).toEqual([]);
      }
    }
    await inline.close();
    await passive.close();
    // An admin write, so that the audit log has an entry to scan too.
    const put = await fetch(`http://${a!.admin}/api/v1/policies/global`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'monitor' }),
    });
    expect(put.ok).toBe(true);

    const expected = 2 * fixtures.filter(isLlm).length;
    await until(async () => {
      const page = JSON.parse((await get(a!.admin, '/api/v1/inventory?limit=1000')).text) as { items: { requests: number }[] };
      return page.items.reduce((sum, r) => sum + r.requests, 0) === expected;
    }, 'every exchange of both sidecars in the shared inventory');

    // The first sidecar created the secret, the second read it: the same key has one fingerprint.
    const secret = await client.get(fingerprintSecretKey('tw'));
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const key = fixtures.find((f) => f.name === 'openai_chat_completions_basic')!.request.headers.find(([k]) => k === 'authorization')![1].slice('Bearer '.length);
    const id = `key:${createHmac('sha256', secret!).update(key).digest('hex').slice(0, 16)}`;
    const page = JSON.parse((await get(a!.admin, `/api/v1/inventory?consumer=${encodeURIComponent(id)}&limit=1000`)).text) as {
      items: { key: { consumer: string }; requests: number }[];
    };
    const sameKey = fixtures.filter((f) => isLlm(f) && f.request.headers.some(([k, v]) => k === 'authorization' && v === `Bearer ${key}`)).length;
    expect(page.items.reduce((sum, r) => sum + r.requests, 0)).toBe(2 * sameKey);
  }, 60_000);

  it('no API key, prompt, completion, admin token or fingerprint secret in logs, Redis, /metrics or any admin API response', async () => {
    expect(FIXTURE_SECRETS.length).toBeGreaterThan(40);
    const secretKey = fingerprintSecretKey('tw');
    const fingerprintSecret = (await client.get(secretKey))!;
    const tokens = [ADMIN_TOKEN, VIEWER_TOKEN];
    const places: [where: string, text: string][] = [];
    for (const [index, s] of sidecars.entries()) {
      places.push([`sidecar ${index} logs`, s.process.stderr()]);
      for (const route of ROUTES) {
        const { status, text } = await get(s.admin, route);
        expect(status, route).toBe(200);
        places.push([`sidecar ${index} ${route}`, text]);
      }
    }
    const stored = await keyspace(client);
    expect(stored.size).toBeGreaterThan(10);
    for (const [key, value] of stored) places.push([`redis ${key}`, key + (key === secretKey ? '' : value)]);
    expect(places[0]![1]).toContain('tokenwarden started');

    for (const [where, text] of places) {
      for (const secret of [...FIXTURE_SECRETS, ...tokens, fingerprintSecret]) {
        if (text.includes(secret)) expect.fail(`${where} contains ${secret.slice(0, 12)}…`);
      }
    }
  }, 60_000);
});

describe('the generated fingerprint secret', () => {
  const basic = fixtures.find((f) => f.name === 'openai_chat_completions_basic')!;

  async function consumerOf(address: string, records: { consumer: { id: string } | null }[]): Promise<string | undefined> {
    const envoy = new EnvoyEmulator(address, SIDECAR);
    const before = records.length;
    await envoy.exchange({
      request: { headers: basic.request.headers, body_chunks: basic.request.body_chunks },
      upstream: { headers: basic.response.headers, body_chunks: basic.response.body_chunks },
    });
    await envoy.close();
    await until(() => records.length > before, 'the exchange to be recorded');
    return records[before]!.consumer?.id;
  }

  it('with the memory store, is random per process: stable within it, different in another, never logged', async () => {
    const a = await startTestServer((c) => (c.consumer.fingerprint_secret = ''));
    const b = await startTestServer((c) => (c.consumer.fingerprint_secret = ''));
    try {
      const first = await consumerOf(a.address, a.records);
      expect(first).toMatch(/^key:[0-9a-f]{16}$/);
      expect(await consumerOf(a.address, a.records)).toBe(first);
      expect(await consumerOf(b.address, b.records)).not.toBe(first);
      for (const s of [a, b]) expect(s.logs.join('\n')).toContain('API keys are fingerprinted with a random secret of this process');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('with Redis unreachable at startup, refuses to start, naming the key and never a value', async () => {
    const config = defaultConfig();
    config.grpc.address = '127.0.0.1:0';
    config.admin.address = '';
    config.store.type = 'redis';
    config.store.redis.url = `redis://127.0.0.1:${await freePort()}`;
    config.store.redis.connect_timeout_ms = 100;
    config.store.redis.command_timeout_ms = 100;
    const server = createServer(config, { logger: createLogger('error', () => {}) });
    await expect(server.start()).rejects.toThrow(/cannot read or create the shared fingerprint secret \(Redis key \{tw\}:fingerprint_secret\)/);
    await server.shutdown(0);
  });

  it('is not needed, and Redis is not asked, when no resolver uses API keys', async () => {
    const config = defaultConfig();
    config.grpc.address = '127.0.0.1:0';
    config.admin.address = '';
    config.store.type = 'redis';
    config.store.redis.url = `redis://127.0.0.1:${await freePort()}`;
    config.consumer.resolvers = [{ type: 'header', header: 'x-consumer-id' }];
    const server = createServer(config, { logger: createLogger('error', () => {}) });
    await server.start();
    await server.shutdown(0);
  });
});

describe('the admin API address', () => {
  it('refuses a non-loopback address without an admin token, also for embedders who skip the config loader', () => {
    for (const tokens of [[], [{ name: 'v', token: 'viewer-only', role: 'viewer' as const }]]) {
      const config = defaultConfig();
      config.admin.address = '0.0.0.0:0';
      config.admin.tokens = tokens;
      expect(() => createServer(config)).toThrow(/admin\.address \(0\.0\.0\.0:0\) is not a loopback address/);
    }
  });
});
