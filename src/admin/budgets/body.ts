/**
 * Budgets and templates in the admin API are spelled exactly as in the YAML config
 * (config/budgets-schema.ts), as JSON, both ways: request bodies go through the config's own
 * validation (every problem named by its field path) and conversion, and definitions are written
 * back in that spelling, plus read-only fields (source, template, and each limit's state in GET).
 *
 *   { "id": "team-a", "mode": "monitor", "on_store_error": "open", "stop_streams": false,
 *     "select": { "labels": { "team": "a" }, "models": ["gpt-4o*"] },
 *     "limits": [ { "cost_usd": 500, "per": "month", "timezone": "Europe/Paris" },
 *                 { "requests": 60, "per": "rolling", "seconds": 60 } ] }
 *   templates add "group_by": "consumer" | "provider" | "model" | "label:<name>"
 */
import { formatPath, type PathSegment } from '../../config/errors.js';
import { budgetsSchema, templatesSchema, toBudgets, toTemplates } from '../../config/budgets-schema.js';
import type { Issue, Schema } from '../../config/schema.js';
import { formatGroupBy } from '../../governance/templates.js';
import type { Budget, BudgetTemplate, Limit, Selector } from '../../governance/types.js';

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

export class BodyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(field === '' ? message : `${field}: ${message}`);
  }
}

/**
 * Validates one entry with the config's list schema (a list of one), so the API accepts exactly
 * what the config file does. Throws BodyError naming the first bad field, in document order.
 */
function entry<T>(schema: Schema<T[]>, body: unknown): T {
  const issues: Issue[] = [];
  const parsed = schema.parse([body], [], issues);
  const first = issues[0];
  if (first !== undefined) {
    // Drop the list index: the body is the entry.
    const path: PathSegment[] = first.path.slice(1);
    throw new BodyError(path.length === 0 ? '' : formatPath(path), path.length === 0 ? `the body: ${first.message}` : first.message);
  }
  const value = parsed?.[0];
  if (value === undefined) throw new BodyError('', 'expected a JSON object');
  return value;
}

/**
 * For PUT the path names the definition: the body may omit `id`, and a different one is refused
 * rather than taken as a rename (the id keys the counters).
 */
function withPathId(body: unknown, pathId: string | undefined): unknown {
  if (pathId === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const given = (body as Record<string, unknown>)['id'];
  if (given === undefined) return { ...body, id: pathId };
  if (given !== pathId) throw new BodyError('id', `must match the id in the path (${JSON.stringify(pathId)})`);
  return body;
}

/** A budget from a request body; `pathId` for PUT. Defaults as in the config (mode monitor...). */
export function parseBudgetBody(body: unknown, pathId?: string): Budget {
  const parsed = entry(budgetsSchema, withPathId(body, pathId));
  return { ...toBudgets({ budgets: [parsed] })[0]!, source: 'api' };
}

export function parseTemplateBody(body: unknown, pathId?: string): BudgetTemplate {
  const parsed = entry(templatesSchema, withPathId(body, pathId));
  return { ...toTemplates({ budget_templates: [parsed] })[0]!, source: 'api' };
}

// ---------------------------------------------------------------------------------------------
// Definitions back to the config spelling

/** A limit as the config writes it: `{ <metric>: max, per, timezone?, week_start?, seconds? }`. */
export function limitEntryJson(l: Limit): Record<string, unknown> {
  const amount = l.metric === 'cost_micro_usd' ? { cost_usd: l.max / 1e6 } : { [l.metric]: l.max };
  const w = l.window;
  if (w.kind === 'rolling') return { ...amount, per: 'rolling', seconds: w.seconds };
  return { ...amount, per: w.kind, timezone: w.timezone, ...(w.kind === 'week' ? { week_start: WEEKDAYS[w.weekStart] } : {}) };
}

export function selectJson(s: Selector): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['consumers', 'providers', 'models', 'apis', 'labels'] as const) if (s[key] !== undefined) out[key] = s[key];
  return out;
}

function definitionJson(d: Budget | BudgetTemplate): Record<string, unknown> {
  return {
    id: d.id,
    ...(d.description !== undefined ? { description: d.description } : {}),
    source: d.source,
    mode: d.mode,
    on_store_error: d.onStoreError,
    stop_streams: d.stopStreams,
    select: selectJson(d.selector),
  };
}

/** Without `limits` (the state view adds them with their state). */
export function budgetDefinitionJson(b: Budget): Record<string, unknown> {
  return { ...definitionJson(b), ...(b.template ? { template: { id: b.template.id, group: b.template.group } } : {}) };
}

export function budgetJson(b: Budget): Record<string, unknown> {
  return { ...budgetDefinitionJson(b), limits: b.limits.map(limitEntryJson) };
}

export function templateJson(t: BudgetTemplate): Record<string, unknown> {
  return { ...definitionJson(t), group_by: formatGroupBy(t.groupBy), limits: t.limits.map(limitEntryJson) };
}
