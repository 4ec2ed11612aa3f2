/**
 * The budgets admin API over real HTTP (json-routes.ts dispatch, as http.ts mounts it), with a
 * MemoryLedger and a MemoryBudgetRegistry: budgets created through the API, read back with the
 * state admission left in the ledger, updated, deleted; config budgets read-only; templates and
 * their instances; bodies validated; the would-block report.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { budgetRoutes } from '../src/admin/budgets/api.js';
import { dispatchJsonRoute, MAX_JSON_BODY_BYTES } from '../src/admin/json-routes.js';
import { ApiError } from '../src/admin/reply.js';
import { toBudgets, toTemplates, type BudgetsDocument } from '../src/config/budgets-schema.js';
import { Admitter, type Admission, type AdmissionRequest } from '../src/governance/admission.js';
import { PolicySet } from '../src/governance/policy-set.js';
import type { RequestSubject } from '../src/governance/types.js';
import { MemoryLedger } from '../src/ledger/memory.js';
import { MemoryBudgetRegistry } from '../src/registry/budgets-memory.js';
import { effectiveDefinitions } from '../src/registry/merge.js';
import type { BudgetRegistry } from '../src/registry/types.js';

/** 23:30 in Paris on January 31st: the Paris month and day both end in 30 minutes. */
const NOW = Date.parse('2025-01-31T22:30:00Z');

const CONFIG: BudgetsDocument = {
  budgets: [
    {
      id: 'org-monthly',
      mode: 'enforce',
      on_store_error: 'open',
      stop_streams: false,
      limits: [{ cost_usd: 500, per: 'month', timezone: 'Europe/Paris' }],
    },
  ],
  budget_templates: [
    { id: 'per-consumer', group_by: 'consumer', mode: 'monitor', on_store_error: 'open', stop_streams: false, limits: [{ requests: 2, per: 'day' }] },
  ],
};

interface Harness {
  url: string;
  registry: BudgetRegistry;
  ledger: MemoryLedger;
  /** Admission against the policy in force, refreshed first as the sidecar's poller would have. */
  admit(req: AdmissionRequest): Promise<Admission>;
  close(): Promise<void>;
}

/**
 * What the sidecar does: the policy in force is the config plus the registry's definitions
 * (rebuilt here on every read, where the sidecar rebuilds when the registry's version moves).
 */
async function start(registry: BudgetRegistry = new MemoryBudgetRegistry()): Promise<Harness> {
  const ledger = new MemoryLedger({ now: () => NOW });
  const configBudgets = toBudgets(CONFIG);
  const configTemplates = toTemplates(CONFIG);
  let policy = new PolicySet(configBudgets, configTemplates);
  let version = -1;
  const refresh = async (): Promise<void> => {
    const snapshot = await registry.snapshot();
    if (snapshot.version === version) return;
    version = snapshot.version;
    const defs = effectiveDefinitions({ budgets: configBudgets, templates: configTemplates }, snapshot);
    policy = new PolicySet(defs.budgets, defs.templates);
  };
  const admitter = new Admitter({
    policies: () => policy,
    ledger,
    price: (_p, _m, usage) => (usage.total_tokens ?? 0) * 10,
    defaultMaxOutputTokens: 100,
    leaseMs: 60_000,
    ledgerTimeoutMs: 1_000,
  });
  const routes = budgetRoutes({ policies: () => policy, registry, ledger, storeTimeoutMs: 1_000, now: () => NOW });
  const server = http.createServer((req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
    void (async () => {
      await refresh();
      try {
        return (await dispatchJsonRoute(routes, req, path, new URLSearchParams(query))) ?? new ApiError(404, 'not_found', 'no endpoint').reply();
      } catch (err) {
        if (err instanceof ApiError) return err.reply();
        throw err;
      }
    })().then((reply) => {
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body as string);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    registry,
    ledger,
    async admit(req) {
      await refresh();
      return admitter.admit(req);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Answer {
  status: number;
  headers: Headers;
  json: any;
}

async function api(h: Harness, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...headers };
  }
  const res = await fetch(h.url + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? null : JSON.parse(text) };
}

const subject = (consumer: string): RequestSubject => ({ consumer, labels: {}, provider: 'openai', model: 'gpt-4o', api: 'chat_completions' });

let seq = 0;
function admit(h: Harness, consumer: string, promptTokens: number, maxOutputTokens: number) {
  return h.admit({ requestId: `req-${++seq}`, subject: subject(consumer), promptTokens, maxOutputTokens, nowMs: NOW });
}

const TEAM_BUDGET = {
  id: 'team-a',
  description: 'team A daily tokens',
  select: { consumers: ['team-a-*'], providers: ['openai'] },
  limits: [
    { total_tokens: 10_000, per: 'day', timezone: 'Europe/Paris' },
    { requests: 100, per: 'rolling', seconds: 60 },
  ],
};

let h: Harness;

beforeEach(async () => {
  h = await start();
});

afterEach(async () => {
  await h.close();
});

describe('budgets: create, read back with state, update, delete', () => {
  it('round-trips an API budget and shows what admission reserved and settled', async () => {
    const created = await api(h, 'POST', '/api/v1/budgets', TEAM_BUDGET);
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/v1/budgets/team-a');
    expect(created.json).toMatchObject({ id: 'team-a', source: 'api', mode: 'monitor', on_store_error: 'open', stop_streams: false });
    expect(created.json.limits).toEqual([
      { total_tokens: 10_000, per: 'day', timezone: 'Europe/Paris' },
      { requests: 100, per: 'rolling', seconds: 60 },
    ]);

    // Two requests admitted; the first settles with less than it reserved, the second is in flight.
    const first = await admit(h, 'team-a-web', 1_000, 500);
    const second = await admit(h, 'team-a-web', 2_000, 1_000);
    expect(first.admitted && second.admitted).toBe(true);
    expect(first.budgets).toContain('team-a');
    const tokensCounter = first.items.find((i) => i.budgetId === 'team-a' && i.windowEndMs !== undefined)!.counter;
    const requestsCounter = first.items.find((i) => i.budgetId === 'team-a' && i.rollingMs !== undefined)!.counter;
    await h.ledger.settle({ requestId: first.requestId, actual: { [tokensCounter]: 1_200, [requestsCounter]: 1 } });

    const read = await api(h, 'GET', '/api/v1/budgets/team-a');
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: 'team-a', description: 'team A daily tokens', source: 'api', select: TEAM_BUDGET.select });
    const [tokens, requests] = read.json.limits;
    expect(tokens).toMatchObject({
      total_tokens: 10_000,
      per: 'day',
      unit: 'tokens',
      max: 10_000,
      used: 1_200,
      reserved: 3_000,
      remaining: 5_800,
      exhausted: false,
      // The Paris day: from midnight (23:00 UTC the day before) to the next midnight.
      window_start: '2025-01-30T23:00:00.000Z',
      window_end: '2025-01-31T23:00:00.000Z',
    });
    expect(requests).toMatchObject({ requests: 100, per: 'rolling', unit: 'requests', max: 100, used: 1, reserved: 1, remaining: 98 });
    expect(Date.parse(requests.window_end)).toBeGreaterThan(NOW);
    expect(Date.parse(requests.window_end) - Date.parse(requests.window_start)).toBeGreaterThanOrEqual(60_000);
  });

  it('replaces with PUT (200), creates with PUT (201), deletes once (204 then 404)', async () => {
    await api(h, 'POST', '/api/v1/budgets', TEAM_BUDGET);
    const replaced = await api(h, 'PUT', '/api/v1/budgets/team-a', { ...TEAM_BUDGET, id: undefined, mode: 'enforce', limits: [{ cost_usd: 1.5, per: 'week' }] });
    expect(replaced.status).toBe(200);
    const read = await api(h, 'GET', '/api/v1/budgets/team-a');
    expect(read.json.mode).toBe('enforce');
    expect(read.json.limits).toHaveLength(1);
    expect(read.json.limits[0]).toMatchObject({
      cost_usd: 1.5,
      per: 'week',
      timezone: 'UTC',
      week_start: 'monday',
      unit: 'micro_usd',
      max: 1_500_000,
      usd: { max: '1.5', used: '0', reserved: '0', remaining: '1.5' },
      window_start: '2025-01-27T00:00:00.000Z',
      window_end: '2025-02-03T00:00:00.000Z',
    });

    const fresh = await api(h, 'PUT', '/api/v1/budgets/team%20b', { limits: [{ requests: 5, per: 'hour' }] });
    expect(fresh.status).toBe(400);
    expect(fresh.json.error.parameter).toBe('id');
    const made = await api(h, 'PUT', '/api/v1/budgets/team-b', { limits: [{ requests: 5, per: 'hour' }] });
    expect(made.status).toBe(201);
    expect(made.headers.get('location')).toBe('/api/v1/budgets/team-b');

    expect((await api(h, 'DELETE', '/api/v1/budgets/team-a')).status).toBe(204);
    const gone = await api(h, 'GET', '/api/v1/budgets/team-a');
    expect(gone.status).toBe(404);
    expect(gone.json.error.code).toBe('not_found');
    expect((await api(h, 'DELETE', '/api/v1/budgets/team-a')).status).toBe(404);
    expect((await api(h, 'GET', '/api/v1/budgets')).json.items.map((b: { id: string }) => b.id)).toEqual(['org-monthly', 'team-b']);
  });

  it('refuses to create an id twice (409) and a body id that differs from the path (400)', async () => {
    expect((await api(h, 'POST', '/api/v1/budgets', TEAM_BUDGET)).status).toBe(201);
    const again = await api(h, 'POST', '/api/v1/budgets', { ...TEAM_BUDGET, mode: 'enforce' });
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: 'already_exists', parameter: 'id' });
    expect((await api(h, 'GET', '/api/v1/budgets/team-a')).json.mode).toBe('monitor');

    const renamed = await api(h, 'PUT', '/api/v1/budgets/team-a', { ...TEAM_BUDGET, id: 'team-z' });
    expect(renamed.status).toBe(400);
    expect(renamed.json.error.parameter).toBe('id');
  });

  it('lists config budgets, API budgets and template instances, with a page', async () => {
    await api(h, 'POST', '/api/v1/budgets', TEAM_BUDGET);
    await admit(h, 'alice', 10, 10);
    const all = await api(h, 'GET', '/api/v1/budgets');
    expect(all.status).toBe(200);
    expect(all.json.items.map((b: { id: string; source: string }) => [b.id, b.source])).toEqual([
      ['org-monthly', 'config'],
      ['team-a', 'api'],
      ['per-consumer:alice', 'template'],
    ]);
    expect(all.json).toMatchObject({ total: 3, offset: 0, limit: 100, shadowed: [] });
    const org = all.json.items[0];
    // $500 over the Paris month of January, whose end is 23:00 UTC on the 31st.
    expect(org.limits[0]).toMatchObject({ cost_usd: 500, max: 500_000_000, window_start: '2024-12-31T23:00:00.000Z', window_end: '2025-01-31T23:00:00.000Z' });
    expect(org.limits[0].used + org.limits[0].reserved).toBe(200); // 20 tokens at 10 micro-dollars
    expect(all.json.items[2]).toMatchObject({ template: { id: 'per-consumer', group: 'alice' }, select: { consumers: ['alice'] } });
    expect(all.json.items[2].limits[0]).toMatchObject({ requests: 2, reserved: 1, remaining: 1 });

    const page = await api(h, 'GET', '/api/v1/budgets?offset=1&limit=1');
    expect(page.json.items.map((b: { id: string }) => b.id)).toEqual(['team-a']);
    expect(page.json.total).toBe(3);
    expect((await api(h, 'GET', '/api/v1/budgets?sort=id')).json.error).toMatchObject({ code: 'unknown_parameter', parameter: 'sort' });
  });

  it('finds any template instance by id, seen or not, and 404s otherwise', async () => {
    const bob = await api(h, 'GET', '/api/v1/budgets/per-consumer:bob');
    expect(bob.status).toBe(200);
    expect(bob.json).toMatchObject({ id: 'per-consumer:bob', source: 'template', mode: 'monitor' });
    expect(bob.json.limits[0]).toMatchObject({ used: 0, reserved: 0, remaining: 2 });
    expect((await api(h, 'GET', '/api/v1/budgets/nope:bob')).status).toBe(404);
    expect((await api(h, 'GET', '/api/v1/budgets/nope')).status).toBe(404);
  });
});

describe('config budgets are read-only through the API; the config wins', () => {
  it('answers 409 to POST, PUT and DELETE of a config budget or template', async () => {
    const attempts = [
      await api(h, 'POST', '/api/v1/budgets', { id: 'org-monthly', limits: [{ requests: 1, per: 'day' }] }),
      await api(h, 'PUT', '/api/v1/budgets/org-monthly', { limits: [{ requests: 1, per: 'day' }] }),
      await api(h, 'DELETE', '/api/v1/budgets/org-monthly'),
      await api(h, 'PUT', '/api/v1/budget-templates/per-consumer', { group_by: 'provider', limits: [{ requests: 1, per: 'day' }] }),
      await api(h, 'DELETE', '/api/v1/budget-templates/per-consumer'),
    ];
    for (const a of attempts) {
      expect(a.status).toBe(409);
      expect(a.json.error.code).toBe('defined_in_config');
      expect(a.json.error.message).toMatch(/config file/);
    }
    expect((await api(h, 'GET', '/api/v1/budgets/org-monthly')).json).toMatchObject({ source: 'config', mode: 'enforce' });
  });

  it('shows the config budget and reports the API one with the same id as shadowed', async () => {
    const [org] = toBudgets(CONFIG);
    await h.registry.budgets.put({ ...org!, source: 'api', mode: 'monitor' });
    const all = await api(h, 'GET', '/api/v1/budgets');
    expect(all.json.items.filter((b: { id: string }) => b.id === 'org-monthly')).toHaveLength(1);
    expect(all.json.items[0]).toMatchObject({ id: 'org-monthly', source: 'config', mode: 'enforce' });
    expect(all.json.shadowed).toEqual(['org-monthly']);
  });
});

describe('templates', () => {
  it('creates a template whose instances appear for new consumers, and lets a budget override one instance', async () => {
    const created = await api(h, 'POST', '/api/v1/budget-templates', { id: 'per-model', group_by: 'model', mode: 'enforce', limits: [{ total_tokens: 1_000, per: 'hour' }] });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ id: 'per-model', group_by: 'model', source: 'api', mode: 'enforce' });
    const list = await api(h, 'GET', '/api/v1/budget-templates');
    expect(list.json.items.map((t: { id: string; source: string }) => [t.id, t.source])).toEqual([
      ['per-consumer', 'config'],
      ['per-model', 'api'],
    ]);

    const admitted = await admit(h, 'carol', 100, 100);
    expect(admitted.budgets).toContain('per-model:openai/gpt-4o');
    const instance = await api(h, 'GET', '/api/v1/budgets/per-model:openai%2Fgpt-4o');
    expect(instance.json).toMatchObject({ source: 'template', template: { id: 'per-model', group: 'openai/gpt-4o' } });
    expect(instance.json.limits[0]).toMatchObject({ reserved: 200, remaining: 800 });

    // An explicit budget with the instance's id overrides it and keeps its counters.
    const override = await api(h, 'PUT', '/api/v1/budgets/per-model:openai%2Fgpt-4o', { limits: [{ total_tokens: 5_000, per: 'hour' }] });
    expect(override.status).toBe(201);
    const read = await api(h, 'GET', '/api/v1/budgets/per-model:openai%2Fgpt-4o');
    expect(read.json).toMatchObject({ source: 'api' });
    expect(read.json.limits[0]).toMatchObject({ max: 5_000, reserved: 200, remaining: 4_800 });
    const ids = (await api(h, 'GET', '/api/v1/budgets')).json.items.map((b: { id: string }) => b.id);
    expect(ids.filter((id: string) => id === 'per-model:openai/gpt-4o')).toHaveLength(1);
  });

  it('validates template ids and overrides', async () => {
    const colon = await api(h, 'POST', '/api/v1/budget-templates', { id: 'a:b', group_by: 'consumer', limits: [{ requests: 1, per: 'day' }] });
    expect(colon.status).toBe(400);
    expect(colon.json.error.parameter).toBe('id');
    const orphan = await api(h, 'POST', '/api/v1/budgets', { id: 'missing:alice', limits: [{ requests: 1, per: 'day' }] });
    expect(orphan.status).toBe(400);
    expect(orphan.json.error.message).toMatch(/template "missing"/);
    const groupBy = await api(h, 'POST', '/api/v1/budget-templates', { id: 't', group_by: 'colour', limits: [{ requests: 1, per: 'day' }] });
    expect(groupBy.json.error).toMatchObject({ code: 'invalid_body', parameter: 'group_by' });
    expect((await api(h, 'DELETE', '/api/v1/budget-templates/never')).status).toBe(404);
  });
});

describe('request validation', () => {
  it('answers 400 naming the bad field', async () => {
    const cases: [unknown, string][] = [
      [{ limits: [{ requests: 1, per: 'day' }] }, 'id'],
      [{ id: 'x', limits: [{ requests: 1, per: 'fortnight' }] }, 'limits[0].per'],
      [{ id: 'x', limits: [{ requests: -1, per: 'day' }] }, 'limits[0].requests'],
      [{ id: 'x', limits: [{ requests: 1, per: 'day', timezone: 'Mars/Olympus' }] }, 'limits[0].timezone'],
      [{ id: 'x', limits: [{ requests: 1, per: 'rolling' }] }, 'limits[0].seconds'],
      [{ id: 'x', limits: [] }, 'limits'],
      [{ id: 'x', mode: 'block', limits: [{ requests: 1, per: 'day' }] }, 'mode'],
      [{ id: 'x', select: { providers: ['opneai'] }, limits: [{ requests: 1, per: 'day' }] }, 'select.providers[0]'],
      [{ id: 'x', colour: 'red', limits: [{ requests: 1, per: 'day' }] }, 'colour'],
    ];
    for (const [body, field] of cases) {
      const a = await api(h, 'POST', '/api/v1/budgets', body);
      expect(a.status, JSON.stringify(body)).toBe(400);
      expect(a.json.error).toMatchObject({ code: 'invalid_body', parameter: field });
      expect(a.json.error.message).toContain(field);
    }
    expect((await api(h, 'GET', '/api/v1/budgets')).json.total).toBe(1);
  });

  it('rejects bodies that are not one JSON object of sane size', async () => {
    const notObject = await api(h, 'POST', '/api/v1/budgets', [1, 2]);
    expect(notObject.json.error).toMatchObject({ code: 'invalid_body', parameter: null });
    const malformed = await api(h, 'POST', '/api/v1/budgets', '{"id": ');
    expect(malformed.json.error.code).toBe('invalid_json');
    const empty = await api(h, 'POST', '/api/v1/budgets', '');
    expect(empty.status).toBe(400);
    const text = await api(h, 'POST', '/api/v1/budgets', JSON.stringify(TEAM_BUDGET), { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    const huge = await api(h, 'POST', '/api/v1/budgets', { ...TEAM_BUDGET, description: 'x'.repeat(MAX_JSON_BODY_BYTES) });
    expect(huge.status).toBe(413);
    const getWithBody = await api(h, 'DELETE', '/api/v1/budgets/team-a', TEAM_BUDGET);
    expect(getWithBody.json.error.code).toBe('body_not_allowed');
    expect((await api(h, 'GET', '/api/v1/budgets')).json.total).toBe(1);
  });

  it('answers 405 with Allow for a method a path does not take, and serves HEAD', async () => {
    const patch = await api(h, 'PATCH', '/api/v1/budgets/x', { mode: 'enforce' });
    expect(patch.status).toBe(405);
    expect(patch.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE');
    expect((await api(h, 'DELETE', '/api/v1/budgets')).headers.get('allow')).toBe('GET, HEAD, POST');
    expect((await fetch(`${h.url}/api/v1/budgets`, { method: 'HEAD' })).status).toBe(200);
    expect((await api(h, 'GET', '/api/v1/budgets/a/b')).status).toBe(404);
  });
});

describe('would-block report', () => {
  it('counts monitor budgets that would have refused, by budget and consumer, over a range', async () => {
    await api(h, 'POST', '/api/v1/budgets', { id: 'tiny', select: { consumers: ['team-*'] }, limits: [{ total_tokens: 150, per: 'day' }] });
    // 100 tokens each: the first fits, the next ones would not (tiny is in monitor mode: all admitted).
    const answers = [await admit(h, 'team-x', 50, 50), await admit(h, 'team-x', 50, 50), await admit(h, 'team-x', 50, 50), await admit(h, 'team-y', 50, 50)];
    expect(answers.every((a) => a.admitted)).toBe(true);
    // per-consumer allows 2 requests a day per consumer: team-x's third would have been refused too.

    const report = await api(h, 'GET', `/api/v1/would-block?from=${encodeURIComponent('2025-01-31T00:00:00Z')}&to=${NOW + 1}`);
    expect(report.status).toBe(200);
    expect(report.json).toMatchObject({ from: '2025-01-31T00:00:00.000Z', to: '2025-01-31T23:00:00.000Z', total: 4 });
    expect(report.json.budgets).toEqual([
      { budget: 'tiny', mode: 'monitor', count: 3, consumers: 2 },
      { budget: 'per-consumer:team-x', mode: 'monitor', count: 1, consumers: 1 },
    ]);
    expect(report.json.items).toEqual([
      { budget: 'tiny', consumer: 'team-x', count: 2, hours: [{ hour_start: '2025-01-31T22:00:00.000Z', count: 2 }] },
      { budget: 'per-consumer:team-x', consumer: 'team-x', count: 1, hours: [{ hour_start: '2025-01-31T22:00:00.000Z', count: 1 }] },
      { budget: 'tiny', consumer: 'team-y', count: 1, hours: [{ hour_start: '2025-01-31T22:00:00.000Z', count: 1 }] },
    ]);

    const byConsumer = await api(h, 'GET', '/api/v1/would-block?consumer=team-y');
    expect(byConsumer.json.items.map((i: { budget: string }) => i.budget)).toEqual(['tiny']);
    const byBudget = await api(h, 'GET', '/api/v1/would-block?budget=per-consumer:team-x');
    expect(byBudget.json.total).toBe(1);
    const earlier = await api(h, 'GET', '/api/v1/would-block?from=2025-01-30T00:00:00Z&to=2025-01-31T00:00:00Z');
    expect(earlier.json).toMatchObject({ total: 0, items: [], budgets: [] });
  });

  it('validates the range', async () => {
    expect((await api(h, 'GET', '/api/v1/would-block?from=yesterday')).json.error).toMatchObject({ code: 'invalid_parameter', parameter: 'from' });
    expect((await api(h, 'GET', '/api/v1/would-block?from=2025-01-31T00:00:00Z&to=2025-01-30T00:00:00Z')).json.error.parameter).toBe('to');
    expect((await api(h, 'GET', '/api/v1/would-block?from=2024-01-01T00:00:00Z&to=2025-01-31T00:00:00Z')).json.error.parameter).toBe('from');
    expect((await api(h, 'GET', '/api/v1/would-block?team=a')).json.error.code).toBe('unknown_parameter');
  });
});

describe('store failures', () => {
  it('answers 503 when the registry does not answer, and changes nothing', async () => {
    await h.close();
    const broken = new MemoryBudgetRegistry();
    const failing = (): Promise<never> => Promise.reject(new Error('connection refused'));
    h = await start(broken);
    broken.budgets.create = failing;
    const a = await api(h, 'POST', '/api/v1/budgets', TEAM_BUDGET);
    expect(a.status).toBe(503);
    expect(a.json.error.code).toBe('store_unavailable');
    expect(await broken.budgets.list()).toEqual([]);
  });
});
