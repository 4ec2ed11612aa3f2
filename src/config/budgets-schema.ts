/**
 * The `budgets:` and `budget_templates:` sections of the YAML configuration, and their conversion
 * to the policy model (src/governance/types.ts). Example:
 *
 *   budgets:
 *     - id: org-monthly
 *       mode: enforce                # default monitor: never blocks, reports would-block events
 *       on_store_error: open          # default open (admit when the store is unreachable)
 *       stop_streams: false           # default false
 *       select: { providers: [openai, anthropic], models: ["gpt-4o*"], labels: { team: payments } }
 *       limits:
 *         - { cost_usd: 500, per: month, timezone: Europe/Berlin }
 *         - { total_tokens: 1000000, per: day }
 *         - { requests: 600, per: rolling, seconds: 60 }
 *     - id: per-consumer-default:alice   # overrides the template instance for consumer alice
 *       limits: [{ cost_usd: 50, per: month }]
 *   budget_templates:
 *     - id: per-consumer-default
 *       group_by: consumer            # or provider, model, label:<name>
 *       limits: [{ cost_usd: 10, per: month }]
 *
 * One metric per limit entry; `timezone` (default UTC) applies to calendar windows, `week_start`
 * (default monday) to `per: week`, `seconds` to (and only to) `per: rolling`. `cost_usd` is rounded
 * to whole micro-dollars.
 */
import type { ApiKind, ProviderName } from '../domain.js';
import type { Budget, BudgetTemplate, GroupBy, Limit, LimitMetric, Selector, Window } from '../governance/types.js';
import { canonicalTimeZone } from '../governance/windows.js';
import { LABEL_NAME, parseGroupBy, parseInstanceId } from '../governance/templates.js';
import { formatPath, type PathSegment } from './errors.js';
import {
  bool,
  int,
  isMapping,
  key,
  list,
  MAX_GLOB_CHARS,
  nonNegativeNumber,
  obj,
  oneOf,
  suggest,
  text,
  withDefault,
  type Issue,
  type Mapping,
  type Out,
  type Schema,
} from './schema.js';

// Records keyed by the union make the compiler insist on every provider and API.
const PROVIDERS: Record<ProviderName, true> = {
  openai: true,
  azure_openai: true,
  anthropic: true,
  aws_bedrock: true,
  gcp_gemini: true,
  gcp_vertex: true,
  ollama: true,
  vllm: true,
  mistral: true,
  groq: true,
  cohere: true,
  openai_compatible: true,
  unknown: true,
};
export const PROVIDER_NAMES = Object.keys(PROVIDERS);

const APIS: Record<ApiKind, true> = {
  chat_completions: true,
  responses: true,
  embeddings: true,
  messages: true,
  converse: true,
  converse_stream: true,
  invoke: true,
  invoke_with_response_stream: true,
  generate_content: true,
  stream_generate_content: true,
  ollama_chat: true,
  cohere_chat: true,
};
const API_NAMES = Object.keys(APIS) as ApiKind[];

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
const PERIODS = ['minute', 'hour', 'day', 'week', 'month', 'rolling'] as const;
const COUNT_METRICS = ['input_tokens', 'output_tokens', 'total_tokens', 'requests'] as const;
const METRIC_KEYS = [...COUNT_METRICS, 'cost_usd'] as const;

// The validated YAML shapes, derived from the schemas below (each key is declared once, there).

export type SelectEntry = NonNullable<Out<typeof selectSchema>>;
export type LimitEntry = Out<typeof limitSchema>;
export type BudgetEntry = Out<typeof budgetSchema>;
/** `group_by` is spelled consumer, provider, model or label:<name>. */
export type TemplateEntry = Out<typeof templateSchema>;

/** Tokens and requests; far below 2^53 so that sums of reservations stay exact. */
const MAX_COUNT = 1e15;
/** A billion dollars: 1e15 micro-dollars, still exact. */
const MAX_USD = 1e9;
const MAX_ROLLING_SECONDS = 31 * 86_400;

const ID_CHARS = '[A-Za-z0-9][A-Za-z0-9_.-]*';
export const TEMPLATE_ID = new RegExp(`^${ID_CHARS}$`);
/** `<template id>:<group value>` overrides a template instance. */
const BUDGET_ID = new RegExp(`^${ID_CHARS}(?::\\S.*)?$`);

// ---------------------------------------------------------------------------------------------
// Pieces

const glob = (): Schema<string> => text({ minLength: 1, maxLength: MAX_GLOB_CHARS });

/** A provider glob; a plain name must be a provider tokenwarden knows (catches typos). */
function providerPattern(): Schema<string> {
  const base = text({ minLength: 1, maxLength: MAX_GLOB_CHARS, lowercase: true });
  return {
    parse(value, path, issues) {
      const pattern = base.parse(value, path, issues);
      if (pattern === undefined || /[*?]/.test(pattern) || PROVIDER_NAMES.includes(pattern)) return pattern;
      const hint = suggest(pattern, PROVIDER_NAMES);
      const tail = hint === undefined ? `expected a provider (${PROVIDER_NAMES.join(', ')}) or a glob` : `did you mean "${hint}"?`;
      issues.push({ path, message: `unknown provider ${JSON.stringify(pattern)}; ${tail}` });
      return undefined;
    },
  };
}

export function labels(): Schema<Record<string, string>> {
  const labelValue = text({ minLength: 1, maxLength: 256 });
  return {
    parse(value, path, issues) {
      if (!isMapping(value)) {
        issues.push({ path, message: 'expected a mapping of label names to values' });
        return undefined;
      }
      const entries: [string, string][] = [];
      for (const [key, raw] of Object.entries(value)) {
        if (!LABEL_NAME.test(key)) {
          issues.push({ path: [...path, key], message: 'expected a label name (letters, digits, "_", ".", "/" or "-")', atKey: true });
          continue;
        }
        const parsed = labelValue.parse(raw, [...path, key], issues);
        if (parsed !== undefined) entries.push([key, parsed]);
      }
      // fromEntries defines own properties, so a `__proto__` label cannot touch the prototype.
      return Object.fromEntries(entries);
    },
  };
}

function timeZone(): Schema<string> {
  const base = text({ minLength: 1, maxLength: 64 });
  return {
    parse(value, path, issues) {
      const name = base.parse(value, path, issues);
      if (name === undefined) return undefined;
      const canonical = canonicalTimeZone(name);
      if (canonical !== undefined) return canonical;
      const hint = suggest(name, Intl.supportedValuesOf('timeZone'));
      const tail = hint === undefined ? 'expected an IANA time zone such as Europe/Berlin or UTC' : `did you mean "${hint}"?`;
      issues.push({ path, message: `unknown time zone ${JSON.stringify(name)}; ${tail}` });
      return undefined;
    },
  };
}

function groupBy(): Schema<GroupBy> {
  const base = text({ minLength: 1, maxLength: 140 });
  return {
    parse(value, path, issues) {
      const spelled = base.parse(value, path, issues);
      if (spelled === undefined) return undefined;
      const parsed = parseGroupBy(spelled);
      if (parsed !== undefined) return parsed;
      issues.push({ path, message: `expected consumer, provider, model or label:<name>, got ${JSON.stringify(spelled)}` });
      return undefined;
    },
  };
}

const selectSchema = obj(
  {
    consumers: key(list(glob(), { minItems: 1, maxItems: 10_000 }), {
      doc: 'Consumer ids (globs) as discovery reports them (SPIFFE id, `key:<fingerprint>`, address...).',
      type: 'list of globs',
      defaultText: 'any consumer',
    }),
    providers: key(list(providerPattern(), { minItems: 1, maxItems: 100 }), {
      doc: 'Providers, by name or glob; a plain name must be a provider tokenwarden reports (catches typos).',
      type: 'list of provider names or globs',
      defaultText: 'any provider',
    }),
    models: key(list(glob(), { minItems: 1, maxItems: 10_000 }), { doc: 'Requested model names (globs).', type: 'list of globs', defaultText: 'any model' }),
    apis: key(list(oneOf(API_NAMES), { minItems: 1, maxItems: API_NAMES.length }), {
      doc: `APIs: ${API_NAMES.map((a) => `\`${a}\``).join(', ')}.`,
      type: 'list of API names',
      defaultText: 'any API',
    }),
    labels: key(labels(), {
      doc: 'Every label must match: the [catalog](#the-catalog) labels of a resolved consumer, plus `owner`.',
      type: 'mapping of label names to values',
      defaultText: 'any labels',
    }),
  },
  { nullIsAbsent: true },
);

const limitSchema = obj(
  {
    input_tokens: key(int(0, MAX_COUNT), { doc: 'Input tokens per window (cache reads and writes included).' }),
    output_tokens: key(int(0, MAX_COUNT), { doc: 'Output tokens per window (reasoning included).' }),
    total_tokens: key(int(0, MAX_COUNT), { doc: 'Input plus output tokens per window (TPM with `per: rolling`, `seconds: 60`).' }),
    requests: key(int(0, MAX_COUNT), { doc: 'Requests per window (RPM with `per: rolling`, `seconds: 60`).' }),
    cost_usd: key(nonNegativeNumber(), {
      doc: `Spend in USD per window, at most ${MAX_USD.toLocaleString('en-US')}; counted in whole micro-dollars.`,
      type: 'number ≥ 0',
    }),
    per: key(oneOf(PERIODS), {
      doc: 'The window: calendar `minute`, `hour`, `day`, `week` or `month` in `timezone`, or `rolling` over `seconds`. The window start is part of the counter key (no reset job).',
      type: 'window, required',
    }),
    timezone: key(timeZone(), {
      doc: 'IANA time zone of a calendar window (DST handled: a day can be 23 or 25 hours). Not with `rolling`.',
      type: 'IANA time zone',
      defaultText: '`UTC`',
    }),
    week_start: key(oneOf(WEEKDAYS), { doc: 'First day of a `per: week` window; only with it.', type: 'weekday', defaultText: '`monday`' }),
    seconds: key(int(1, MAX_ROLLING_SECONDS), {
      doc: 'Length of a `rolling` window: required with it, refused otherwise. Kept as 6 sub-buckets, so a rolling limit leans towards refusing rather than overshooting.',
    }),
  },
  {
    required: ['per'],
    check(limit, path, issues) {
      const given = METRIC_KEYS.filter((key) => limit[key] !== undefined);
      if (given.length === 0) issues.push({ path, message: `sets no limit; give one of ${METRIC_KEYS.join(', ')}` });
      for (const extra of given.slice(1)) {
        issues.push({ path: [...path, extra], message: `one metric per limit; put ${extra} in its own entry` });
      }
      if (limit.cost_usd !== undefined && limit.cost_usd > MAX_USD) {
        issues.push({ path: [...path, 'cost_usd'], message: `must be at most ${MAX_USD}, got ${limit.cost_usd}` });
      }
      const rolling = limit.per === 'rolling';
      if (rolling && limit.seconds === undefined) issues.push({ path: [...path, 'seconds'], message: 'missing required key (per: rolling)' });
      if (!rolling && limit.seconds !== undefined) issues.push({ path: [...path, 'seconds'], message: 'only applies to per: rolling' });
      if (rolling && limit.timezone !== undefined) issues.push({ path: [...path, 'timezone'], message: 'only applies to calendar windows' });
      if (limit.per !== 'week' && limit.week_start !== undefined) issues.push({ path: [...path, 'week_start'], message: 'only applies to per: week' });
    },
  },
);

const policyFields = {
  description: key(text({ maxLength: 1024 }), { doc: 'Free text, shown by the console and the API.' }),
  mode: key(withDefault(oneOf(['monitor', 'enforce']), 'monitor'), {
    doc: '`monitor` never blocks (reports would-block events, adds a response header); `enforce` refuses with 429 and `Retry-After` before the provider is called.',
  }),
  on_store_error: key(withDefault(oneOf(['open', 'closed']), 'open'), {
    doc: 'When the ledger is unreachable: `open` admits the request, `closed` refuses it (enforce mode).',
  }),
  stop_streams: key(withDefault(bool(), false), { doc: 'Reset a streamed response that runs past an enforce budget.' }),
  select: key(selectSchema, { doc: 'Which traffic the budget applies to. Every field is optional; a list matches any of its entries; globs `*` and `?`, case-insensitive.', defaultText: 'all traffic' }),
  limits: key(list(limitSchema, { minItems: 1, maxItems: 32 }), {
    doc: 'All must hold. One metric per entry (`input_tokens`, `output_tokens`, `total_tokens`, `requests` or `cost_usd`) with its window.',
    type: 'list (1-32), required',
  }),
};

/** One budget (also for admin API bodies, which use the YAML spelling). */
export const budgetSchema = obj(
  {
    id: key(text({ minLength: 1, maxLength: 512, pattern: BUDGET_ID, patternHint: 'an id (letters, digits, "_", "." or "-"), or <template id>:<group value>' }), {
      doc: 'Counters are keyed by id: keep it stable. `<template id>:<group value>` replaces that template instance and keeps its counters.',
      type: 'id (letters, digits, `_`, `.`, `-`) or `<template>:<group>`, required',
    }),
    ...policyFields,
  },
  { required: ['id', 'limits'] },
);

/** One budget template (also for admin API bodies). */
export const templateSchema = obj(
  {
    id: key(text({ minLength: 1, maxLength: 128, pattern: TEMPLATE_ID, patternHint: 'an id (letters, digits, "_", "." or "-")' }), {
      doc: 'Instances are named `<id>:<group value>` on every sidecar, so every sidecar shares their counters.',
      type: 'id (letters, digits, `_`, `.`, `-`), required',
    }),
    group_by: key(groupBy(), {
      doc: 'One budget per value of `consumer`, `provider`, `model` (`provider/model`) or `label:<name>`, created when the value is first seen.',
      type: 'group, required',
    }),
    ...policyFields,
  },
  { required: ['id', 'group_by', 'limits'] },
);

/**
 * A list whose entries' `key` (default `id`) must be unique; reported at the repeated value. `identity`
 * gives what must be unique when it is more than that key's value (undefined: not compared).
 */
export function uniqueIds<T, S extends Schema<T[]>>(schema: S & Schema<T[]>, key = 'id', identity: (entry: Mapping) => unknown = (entry) => entry[key]): S {
  return {
    ...schema,
    parse(value, path, issues) {
      const parsed = schema.parse(value, path, issues);
      if (!Array.isArray(value)) return parsed;
      const first = new Map<string, number>();
      value.forEach((entry, index) => {
        const id = isMapping(entry) ? identity(entry) : undefined;
        if (typeof id !== 'string') return;
        const seen = first.get(id);
        if (seen === undefined) first.set(id, index);
        else issues.push({ path: [...path, index, key], message: `duplicate ${key}; first used at ${formatPath([...path, seen])}` });
      });
      return parsed;
    },
  };
}

export const budgetsSchema = key(uniqueIds(list(budgetSchema, { maxItems: 10_000 })), {
  doc: 'Budgets, ids unique. Hot-reloaded without losing counters; see [Budgets](#budgets).',
  defaultText: '`[]`',
});
export const templatesSchema = key(uniqueIds(list(templateSchema, { maxItems: 1_000 })), {
  doc: 'Budget templates, ids unique: each creates one budget per group value. Hot-reloaded.',
  defaultText: '`[]`',
});

export interface BudgetsDocument {
  budgets?: BudgetEntry[] | undefined;
  budget_templates?: TemplateEntry[] | undefined;
}

/**
 * Cross-section rule for the top-level check: a budget id `<template>:<group>` must name a template
 * in `budget_templates` (and a `provider/model` group for a model template).
 */
export function checkBudgetReferences(doc: BudgetsDocument, path: readonly PathSegment[] = []): Issue[] {
  const templates = new Map((doc.budget_templates ?? []).map((t) => [t.id, t]));
  const issues: Issue[] = [];
  (doc.budgets ?? []).forEach((budget, index) => {
    const target = parseInstanceId(budget.id);
    if (target === undefined) return;
    const where = [...path, 'budgets', index, 'id'];
    const template = templates.get(target.templateId);
    if (template === undefined) {
      issues.push({ path: where, message: `overrides an instance of template ${JSON.stringify(target.templateId)}, which budget_templates does not define` });
    } else if (template.group_by === 'model' && !/^[^/]+\/./.test(target.group)) {
      issues.push({ path: where, message: `template ${JSON.stringify(template.id)} groups by model; expected ${template.id}:<provider>/<model>` });
    }
  });
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Conversion (of a document that validated without issues)

function toWindow(limit: LimitEntry): Window {
  if (limit.per === 'rolling') return { kind: 'rolling', seconds: limit.seconds ?? 0 };
  return { kind: limit.per, timezone: limit.timezone ?? 'UTC', weekStart: WEEKDAYS.indexOf(limit.week_start ?? 'monday') };
}

function toLimit(limit: LimitEntry): Limit {
  const window = toWindow(limit);
  if (limit.cost_usd !== undefined) return { metric: 'cost_micro_usd', max: Math.round(limit.cost_usd * 1e6), window };
  const metric: LimitMetric = COUNT_METRICS.find((key) => limit[key] !== undefined) ?? 'requests';
  return { metric, max: limit[metric] ?? 0, window };
}

function toSelector(select: SelectEntry | undefined): Selector {
  const selector: Selector = {};
  if (select === undefined) return selector;
  if (select.consumers !== undefined) selector.consumers = select.consumers;
  if (select.providers !== undefined) selector.providers = select.providers;
  if (select.models !== undefined) selector.models = select.models;
  if (select.apis !== undefined) selector.apis = select.apis;
  if (select.labels !== undefined) selector.labels = select.labels;
  return selector;
}

type Source = BudgetTemplate['source'];

/** The fields budgets and templates share. */
type Policy = Omit<BudgetTemplate, 'id' | 'groupBy'>;

function policy(entry: Omit<BudgetEntry, 'id'>, source: Source): Policy {
  const base: Policy = {
    selector: toSelector(entry.select),
    limits: entry.limits.map(toLimit),
    mode: entry.mode,
    onStoreError: entry.on_store_error,
    stopStreams: entry.stop_streams,
    source,
  };
  return entry.description === undefined ? base : { ...base, description: entry.description };
}

export function toBudget(entry: BudgetEntry, source: Source): Budget {
  return { id: entry.id, ...policy(entry, source) };
}

export function toTemplate(entry: TemplateEntry, source: Source): BudgetTemplate {
  return { id: entry.id, groupBy: entry.group_by, ...policy(entry, source) };
}

export function toBudgets(doc: BudgetsDocument): Budget[] {
  return (doc.budgets ?? []).map((entry) => toBudget(entry, 'config'));
}

export function toTemplates(doc: BudgetsDocument): BudgetTemplate[] {
  return (doc.budget_templates ?? []).map((entry) => toTemplate(entry, 'config'));
}
