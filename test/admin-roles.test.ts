/**
 * Admin tokens and roles over real HTTP: named tokens (and the legacy admin.token, named `admin`),
 * viewers limited to reads (403 on every write), whoami, the actor in the audit log, and the
 * anonymous admin when no token is configured (loopback only, enforced by the config).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { adminTokens, authenticate } from '../src/admin/auth.js';
import { AdminServer, type AdminOptions } from '../src/admin/http.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { EMPTY_DEFINITIONS, Catalog } from '../src/catalog/catalog.js';
import { PolicySet } from '../src/governance/policy-set.js';
import { MemoryCatalogRegistry } from '../src/registry/catalog-memory.js';
import { MemoryLedger } from '../src/ledger/memory.js';
import { MemoryStore } from '../src/inventory/memory.js';
import { MemoryBudgetRegistry } from '../src/registry/budgets-memory.js';

const TOKENS = [
  { name: 'ci-bot', token: 'bot-secret', role: 'admin' as const },
  { name: 'finops', token: 'viewer-secret', role: 'viewer' as const },
];

let admin: AdminServer | null = null;

async function start(over: Partial<AdminOptions> = {}): Promise<{ url: string; catalog: MemoryCatalogRegistry }> {
  const catalog = new MemoryCatalogRegistry();
  admin = new AdminServer({
    address: '127.0.0.1:0',
    metrics: new Metrics({ defaultMetrics: false }),
    store: new MemoryStore({ maxRecords: 10, retentionHours: 1 }),
    token: 'legacy-secret',
    tokens: TOKENS,
    ready: () => true,
    budgets: { policies: () => new PolicySet([], []), registry: new MemoryBudgetRegistry(), ledger: new MemoryLedger() },
    catalog: { registry: catalog, config: () => EMPTY_DEFINITIONS, view: () => new Catalog(EMPTY_DEFINITIONS) },
    ...over,
  });
  return { url: `http://${await admin.start()}`, catalog };
}

afterEach(async () => {
  await admin?.close();
  admin = null;
});

async function send(url: string, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : null };
}

describe('admin roles', () => {
  it('tells each token who it is', async () => {
    const { url } = await start();
    expect((await send(url, 'GET', '/api/v1/whoami', 'bot-secret')).json).toEqual({ name: 'ci-bot', role: 'admin' });
    expect((await send(url, 'GET', '/api/v1/whoami', 'viewer-secret')).json).toEqual({ name: 'finops', role: 'viewer' });
    expect((await send(url, 'GET', '/api/v1/whoami', 'legacy-secret')).json).toEqual({ name: 'admin', role: 'admin' });
    expect((await send(url, 'GET', '/api/v1/whoami')).status).toBe(401);
    expect((await send(url, 'GET', '/api/v1/whoami', 'bot-secret-')).status).toBe(401);
  });

  it('lets a viewer read everything and write nothing (403 before any validation)', async () => {
    const { url, catalog } = await start();
    for (const path of ['/api/v1/owners', '/api/v1/consumers', '/api/v1/budgets', '/api/v1/audit', '/api/v1/resources', '/metrics']) {
      expect([path, (await send(url, 'GET', path, 'viewer-secret')).status]).toEqual([path, 200]);
    }
    const writes: [string, string, unknown][] = [
      ['POST', '/api/v1/owners', { id: 'payments', name: 'Payments' }],
      ['PUT', '/api/v1/owners/payments', { name: 'Payments' }],
      ['DELETE', '/api/v1/owners/payments', undefined],
      ['PUT', '/api/v1/policies/global', { mode: 'enforce' }],
      ['POST', '/api/v1/budgets', { id: 'b', limits: [{ requests: 1, per: 'day' }] }],
      ['DELETE', '/api/v1/budget-templates/t', undefined],
      ['POST', '/api/v1/owners', 'not even json'],
    ];
    for (const [method, path, body] of writes) {
      const answer = await send(url, method, path, 'viewer-secret', body);
      expect([method, path, answer.status, answer.json?.error?.code]).toEqual([method, path, 403, 'forbidden']);
    }
    expect(await catalog.version()).toBe(0);
    expect(await catalog.audit.list({ limit: 10 })).toEqual([]);
  });

  it('lets admin tokens write, each recorded under its own name', async () => {
    const { url, catalog } = await start();
    expect((await send(url, 'POST', '/api/v1/owners', 'bot-secret', { id: 'payments', name: 'Payments' })).status).toBe(201);
    expect((await send(url, 'PUT', '/api/v1/owners/payments', 'legacy-secret', { name: 'Pay' })).status).toBe(200);
    expect((await catalog.audit.list({ limit: 10 })).map((e) => e.actor)).toEqual(['admin', 'ci-bot']);
  });

  it('without tokens, everyone is the anonymous admin', async () => {
    const { url, catalog } = await start({ token: '', tokens: [] });
    expect((await send(url, 'GET', '/api/v1/whoami')).json).toEqual({ name: 'anonymous', role: 'admin' });
    expect((await send(url, 'POST', '/api/v1/owners', undefined, { id: 'payments', name: 'Payments' })).status).toBe(201);
    expect((await catalog.audit.list({ limit: 1 }))[0]?.actor).toBe('anonymous');
  });
});

describe('authenticate', () => {
  const tokens = adminTokens('legacy', TOKENS);

  it('names the token presented, whatever the scheme case; null for none or a wrong one', () => {
    expect(authenticate('bearer viewer-secret', tokens)).toEqual({ name: 'finops', role: 'viewer' });
    expect(authenticate('Bearer legacy', tokens)).toEqual({ name: 'admin', role: 'admin' });
    expect(authenticate('Basic bGVnYWN5', tokens)).toBeNull();
    expect(authenticate(undefined, tokens)).toBeNull();
    expect(authenticate('Bearer legacy2', tokens)).toBeNull();
  });

  it('is the anonymous admin when no token is configured', () => {
    expect(authenticate(undefined, adminTokens('', []))).toEqual({ name: 'anonymous', role: 'admin' });
  });
});
