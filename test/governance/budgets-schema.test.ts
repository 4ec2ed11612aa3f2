import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  budgetSchema,
  budgetsSchema,
  checkBudgetReferences,
  templateSchema,
  templatesSchema,
  toBudget,
  toBudgets,
  toTemplate,
  toTemplates,
  type BudgetsDocument,
} from '../../src/config/budgets-schema.js';
import { formatPath } from '../../src/config/errors.js';
import type { Issue } from '../../src/config/schema.js';
import { PolicySet } from '../../src/governance/policy-set.js';

/** Validates the two sections of a YAML document the way the config loader does. */
function load(yaml: string): { doc: BudgetsDocument; problems: string[] } {
  const raw = parse(yaml) as Record<string, unknown>;
  const issues: Issue[] = [];
  const doc: BudgetsDocument = {};
  if ('budgets' in raw) doc.budgets = budgetsSchema.parse(raw['budgets'], ['budgets'], issues);
  if ('budget_templates' in raw) doc.budget_templates = templatesSchema.parse(raw['budget_templates'], ['budget_templates'], issues);
  if (issues.length === 0) issues.push(...checkBudgetReferences(doc));
  return { doc, problems: issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`) };
}

function valid(yaml: string): BudgetsDocument {
  const { doc, problems } = load(yaml);
  expect(problems).toEqual([]);
  return doc;
}

const EXAMPLE = `
budgets:
  - id: org-monthly
    description: Whole company
    mode: enforce
    on_store_error: closed
    stop_streams: true
    select:
      consumers: ["*"]
      providers: [openai, anthropic]
      models: ["gpt-4o*"]
      apis: [chat_completions]
      labels: { team: payments }
    limits:
      - { cost_usd: 500.25, per: month, timezone: europe/berlin }
      - { total_tokens: 1000000, per: day }
      - { requests: 600, per: rolling, seconds: 60 }
      - { input_tokens: 5000, per: week, week_start: sunday }
  - id: per-consumer-default:alice
    limits: [{ cost_usd: 0.1, per: month }]
budget_templates:
  - id: per-consumer-default
    group_by: consumer
    limits: [{ output_tokens: 20000, per: hour, timezone: America/New_York }]
  - id: per-team
    group_by: label:team
    mode: enforce
    limits: [{ requests: 10, per: minute }]
`;

describe('budgets and budget_templates', () => {
  it('convert to the policy model with defaults and micro-dollars', () => {
    const doc = valid(EXAMPLE);
    expect(toBudgets(doc)).toEqual([
      {
        id: 'org-monthly',
        description: 'Whole company',
        selector: { consumers: ['*'], providers: ['openai', 'anthropic'], models: ['gpt-4o*'], apis: ['chat_completions'], labels: { team: 'payments' } },
        limits: [
          { metric: 'cost_micro_usd', max: 500_250_000, window: { kind: 'month', timezone: 'Europe/Berlin', weekStart: 1 } },
          { metric: 'total_tokens', max: 1_000_000, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } },
          { metric: 'requests', max: 600, window: { kind: 'rolling', seconds: 60 } },
          { metric: 'input_tokens', max: 5000, window: { kind: 'week', timezone: 'UTC', weekStart: 0 } },
        ],
        mode: 'enforce',
        onStoreError: 'closed',
        stopStreams: true,
        source: 'config',
      },
      {
        id: 'per-consumer-default:alice',
        selector: {},
        limits: [{ metric: 'cost_micro_usd', max: 100_000, window: { kind: 'month', timezone: 'UTC', weekStart: 1 } }],
        mode: 'monitor',
        onStoreError: 'open',
        stopStreams: false,
        source: 'config',
      },
    ]);
    expect(toTemplates(doc)).toEqual([
      {
        id: 'per-consumer-default',
        groupBy: 'consumer',
        selector: {},
        limits: [{ metric: 'output_tokens', max: 20_000, window: { kind: 'hour', timezone: 'America/New_York', weekStart: 1 } }],
        mode: 'monitor',
        onStoreError: 'open',
        stopStreams: false,
        source: 'config',
      },
      {
        id: 'per-team',
        groupBy: { label: 'team' },
        selector: {},
        limits: [{ metric: 'requests', max: 10, window: { kind: 'minute', timezone: 'UTC', weekStart: 1 } }],
        mode: 'enforce',
        onStoreError: 'open',
        stopStreams: false,
        source: 'config',
      },
    ]);
  });

  it('rounds dollars to whole micro-dollars', () => {
    const doc = valid('budgets: [{ id: b, limits: [{ cost_usd: 12.3456789, per: day }] }]');
    expect(toBudgets(doc)[0]?.limits[0]?.max).toBe(12_345_679);
  });

  it('feed a PolicySet: the override replaces the default for alice only', () => {
    const doc = valid(EXAMPLE);
    const set = new PolicySet(toBudgets(doc), toTemplates(doc));
    const request = { labels: { team: 'search' }, provider: 'openai', model: 'gpt-4o', api: 'chat_completions' as const };
    expect(set.applicable({ consumer: 'alice', ...request }).map((b) => b.id)).toEqual(['per-consumer-default:alice', 'per-team:search']);
    expect(set.applicable({ consumer: 'bob', ...request }).map((b) => b.id)).toEqual(['per-consumer-default:bob', 'per-team:search']);
  });
});

describe('errors name the key path', () => {
  const cases: [string, string, RegExp][] = [
    ['unknown time zone', 'budgets: [{ id: b, limits: [{ requests: 1, per: day, timezone: Europe/Berln }] }]', /^budgets\[0\]\.limits\[0\]\.timezone: unknown time zone "Europe\/Berln"; did you mean "Europe\/Berlin"\?/],
    ['unknown metric', 'budgets: [{ id: b, limits: [{ tokens: 1, per: day }] }]', /^budgets\[0\]\.limits\[0\]\.tokens: unknown key/],
    ['duplicate id', 'budgets: [{ id: b, limits: [{ requests: 1, per: day }] }, { id: b, limits: [{ requests: 2, per: day }] }]', /^budgets\[1\]\.id: duplicate id; first used at budgets\[0\]$/],
    ['empty limits', 'budgets: [{ id: b, limits: [] }]', /^budgets\[0\]\.limits: must have at least 1 item/],
    ['missing limits', 'budgets: [{ id: b }]', /^budgets\[0\]\.limits: missing required key/],
    ['no metric', 'budgets: [{ id: b, limits: [{ per: day }] }]', /^budgets\[0\]\.limits\[0\]: sets no limit/],
    ['two metrics', 'budgets: [{ id: b, limits: [{ requests: 1, cost_usd: 2, per: day }] }]', /^budgets\[0\]\.limits\[0\]\.cost_usd: one metric per limit/],
    ['fractional tokens', 'budgets: [{ id: b, limits: [{ total_tokens: 1.5, per: day }] }]', /^budgets\[0\]\.limits\[0\]\.total_tokens: expected a whole number/],
    ['negative dollars', 'budgets: [{ id: b, limits: [{ cost_usd: -1, per: day }] }]', /^budgets\[0\]\.limits\[0\]\.cost_usd: expected a number >= 0/],
    ['unknown period', 'budgets: [{ id: b, limits: [{ requests: 1, per: fortnight }] }]', /^budgets\[0\]\.limits\[0\]\.per: expected one of minute, hour, day, week, month, rolling/],
    ['rolling without seconds', 'budgets: [{ id: b, limits: [{ requests: 1, per: rolling }] }]', /^budgets\[0\]\.limits\[0\]\.seconds: missing required key/],
    ['seconds on a calendar window', 'budgets: [{ id: b, limits: [{ requests: 1, per: month, seconds: 5 }] }]', /^budgets\[0\]\.limits\[0\]\.seconds: only applies to per: rolling/],
    ['time zone on a rolling window', 'budgets: [{ id: b, limits: [{ requests: 1, per: rolling, seconds: 60, timezone: UTC }] }]', /^budgets\[0\]\.limits\[0\]\.timezone: only applies to calendar windows/],
    ['week start on a day', 'budgets: [{ id: b, limits: [{ requests: 1, per: day, week_start: monday }] }]', /^budgets\[0\]\.limits\[0\]\.week_start: only applies to per: week/],
    ['mistyped provider', 'budgets: [{ id: b, select: { providers: [opnai] }, limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.select\.providers\[0\]: unknown provider "opnai"; did you mean "openai"\?/],
    ['unknown api', 'budgets: [{ id: b, select: { apis: [chat] }, limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.select\.apis\[0\]: expected one of chat_completions/],
    ['non-string label', 'budgets: [{ id: b, select: { labels: { team: 7 } }, limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.select\.labels\.team: expected a string/],
    ['bad mode', 'budgets: [{ id: b, mode: block, limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.mode: expected one of monitor, enforce/],
    ['bad budget id', 'budgets: [{ id: "has space", limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.id: expected an id/],
    ['bad group_by', 'budget_templates: [{ id: t, group_by: team, limits: [{ requests: 1, per: day }] }]', /^budget_templates\[0\]\.group_by: expected consumer, provider, model or label:<name>, got "team"/],
    ['missing group_by', 'budget_templates: [{ id: t, limits: [{ requests: 1, per: day }] }]', /^budget_templates\[0\]\.group_by: missing required key/],
    ['template id with a colon', 'budget_templates: [{ id: "t:x", group_by: consumer, limits: [{ requests: 1, per: day }] }]', /^budget_templates\[0\]\.id: expected an id/],
    ['duplicate template id', 'budget_templates: [{ id: t, group_by: consumer, limits: [{ requests: 1, per: day }] }, { id: t, group_by: provider, limits: [{ requests: 1, per: day }] }]', /^budget_templates\[1\]\.id: duplicate id/],
    ['override of an unknown template', 'budgets: [{ id: "missing:alice", limits: [{ requests: 1, per: day }] }]', /^budgets\[0\]\.id: overrides an instance of template "missing", which budget_templates does not define/],
    [
      'model override without provider',
      'budgets: [{ id: "pm:gpt-4o", limits: [{ requests: 1, per: day }] }]\nbudget_templates: [{ id: pm, group_by: model, limits: [{ requests: 1, per: day }] }]',
      /^budgets\[0\]\.id: template "pm" groups by model; expected pm:<provider>\/<model>/,
    ],
  ];

  it.each(cases)('%s', (_name, yaml, expected) => {
    const { problems } = load(yaml);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('reports every problem in one pass', () => {
    const { problems } = load('budgets: [{ id: b, limits: [{ tokens: 1, per: day }, { requests: 1, per: day, timezone: Nowhere/City }] }, { limits: [] }]');
    expect(problems).toHaveLength(4);
  });
});

describe('single entries (admin API bodies)', () => {
  it('validate and convert with the given source', () => {
    const issues: Issue[] = [];
    const entry = budgetSchema.parse({ id: 'team-a', mode: 'enforce', limits: [{ requests: 5, per: 'minute' }] }, [], issues);
    expect(issues).toEqual([]);
    expect(entry === undefined ? undefined : toBudget(entry, 'api')).toMatchObject({ id: 'team-a', mode: 'enforce', source: 'api' });
    const template = templateSchema.parse({ id: 'per-model', group_by: 'model', limits: [{ total_tokens: 5, per: 'day' }] }, [], issues);
    expect(issues).toEqual([]);
    expect(template === undefined ? undefined : toTemplate(template, 'api')).toMatchObject({ id: 'per-model', groupBy: 'model', source: 'api' });
  });
});
