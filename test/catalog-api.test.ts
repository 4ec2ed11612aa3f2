/**
 * The catalog admin API over real HTTP (AdminServer as the sidecar mounts it), with a MemoryStore
 * holding known traffic, memory registries and a config file's catalog: owners, consumers and
 * their resolution, rules and their preview, resources joined with the inventory, policies, the
 * audit log (budget writes too) and the YAML export, which loads back as a config file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdminServer } from '../src/admin/http.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { Catalog, effectiveCatalog, type CatalogDefinitions } from '../src/catalog/catalog.js';
import { parseConfig } from '../src/config/load.js';
import { configCatalog } from '../src/config/watch.js';
import type { TokenwardenConfig } from '../src/config/types.js';
import { PolicySet } from '../src/governance/policy-set.js';
import { MemoryCatalogRegistry } from '../src/registry/catalog-memory.js';
import { MemoryLedger } from '../src/ledger/memory.js';
import { MemoryStore } from '../src/inventory/memory.js';
import { MemoryBudgetRegistry } from '../src/registry/budgets-memory.js';
import { emptyErrors, emptyTokens, type InventoryDelta } from '../src/inventory/types.js';

const NOW = Date.parse('2025-03-10T12:00:00Z');
const ADMIN = 'admin-secret';
const ALICE = 'alice-secret';

const CONFIG = `
admin:
  token: ${ADMIN}
  tokens:
    - { name: alice, token: ${ALICE}, role: admin }
    - { name: victor, token: viewer-secret, role: viewer }
owners:
  - { id: platform, name: Platform, cost_center: CC-1 }
consumers:
  - { id: batch-job, status: ignored, owner: platform }
resources:
  - { provider: openai, model: gpt-4o, sanctioned: true, price: { input_mtok: 2.5, output_mtok: 10 } }
policies:
  unsanctioned: { mode: monitor, allow: ["openai/gpt-4o-mini*"] }
budget_templates:
  - { id: per-consumer, group_by: consumer, limits: [{ requests: 100, per: day }] }
budgets:
  - { id: org, mode: enforce, limits: [{ cost_usd: 500, per: month, timezone: Europe/Paris }] }
`;

function delta(consumer: string, provider: string, model: string, requests: number, costMicroUsd: number, responseModels: string[] = []): InventoryDelta {
  return {
    key: { consumer, provider, model },
    firstSeen: NOW - 3_600_000,
    lastSeen: NOW - 60_000,
    requests,
    errors: emptyErrors(),
    reported: emptyTokens(),
    estimated: emptyTokens(),
    costMicroUsd,
    unpricedRequests: 0,
    lastApi: 'chat_completions',
    responseModels,
    consumerResolver: 'xfcc',
  };
}

const CHECKOUT = 'spiffe://prod/ns/payments/sa/checkout';
const REFUNDS = 'spiffe://prod/ns/payments/sa/refunds';

interface Harness {
  url: string;
  catalogRegistry: MemoryCatalogRegistry;
  /** The catalog in force, as the sidecar keeps it (refreshed after each write). */
  view(): Catalog;
  close(): Promise<void>;
}

async function start(configText = CONFIG): Promise<Harness> {
  const config: TokenwardenConfig = parseConfig(configText, 'test.yaml', {});
  const store = new MemoryStore({ maxRecords: 1000, retentionHours: 24, now: () => NOW });
  await store.apply({
    id: 'b1',
    deltas: [
      delta(CHECKOUT, 'openai', 'gpt-4o', 3, 3000, ['gpt-4o-2024-08-06']),
      delta(REFUNDS, 'openai', 'gpt-4o', 1, 500, ['gpt-4o-2024-11-20']),
      delta(REFUNDS, 'anthropic', 'claude-3-5-sonnet', 2, 7000, ['claude-3-5-sonnet-20241022']),
      delta('batch-job', 'vllm', 'llama-3-8b', 4, 0),
    ],
  });
  const catalogRegistry = new MemoryCatalogRegistry();
  const budgetRegistry = new MemoryBudgetRegistry();
  const configDefs: CatalogDefinitions = configCatalog(config);
  let view = new Catalog(configDefs);
  const refresh = async (): Promise<void> => {
    view = new Catalog(effectiveCatalog(configDefs, await catalogRegistry.snapshot()).definitions);
  };
  const policies = new PolicySet(config.budgets, config.budget_templates);
  const admin = new AdminServer({
    address: '127.0.0.1:0',
    metrics: new Metrics({ defaultMetrics: false }),
    store,
    token: config.admin.token,
    tokens: config.admin.tokens,
    ready: () => true,
    now: () => NOW,
    storeTimeoutMs: 1_000,
    budgets: {
      policies: () => policies,
      registry: budgetRegistry,
      ledger: new MemoryLedger({ now: () => NOW }),
    },
    catalog: { registry: catalogRegistry, config: () => configDefs, changed: refresh, view: () => view },
  });
  const address = await admin.start();
  return { url: `http://${address}`, catalogRegistry, view: () => view, close: () => admin.close() };
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(h: Harness, method: string, path: string, body?: unknown, token = ALICE): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(h.url + path, init);
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json') && text !== '' ? JSON.parse(text) : null;
  return { status: res.status, headers: res.headers, text, json };
}

const enc = encodeURIComponent;

describe('catalog admin API', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await start();
  });

  afterEach(async () => {
    await h.close();
  });

  it('creates, reads, replaces and deletes owners; config owners are listed and read-only', async () => {
    const created = await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Payments', costCenter: 'CC-1042', contacts: ['payments@example.com'] });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/v1/owners/payments');
    expect(created.json).toEqual({ id: 'payments', name: 'Payments', costCenter: 'CC-1042', contacts: ['payments@example.com'], source: 'api' });
    expect((await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Again' })).status).toBe(409);

    const list = await call(h, 'GET', '/api/v1/owners');
    expect(list.json.items.map((o: any) => [o.id, o.source])).toEqual([
      ['payments', 'api'],
      ['platform', 'config'],
    ]);
    expect((await call(h, 'PUT', '/api/v1/owners/payments', { name: 'Payments EU' })).status).toBe(200);
    expect((await call(h, 'GET', '/api/v1/owners/payments')).json.name).toBe('Payments EU');
    expect((await call(h, 'PUT', '/api/v1/owners/search', { name: 'Search' })).status).toBe(201);

    const fromConfig = await call(h, 'PUT', '/api/v1/owners/platform', { name: 'Mine now' });
    expect(fromConfig.status).toBe(409);
    expect(fromConfig.json.error.code).toBe('defined_in_config');

    expect((await call(h, 'DELETE', '/api/v1/owners/search')).status).toBe(204);
    expect((await call(h, 'GET', '/api/v1/owners/search')).status).toBe(404);
    expect((await call(h, 'DELETE', '/api/v1/owners/search')).status).toBe(404);
  });

  it('names the bad field in validation errors, in the API spelling', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/v1/owners', { id: 'x', name: 'X', cost_center: 'CC' }, 'cost_center'],
      ['POST', '/api/v1/owners', { id: 'global', name: 'G' }, 'id'],
      ['POST', '/api/v1/owners', { name: 'no id' }, 'id'],
      ['PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { status: 'resolved' }, 'status'],
      ['PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { displayName: 7 }, 'displayName'],
      ['PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { id: 'other' }, 'id'],
      ['PUT', '/api/v1/resources/openai%2Fgpt-4o-mini', { sanctioned: 'yes' }, 'sanctioned'],
      ['PUT', '/api/v1/resources/openai%2Fgpt-4o-mini', { sanctioned: true, price: {} }, 'price'],
      ['PUT', '/api/v1/resources/openia%2Fgpt-4o', { sanctioned: true }, 'id'],
      ['PUT', '/api/v1/resources/gpt-4o', { sanctioned: true }, 'id'],
      ['PUT', '/api/v1/policies/platform', { mode: 'block' }, 'mode'],
      ['PUT', '/api/v1/policies/nobody', { mode: 'enforce' }, 'id'],
      ['POST', '/api/v1/consumer-rules', { id: 'r', match: 'x*', labels: { 'bad label!': 'v' } }, 'labels["bad label!"]'],
    ];
    for (const [method, path, body, field] of cases) {
      const answer = await call(h, method, path, body);
      expect({ path, body, status: answer.status, parameter: answer.json?.error?.parameter }).toEqual({ path, body, status: 400, parameter: field });
    }
  });

  it('refuses references to owners and templates that do not exist, naming the field', async () => {
    const noOwner = await call(h, 'PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { owner: 'payments' });
    expect(noOwner.status).toBe(400);
    expect(noOwner.json.error).toMatchObject({ code: 'invalid_body', parameter: 'owner' });
    const rule = await call(h, 'POST', '/api/v1/consumer-rules', { id: 'p', match: 'spiffe://*', owner: 'payments' });
    expect(rule.json.error.parameter).toBe('owner');
    const template = await call(h, 'PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { owner: 'platform', budgetTemplates: ['per-consumer', 'nope'] });
    expect(template.status).toBe(400);
    expect(template.json.error.parameter).toBe('budgetTemplates');
    expect(template.json.error.message).toContain('"nope"');
  });

  it('resolves consumers by entry, then by rule, and filters the inventory by status, owner and text', async () => {
    await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Payments' });
    const rule = await call(h, 'POST', '/api/v1/consumer-rules', { id: 'payments-prod', match: 'spiffe://prod/ns/payments/*', owner: 'payments', labels: { env: 'prod' } });
    expect(rule.status).toBe(201);
    expect(rule.json).toMatchObject({ priority: 100, status: 'added', source: 'api' });
    const entry = await call(h, 'PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { owner: 'platform', displayName: 'Checkout', budgetTemplates: ['per-consumer'] });
    expect(entry.status).toBe(201);
    expect(entry.json).toEqual({ id: CHECKOUT, status: 'added', owner: 'platform', displayName: 'Checkout', budgetTemplates: ['per-consumer'], source: 'api' });

    // The sidecar's catalog in force follows the write at once.
    expect(h.view().consumer(REFUNDS)).toMatchObject({ owner: 'payments', resolvedBy: 'rule:payments-prod', labels: { env: 'prod' } });

    const all = await call(h, 'GET', '/api/v1/consumers');
    const byId = Object.fromEntries(all.json.items.map((c: any) => [c.consumer, c.resolution]));
    expect(byId[CHECKOUT]).toMatchObject({ status: 'added', owner: 'platform', resolvedBy: 'entry', displayName: 'Checkout' });
    expect(byId[REFUNDS]).toMatchObject({ status: 'added', owner: 'payments', resolvedBy: 'rule:payments-prod' });
    expect(byId['batch-job']).toMatchObject({ status: 'ignored', owner: 'platform', resolvedBy: 'entry' });

    const ids = async (query: string): Promise<string[]> => (await call(h, 'GET', `/api/v1/consumers?${query}`)).json.items.map((c: any) => c.consumer).sort();
    expect(await ids('owner=payments')).toEqual([REFUNDS]);
    expect(await ids('status=ignored')).toEqual(['batch-job']);
    expect(await ids('status=added&owner=platform')).toEqual([CHECKOUT]);
    expect(await ids('q=CHECK')).toEqual([CHECKOUT]);
    const paged = await call(h, 'GET', '/api/v1/consumers?status=added&limit=1');
    expect([paged.json.items.length, paged.json.total]).toEqual([1, 2]);
    expect((await call(h, 'GET', '/api/v1/consumers?status=new')).json.error.parameter).toBe('status');

    const one = await call(h, 'GET', `/api/v1/consumers/${enc(REFUNDS)}`);
    expect(one.json).toMatchObject({ id: REFUNDS, entry: null, resolution: { resolvedBy: 'rule:payments-prod' } });

    expect((await call(h, 'DELETE', `/api/v1/consumers/${enc(CHECKOUT)}`)).status).toBe(204);
    expect(h.view().consumer(CHECKOUT).resolvedBy).toBe('rule:payments-prod');
  });

  it('previews which known consumers a rule would match', async () => {
    const preview = await call(h, 'POST', '/api/v1/consumer-rules/preview', { match: 'spiffe://prod/ns/payments/*' });
    expect(preview.status).toBe(200);
    expect([...preview.json.matches].sort()).toEqual([CHECKOUT, REFUNDS]);
    expect(preview.json.total).toBe(2);
    expect((await call(h, 'POST', '/api/v1/consumer-rules/preview', { match: '' })).json.error.parameter).toBe('match');
    expect((await call(h, 'POST', '/api/v1/consumer-rules/preview', { match: 'x', extra: 1 })).json.error.parameter).toBe('extra');
  });

  it('refuses to delete an owner still in use', async () => {
    await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Payments' });
    await call(h, 'PUT', `/api/v1/consumers/${enc(REFUNDS)}`, { owner: 'payments' });
    const refused = await call(h, 'DELETE', '/api/v1/owners/payments');
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe('in_use');
    expect(refused.json.error.message).toContain(REFUNDS);
  });

  it('lists catalog resources joined with the models seen in traffic', async () => {
    const put = await call(h, 'PUT', `/api/v1/resources/${enc('anthropic/claude-3-5-sonnet')}`, { sanctioned: false, notes: 'pending legal review' });
    expect(put.status).toBe(201);
    expect(put.json).toEqual({ id: 'anthropic/claude-3-5-sonnet', provider: 'anthropic', model: 'claude-3-5-sonnet', sanctioned: false, notes: 'pending legal review', source: 'api' });
    await call(h, 'PUT', `/api/v1/resources/${enc('mistral/mistral-large')}`, { sanctioned: true, displayName: 'Mistral Large' });

    const items = (await call(h, 'GET', '/api/v1/resources')).json.items;
    expect(items.map((r: any) => [r.id, r.sanctioned, r.reviewed, r.source ?? null, r.requests, r.costMicroUsd, r.consumers])).toEqual([
      ['anthropic/claude-3-5-sonnet', false, true, 'api', 2, 7000, 1],
      ['mistral/mistral-large', true, true, 'api', 0, 0, 0],
      ['openai/gpt-4o', true, true, 'config', 4, 3500, 2],
      ['vllm/llama-3-8b', false, false, null, 4, 0, 1],
    ]);
    expect(items[2].responseModels).toEqual(['gpt-4o-2024-08-06', 'gpt-4o-2024-11-20']);
    expect(items[2].price).toEqual({ input_mtok: 2.5, output_mtok: 10 });
    expect((await call(h, 'PUT', '/api/v1/resources/openai%2Fgpt-4o', { sanctioned: false })).json.error.code).toBe('defined_in_config');
    expect((await call(h, 'DELETE', `/api/v1/resources/${enc('mistral/mistral-large')}`)).status).toBe(204);
    expect(h.view().resource('mistral', 'mistral-large')).toBeNull();
  });

  it('sets the global and per-owner policies; the sanction verdict follows', async () => {
    // The config's global policy wins over the API's.
    expect((await call(h, 'PUT', '/api/v1/policies/global', { mode: 'enforce' })).status).toBe(409);
    const owner = await call(h, 'PUT', '/api/v1/policies/platform', { mode: 'enforce', allow: ['vllm/*'] });
    expect(owner.status).toBe(201);
    expect(owner.json).toEqual({ id: 'platform', mode: 'enforce', allow: ['vllm/*'], source: 'api' });
    expect((await call(h, 'GET', '/api/v1/policies')).json.items.map((p: any) => [p.id, p.mode, p.source])).toEqual([
      ['global', 'monitor', 'config'],
      ['platform', 'enforce', 'api'],
    ]);
    expect(h.view().sanction('batch-job', 'vllm', 'llama-3-8b')).toEqual({ sanctioned: true, policy: 'platform', mode: 'enforce' });
    expect(h.view().sanction('batch-job', 'anthropic', 'claude-3-5-sonnet')).toEqual({ sanctioned: false, policy: 'platform', mode: 'enforce' });
    expect(h.view().sanction(REFUNDS, 'anthropic', 'claude-3-5-sonnet')).toEqual({ sanctioned: false, policy: 'global', mode: 'monitor' });
  });

  it('reports API definitions shadowed by the config', async () => {
    // Written to the store directly, as an older sidecar (before the config took the id) would have.
    await h.catalogRegistry.owners.put({ id: 'platform', name: 'Old', source: 'api' });
    const list = await call(h, 'GET', '/api/v1/owners');
    expect(list.json.shadowed).toEqual(['platform']);
    expect(list.json.items).toEqual([{ id: 'platform', name: 'Platform', costCenter: 'CC-1', source: 'config' }]);
  });

  it('records every write, budgets and templates included, with the token name, newest first', async () => {
    await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Payments' });
    await call(h, 'PUT', '/api/v1/owners/payments', { name: 'Payments EU' }, ADMIN);
    await call(h, 'PUT', `/api/v1/resources/${enc('mistral/mistral-large')}`, { sanctioned: true });
    await call(h, 'POST', '/api/v1/budgets', { id: 'team-a', limits: [{ requests: 10, per: 'day' }] });
    await call(h, 'PUT', '/api/v1/budget-templates/per-team', { group_by: 'label:team', limits: [{ requests: 10, per: 'day' }] });
    await call(h, 'DELETE', '/api/v1/budgets/team-a');
    await call(h, 'DELETE', '/api/v1/owners/payments');
    // Refused writes leave no entry.
    await call(h, 'POST', '/api/v1/owners', { id: 'bad id!', name: 'x' });

    const log = (await call(h, 'GET', '/api/v1/audit')).json.items;
    expect(log.map((e: any) => [e.actor, e.action, e.entity, e.id])).toEqual([
      ['alice', 'delete', 'owner', 'payments'],
      ['alice', 'delete', 'budget', 'team-a'],
      ['alice', 'create', 'template', 'per-team'],
      ['alice', 'create', 'budget', 'team-a'],
      ['alice', 'create', 'resource', 'mistral/mistral-large'],
      ['admin', 'update', 'owner', 'payments'],
      ['alice', 'create', 'owner', 'payments'],
    ]);
    expect(log[5]).toEqual({
      at: NOW,
      actor: 'admin',
      action: 'update',
      entity: 'owner',
      id: 'payments',
      before: { id: 'payments', name: 'Payments', source: 'api' },
      after: { id: 'payments', name: 'Payments EU', source: 'api' },
    });
    expect(log[1].before).toMatchObject({ id: 'team-a', limits: [{ requests: 10, per: 'day' }] });
    expect(log[1].after).toBeUndefined();
    expect((await call(h, 'GET', '/api/v1/audit?limit=2')).json.items).toHaveLength(2);
    expect((await call(h, 'GET', `/api/v1/audit?before=${NOW}`)).json.items).toEqual([]);
    expect((await call(h, 'GET', '/api/v1/audit?limit=0')).json.error.parameter).toBe('limit');
    expect((await call(h, 'GET', '/api/v1/audit?before=yesterday')).json.error.parameter).toBe('before');
  });

  it('exports every definition in force as YAML that loads back as the same config', async () => {
    await call(h, 'POST', '/api/v1/owners', { id: 'payments', name: 'Payments', contacts: ['pay@example.com'] });
    await call(h, 'POST', '/api/v1/consumer-rules', { id: 'payments-prod', match: 'spiffe://prod/ns/payments/*', priority: 5, owner: 'payments', labels: { env: 'prod' } });
    await call(h, 'PUT', `/api/v1/consumers/${enc(CHECKOUT)}`, { owner: 'payments', displayName: 'Checkout', budgetTemplates: ['per-consumer'] });
    await call(h, 'PUT', `/api/v1/resources/${enc('aws_bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0')}`, {
      sanctioned: true,
      price: { input_mtok: 3, cached_input_mtok: 0.3 },
      endpoint: 'eu-west-1',
    });
    await call(h, 'PUT', '/api/v1/policies/payments', { mode: 'enforce', allow: ['anthropic/*'] });
    await call(h, 'POST', '/api/v1/budgets', { id: 'payments-daily', select: { labels: { owner: 'payments' } }, limits: [{ total_tokens: 100000, per: 'day' }] });

    const exported = await call(h, 'GET', '/api/v1/catalog/export');
    expect(exported.status).toBe(200);
    expect(exported.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(exported.text).toMatch(/^# tokenwarden catalog export/);
    expect(exported.text).toContain('cost_center: CC-1');
    expect(exported.text).not.toContain('source:');

    const reloaded = parseConfig(exported.text, 'export.yaml', {});
    const inForce = effectiveCatalog(configCatalog(parseConfig(CONFIG, 'test.yaml', {})), await h.catalogRegistry.snapshot()).definitions;
    const bare = (defs: readonly { id: string; source: string }[]) => defs.map(({ source: _source, ...rest }) => rest).sort((a, b) => a.id.localeCompare(b.id));
    const again = configCatalog(reloaded);
    for (const kind of ['owners', 'consumers', 'consumerRules', 'resources', 'policies'] as const) {
      expect(bare(again[kind]), kind).toEqual(bare(inForce[kind]));
    }
    expect(reloaded.budgets.map((b) => [b.id, b.limits[0]?.max])).toEqual([
      ['org', 500_000_000],
      ['payments-daily', 100_000],
    ]);
    expect(reloaded.budget_templates.map((t) => t.id)).toEqual(['per-consumer']);
  });
});
