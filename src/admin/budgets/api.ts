/**
 * The budgets admin API (mounted by ../http.ts through ../json-routes.ts):
 *
 *   GET    /api/v1/budgets                 every budget in force (config, API, template instances
 *                                          seen by this sidecar) with each limit's state; offset/limit
 *   GET    /api/v1/budgets/{id}            one budget (any template instance, seen or not)
 *   POST   /api/v1/budgets                 create an API budget (409 if the id exists)
 *   PUT    /api/v1/budgets/{id}            create or replace an API budget
 *   DELETE /api/v1/budgets/{id}            delete an API budget
 *   ... the same five under /api/v1/budget-templates (definitions only: templates have no counters)
 *   GET    /api/v1/would-block             would-block counts by budget and consumer over a time range
 *
 * Config definitions are read-only here (409): the config file wins over the API for the same id.
 * Every write is recorded in the audit log (when one is given), by the request's token name.
 * API definitions are read from the store on every request, so a change is visible at once here;
 * admission sees it when the sidecar next polls the registry's version.
 */
import type { Logger } from '../../log.js';
import type { PolicySet } from '../../governance/policy-set.js';
import { instantiate, parseInstanceId } from '../../governance/templates.js';
import type { Budget, BudgetTemplate } from '../../governance/types.js';
import type { BudgetLedger, ItemState } from '../../governance/ledger.js';
import { effectiveDefinitions, type EffectiveDefinitions } from '../../registry/merge.js';
import type { BudgetRegistry, DefinitionCollection } from '../../registry/types.js';
import type { AuditLog } from '../../registry/catalog-types.js';
import { HOUR_MS } from '../../time.js';
import { auditor } from '../catalog/audit.js';
import { BodyError, budgetJson, parseBudgetBody, parseTemplateBody, templateJson } from './body.js';
import { budgetStateJson, limitCounters, wouldBlockJson, type WouldBlockFilter } from './views.js';
import { storeCall } from '../inventory/api.js';
import type { JsonRoute, RouteInput } from '../json-routes.js';
import { parsePage, parseTimestamp } from '../query.js';
import { ApiError, badParameter, jsonReply } from '../reply.js';

export interface BudgetsApiDeps {
  /** The policy in force now (config, hot-reloaded, and the API definitions last polled). */
  policies(): PolicySet;
  registry: BudgetRegistry;
  ledger: BudgetLedger;
  /** Where writes are recorded (the catalog registry's audit log). */
  audit?: AuditLog;
  /** Longest wait for one store call (503 beyond). */
  storeTimeoutMs: number;
  now(): number;
  logger?: Logger;
}

/** Would-block counts are kept about a month; a longer range would only read empty hours. */
const MAX_WOULD_BLOCK_RANGE_MS = 31 * 24 * HOUR_MS;
const WOULD_BLOCK_PARAMS = ['from', 'to', 'budget', 'consumer'];

const BUDGETS = '/api/v1/budgets';
const TEMPLATES = '/api/v1/budget-templates';

export function budgetRoutes(deps: BudgetsApiDeps): JsonRoute[] {
  const call = <T>(what: string, run: () => Promise<T>): Promise<T> => storeCall(deps, 'budget store', what, run);
  const audit = auditor({ audit: deps.audit, now: deps.now, storeTimeoutMs: deps.storeTimeoutMs, logger: deps.logger });
  const configBudgets = (): Budget[] => deps.policies().budgets().filter((b) => b.source === 'config');
  const configTemplates = (): BudgetTemplate[] => deps.policies().templates().filter((t) => t.source === 'config');
  const definitions = async (): Promise<EffectiveDefinitions> => {
    const snapshot = await call('registry', () => deps.registry.snapshot());
    return effectiveDefinitions({ budgets: configBudgets(), templates: configTemplates() }, snapshot);
  };

  /** Budgets with their limits' state, read in one ledger call. */
  const withState = async (budgets: Budget[]) => {
    const now = deps.now();
    const counters = budgets.map((b) => limitCounters(b, now));
    const flat = counters.flat().map((c) => ({ counter: c.counter, max: c.max, ...(c.rollingMs !== undefined ? { rollingMs: c.rollingMs } : {}) }));
    const states: ItemState[] = flat.length === 0 ? [] : await call('ledger', () => deps.ledger.read(flat));
    const byCounter = new Map(states.map((s) => [s.counter, s]));
    return budgets.map((b, i) => budgetStateJson(b, counters[i]!, byCounter));
  };

  const mutations = <T extends { id: string }>(
    kind: 'budget' | 'budget template',
    base: string,
    collection: () => DefinitionCollection<T>,
    configIds: () => string[],
    parse: (body: unknown, pathId?: string) => T,
    check: (def: T, defs: EffectiveDefinitions) => void,
    view: (def: T) => Record<string, unknown>,
  ): JsonRoute[] => {
    const readOnly = (id: string): void => {
      if (configIds().includes(id)) {
        throw new ApiError(409, 'defined_in_config', `${kind} ${JSON.stringify(id)} is defined in the config file, which wins over the API; change it there`, 'id');
      }
    };
    const parsed = async (input: RouteInput, pathId?: string): Promise<T> => {
      const def = parseBody(() => parse(input.body, pathId));
      readOnly(def.id);
      check(def, await definitions());
      return def;
    };
    const location = (id: string) => ({ location: `${base}/${encodeURIComponent(id)}` });
    const entity = kind === 'budget' ? 'budget' : 'template';
    /** The definition before a change, as the API shows it (read only when there is an audit log). */
    const previous = async (id: string): Promise<{ before?: Record<string, unknown> }> => {
      if (deps.audit === undefined) return {};
      const def = await call('registry', () => collection().get(id));
      return def === null ? {} : { before: view(def) };
    };
    return [
      {
        method: 'POST',
        path: base,
        async handle(input) {
          const def = await parsed(input);
          if (!(await call('registry', () => collection().create(def)))) {
            throw new ApiError(409, 'already_exists', `${kind} ${JSON.stringify(def.id)} already exists; use PUT ${base}/{id} to replace it`, 'id');
          }
          await audit.record(input, { action: 'create', entity, id: def.id, after: view(def) });
          return jsonReply(201, view(def), location(def.id));
        },
      },
      {
        method: 'PUT',
        path: `${base}/{id}`,
        async handle(input) {
          readOnly(input.id);
          const def = await parsed(input, input.id);
          const before = await previous(def.id);
          const outcome = await call('registry', () => collection().put(def));
          await audit.record(input, { action: outcome === 'created' ? 'create' : 'update', entity, id: def.id, ...before, after: view(def) });
          return outcome === 'created' ? jsonReply(201, view(def), location(def.id)) : jsonReply(200, view(def));
        },
      },
      {
        method: 'DELETE',
        path: `${base}/{id}`,
        async handle(input) {
          readOnly(input.id);
          const before = await previous(input.id);
          if (!(await call('registry', () => collection().delete(input.id)))) throw notFound(kind, input.id, 'created through the API');
          await audit.record(input, { action: 'delete', entity, id: input.id, ...before });
          return { status: 204, headers: {}, body: '' };
        },
      },
    ];
  };

  return [
    {
      method: 'GET',
      path: BUDGETS,
      async handle({ query }) {
        const page = parsePage(query);
        const defs = await definitions();
        const all = [...defs.budgets, ...currentInstances(deps.policies(), defs)];
        const items = await withState(all.slice(page.offset, page.offset + page.limit));
        return jsonReply(200, { items, total: all.length, offset: page.offset, limit: page.limit, shadowed: defs.shadowed.budgets });
      },
    },
    {
      method: 'GET',
      path: `${BUDGETS}/{id}`,
      async handle({ query, id }) {
        noParameters(query);
        const budget = findBudget(id, await definitions());
        if (budget === undefined) throw notFound('budget', id, 'in force');
        return jsonReply(200, (await withState([budget]))[0]);
      },
    },
    {
      method: 'GET',
      path: TEMPLATES,
      async handle({ query }) {
        noParameters(query);
        const defs = await definitions();
        return jsonReply(200, { items: defs.templates.map(templateJson), shadowed: defs.shadowed.templates });
      },
    },
    {
      method: 'GET',
      path: `${TEMPLATES}/{id}`,
      async handle({ query, id }) {
        noParameters(query);
        const template = (await definitions()).templates.find((t) => t.id === id);
        if (template === undefined) throw notFound('budget template', id, 'in force');
        return jsonReply(200, templateJson(template));
      },
    },
    ...mutations(
      'budget',
      BUDGETS,
      () => deps.registry.budgets,
      () => configBudgets().map((b) => b.id),
      parseBudgetBody,
      checkOverride,
      budgetJson,
    ),
    ...mutations(
      'budget template',
      TEMPLATES,
      () => deps.registry.templates,
      () => configTemplates().map((t) => t.id),
      parseTemplateBody,
      () => {},
      templateJson,
    ),
    {
      method: 'GET',
      path: '/api/v1/would-block',
      async handle({ query }) {
        const filter = parseWouldBlock(query, deps.now());
        const counts = await call('ledger', () => deps.ledger.wouldBlock(filter.from, filter.to));
        const defs = await definitions();
        return jsonReply(200, wouldBlockJson(filter, counts, (id) => findBudget(id, defs)?.mode ?? null));
      },
    },
  ];
}

/**
 * Template instances this sidecar has created, rebuilt from the current template (an API template
 * changed since the last poll shows its new limits), minus those an explicit budget overrides.
 */
function currentInstances(policies: PolicySet, defs: EffectiveDefinitions): Budget[] {
  const templates = new Map(defs.templates.map((t) => [t.id, t]));
  const explicit = new Set(defs.budgets.map((b) => b.id));
  return policies.instances().flatMap((instance) => {
    const template = instance.template && templates.get(instance.template.id);
    if (!template || explicit.has(instance.id)) return [];
    return [instantiate(template, instance.template!.group)];
  });
}

/** An explicit budget, or the instance `<template id>:<group>` of a template in force. */
function findBudget(id: string, defs: EffectiveDefinitions): Budget | undefined {
  const explicit = defs.budgets.find((b) => b.id === id);
  if (explicit !== undefined) return explicit;
  const target = parseInstanceId(id);
  const template = target && defs.templates.find((t) => t.id === target.templateId);
  return target && template ? instantiate(template, target.group) : undefined;
}

/**
 * A budget id with ":" overrides one instance of a template (`<template id>:<group value>`, see
 * policy-set.ts); without such a template it would apply to nothing, so it is refused.
 */
function checkOverride(budget: Budget, defs: EffectiveDefinitions): void {
  const target = parseInstanceId(budget.id);
  if (target === undefined) return;
  const template = defs.templates.find((t) => t.id === target.templateId);
  const invalid = (message: string): ApiError => new ApiError(400, 'invalid_body', `id: ${message}`, 'id');
  if (template === undefined) throw invalid(`overrides an instance of template ${JSON.stringify(target.templateId)}, which does not exist`);
  if (template.groupBy === 'model' && !/^[^/]+\/./.test(target.group)) {
    throw invalid(`template ${JSON.stringify(template.id)} groups by model; expected ${template.id}:<provider>/<model>`);
  }
}

function parseBody<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof BodyError) throw new ApiError(400, 'invalid_body', err.message, err.field || null);
    throw err;
  }
}

function notFound(kind: string, id: string, where: string): ApiError {
  return new ApiError(404, 'not_found', `no ${kind} ${JSON.stringify(id)} ${where}`, 'id');
}

function noParameters(query: URLSearchParams): void {
  for (const name of query.keys()) throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
}

/** Defaults: the last 24 hours up to now. Hours are the report's resolution, so bounds align to them. */
export function parseWouldBlock(query: URLSearchParams, now: number): WouldBlockFilter {
  const seen = new Set<string>();
  for (const name of query.keys()) {
    if (!WOULD_BLOCK_PARAMS.includes(name)) throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
    if (seen.has(name)) throw badParameter(name, `parameter "${name}" is given more than once`);
    seen.add(name);
  }
  const time = (name: string): number | undefined => {
    const raw = query.get(name);
    if (raw === null) return undefined;
    const ms = parseTimestamp(raw);
    if (ms === null) throw badParameter(name, `${name} must be an RFC 3339 date-time (2025-01-31T12:00:00Z) or epoch milliseconds`);
    return ms;
  };
  const rawTo = time('to');
  const to = Math.ceil((rawTo ?? now + 1) / HOUR_MS) * HOUR_MS;
  const from = Math.floor((time('from') ?? to - 24 * HOUR_MS) / HOUR_MS) * HOUR_MS;
  if (from >= to) throw badParameter(rawTo === undefined ? 'from' : 'to', 'from must be before to (default: now)');
  if (to - from > MAX_WOULD_BLOCK_RANGE_MS) throw badParameter('from', 'the range from..to must not exceed 31 days');
  const filter: WouldBlockFilter = { from, to };
  const budget = query.get('budget');
  const consumer = query.get('consumer');
  if (budget !== null) filter.budget = budget;
  if (consumer !== null) filter.consumer = consumer;
  return filter;
}

