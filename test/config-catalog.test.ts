/**
 * Config-as-code for the catalog and the admin tokens: the YAML sections, their validation with
 * key paths, references between sections, and hot reload applying them with the budgets.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';
import { configCatalog, createReloader, diffSections } from '../src/config/watch.js';
import type { CatalogDefinitions } from '../src/catalog/catalog.js';
import type { Logger } from '../src/log.js';

const CATALOG = `
owners:
  - { id: payments, name: Payments, cost_center: CC-1042, contacts: [payments@example.com, "#payments"] }
  - { id: search, name: Search }
consumers:
  - id: "spiffe://prod/ns/payments/sa/checkout"
    owner: payments
    labels: { env: prod, app: checkout }
    display_name: Checkout
    budget_templates: [per-consumer]
  - { id: "key:0f3a", status: ignored }
consumer_rules:
  - { id: payments-prod, match: "spiffe://prod/ns/payments/*", priority: 10, owner: payments, labels: { env: prod } }
  - { id: everything-else, match: "*", status: discovered }
resources:
  - { provider: openai, model: gpt-4o, sanctioned: true, display_name: GPT-4o, price: { input_mtok: 2.5, cached_input_mtok: 1.25, output_mtok: 10 } }
  - { provider: vllm, model: llama-3-70b, sanctioned: true, endpoint: "http://vllm.ml.svc:8000", notes: "GPU pool A" }
  - { provider: OpenAI, model: o1-preview, sanctioned: false }
policies:
  unsanctioned: { mode: enforce, allow: ["openai/gpt-4o-mini*"] }
  owners:
    search: { mode: monitor }
budget_templates:
  - { id: per-consumer, group_by: consumer, limits: [{ requests: 100, per: day }] }
`;

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, 'c.yaml', env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  return [];
}

describe('catalog sections', () => {
  it('loads every section into the catalog model', () => {
    const c = parseConfig(CATALOG, 'c.yaml', {});
    expect(c.owners).toEqual([
      { id: 'payments', name: 'Payments', costCenter: 'CC-1042', contacts: ['payments@example.com', '#payments'], source: 'config' },
      { id: 'search', name: 'Search', source: 'config' },
    ]);
    expect(c.consumers).toEqual([
      {
        id: 'spiffe://prod/ns/payments/sa/checkout',
        status: 'added',
        owner: 'payments',
        labels: { env: 'prod', app: 'checkout' },
        displayName: 'Checkout',
        budgetTemplates: ['per-consumer'],
        source: 'config',
      },
      { id: 'key:0f3a', status: 'ignored', source: 'config' },
    ]);
    expect(c.consumer_rules).toEqual([
      { id: 'payments-prod', match: 'spiffe://prod/ns/payments/*', priority: 10, status: 'added', owner: 'payments', labels: { env: 'prod' }, source: 'config' },
      { id: 'everything-else', match: '*', priority: 100, status: 'discovered', source: 'config' },
    ]);
    expect(c.resources.map((r) => r.id)).toEqual(['openai/gpt-4o', 'vllm/llama-3-70b', 'openai/o1-preview']);
    expect(c.resources[0]).toEqual({
      id: 'openai/gpt-4o',
      provider: 'openai',
      model: 'gpt-4o',
      sanctioned: true,
      displayName: 'GPT-4o',
      price: { input_mtok: 2.5, cached_input_mtok: 1.25, output_mtok: 10 },
      source: 'config',
    });
    expect(c.policies).toEqual([
      { id: 'global', mode: 'enforce', allow: ['openai/gpt-4o-mini*'], source: 'config' },
      { id: 'search', mode: 'monitor', allow: [], source: 'config' },
    ]);
  });

  it('defaults to an empty catalog', () => {
    expect(configCatalog(parseConfig('', 'c.yaml', {}))).toEqual({ owners: [], consumers: [], consumerRules: [], resources: [], policies: [] });
  });

  it('reports every problem with its key path', () => {
    const text = `
owners:
  - { id: global, name: G }
  - { id: payments, name: Payments, costCenter: CC }
  - { id: payments, name: Again }
consumers:
  - { id: a, status: resolved }
  - { id: b, owner: nobody, budget_templates: [missing] }
consumer_rules:
  - { id: r1 }
resources:
  - { provider: openia, model: gpt-4o, sanctioned: true }
  - { provider: openai, model: gpt-4o, sanctioned: yes-ish, price: {} }
policies:
  unsanctioned: { mode: block }
  owners:
    ghost: { mode: enforce }
`;
    expect(problems(text)).toEqual([
      'owners[0].id: "global" is reserved for the global policy; choose another owner id',
      'owners[1].costCenter: unknown key; did you mean "cost_center"?',
      'owners[2].id: duplicate id; first used at owners[1]',
      'consumers[0].status: expected one of discovered, added, ignored, got "resolved"',
      'consumer_rules[0].match: missing required key',
      'resources[0].provider: unknown provider "openia"; did you mean "openai"?',
      'resources[1].sanctioned: expected true or false, got "yes-ish"',
      'resources[1].price: sets no price; give at least one of input_mtok, cached_input_mtok, cache_write_mtok, output_mtok',
      'policies.unsanctioned.mode: expected one of off, monitor, enforce, got "block"',
    ]);
  });

  it('checks references between sections once the sections are valid', () => {
    const text = `
owners: [{ id: payments, name: Payments }]
consumers:
  - { id: b, owner: nobody, budget_templates: [missing] }
consumer_rules:
  - { id: r, match: "x*", owner: ghost }
policies:
  owners:
    ghost: { mode: enforce }
resources:
  - { provider: openai, model: gpt-4o, sanctioned: true }
  - { provider: OpenAI, model: gpt-4o, sanctioned: false }
`;
    expect(problems(text)).toEqual([
      'resources[1].model: duplicate model; first used at resources[0]',
    ]);
    expect(problems(text.replace(/  - \{ provider: OpenAI.*\n/, ''))).toEqual([
      'consumers[0].owner: owner "nobody" is not defined in owners',
      'consumers[0].budget_templates[0]: template "missing" is not defined in budget_templates',
      'consumer_rules[0].owner: owner "ghost" is not defined in owners',
      'policies.owners.ghost: owner "ghost" is not defined in owners',
    ]);
  });
});

describe('admin.tokens', () => {
  it('reads named tokens, inline or from the environment', () => {
    const c = parseConfig(
      'admin:\n  address: 0.0.0.0:9090\n  tokens:\n    - { name: ci, token_env: CI_TOKEN, role: admin }\n    - { name: finops, token: v, role: viewer }\n',
      'c.yaml',
      { CI_TOKEN: 'from-env' },
    );
    expect(c.admin.tokens).toEqual([
      { name: 'ci', token: 'from-env', role: 'admin' },
      { name: 'finops', token: 'v', role: 'viewer' },
    ]);
    expect(c.admin.token).toBe('');
  });

  it('needs an admin-role token off loopback; viewers alone are not enough', () => {
    const viewerOnly = 'admin:\n  address: 0.0.0.0:9090\n  tokens: [{ name: finops, token: v, role: viewer }]\n';
    expect(problems(viewerOnly)).toEqual([
      'admin.token: is required when admin.address (0.0.0.0:9090) is not a loopback address: set admin.token or admin.token_env, or an admin.tokens entry with role admin',
    ]);
    expect(problems(`${viewerOnly}  token: t\n`)).toEqual([]);
    expect(problems('admin:\n  address: 127.0.0.1:9090\n  tokens: [{ name: finops, token: v, role: viewer }]\n')).toEqual([]);
  });

  it('refuses bad entries, naming the key, without echoing a token', () => {
    const text = `
admin:
  token: tok-Q9x
  tokens:
    - { name: admin, token: tok-Z7k, role: admin }
    - { name: bot, token: tok-Q9x, role: admin }
    - { name: bot, token: x, role: admin }
    - { name: nobody, role: viewer }
    - { name: both, token: y, token_env: Y, role: viewer }
    - { name: owner, token: z, role: root }
    - { name: unset, token_env: NOT_SET, role: viewer }
`;
    const found = problems(text);
    expect(found).toEqual([
      'admin.tokens[3].token: missing required key (or token_env)',
      'admin.tokens[4].token_env: give either token or token_env, not both',
      'admin.tokens[5].role: expected one of admin, viewer, got "root"',
      'admin.tokens[2].name: duplicate name; first used at admin.tokens[1]',
      'admin.tokens[4].token_env: environment variable Y is not set',
      'admin.tokens[6].token_env: environment variable NOT_SET is not set',
    ]);
    const cross = problems(text.replace(/    - \{ name: (bot, token: x|nobody|both|owner|unset).*\n/g, ''));
    expect(cross).toEqual([
      'admin.tokens[0].name: "admin" is the name of admin.token; choose another name',
      'admin.tokens[1].token: is the same token as admin.token; every token must be different',
    ]);
    expect(found.join('\n') + cross.join('\n')).not.toMatch(/tok-/);
  });
});

describe('hot reload of the catalog', () => {
  const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

  it('is a live section: a changed catalog is applied with the budgets, an invalid one refused', () => {
    let text = CATALOG;
    const applied: CatalogDefinitions[] = [];
    const reload = createReloader({
      file: 'c.yaml',
      initial: parseConfig(text, 'c.yaml', {}),
      load: () => parseConfig(text, 'c.yaml', {}),
      apply: (_budgets, _templates, catalog) => applied.push(catalog),
      log: silent,
    });
    expect(diffSections(parseConfig(CATALOG, 'c.yaml', {}), parseConfig(CATALOG.replace('GPU pool A', 'GPU pool B'), 'c.yaml', {}))).toEqual({ live: ['resources'], restart: [] });
    expect(reload('SIGHUP')).toBe('unchanged');
    text = CATALOG.replace('sanctioned: false', 'sanctioned: true');
    expect(reload('file change')).toBe('applied');
    expect(applied[0]?.resources.find((r) => r.id === 'openai/o1-preview')?.sanctioned).toBe(true);
    expect(applied[0]?.owners).toHaveLength(2);
    text = CATALOG.replace('owner: payments\n    labels', 'owner: nobody\n    labels');
    expect(reload('file change')).toBe('refused');
    expect(applied).toHaveLength(1);
    expect(reload('SIGHUP')).toBe('refused');
  });
});
