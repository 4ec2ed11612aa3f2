/**
 * The catalog admin API (mounted by ../http.ts through ../json-routes.ts). Bodies and replies use the
 * field names of src/catalog/types.ts (camelCase); replies add `source` (config or api).
 *
 *   GET    /api/v1/owners                       {items, shadowed}
 *   POST   /api/v1/owners                       201; 409 when the id exists
 *   GET|PUT|DELETE /api/v1/owners/{id}          PUT creates (201) or replaces (200); DELETE 204
 *   GET|PUT|DELETE /api/v1/consumers/{id}       the consumer's entry (GET adds its resolution)
 *   GET|POST /api/v1/consumer-rules; GET|PUT|DELETE /api/v1/consumer-rules/{id}
 *   POST   /api/v1/consumer-rules/preview       {match} -> {matches (known consumer ids, max 1000), total}
 *   GET    /api/v1/resources                    catalog resources and inventory models, with usage
 *   PUT|DELETE /api/v1/resources/{provider/model}
 *   GET    /api/v1/policies; PUT|DELETE /api/v1/policies/{global | owner id}
 *   GET    /api/v1/audit?limit&before           newest first
 *   GET    /api/v1/catalog/export               YAML in the config file's format
 *
 * Config definitions are read-only here (409): the config file wins over the API on the same id;
 * API definitions it hides are listed as `shadowed`. Definitions are read from the store on every
 * request, so a change shows at once; after each write `changed()` brings the sidecar's catalog in
 * force up to date (other sidecars follow within governance.registry_poll_ms).
 */
import { compileGlob } from '../../glob.js';
import { Catalog, effectiveCatalog, type CatalogDefinitions, type Shadowed } from '../../catalog/catalog.js';
import { GLOBAL_POLICY_ID, type AuditEntry, type ConsumerEntry, type ConsumerRule, type Owner, type Resource, type SanctionPolicy } from '../../catalog/types.js';
import type { PolicySet } from '../../governance/policy-set.js';
import type { Budget, BudgetTemplate } from '../../governance/types.js';
import { errorFields, type Logger } from '../../log.js';
import type { CatalogRegistry } from '../../registry/catalog-types.js';
import { effectiveDefinitions } from '../../registry/merge.js';
import type { BudgetRegistry, DefinitionCollection } from '../../registry/types.js';
import type { InventoryStore } from '../../inventory/types.js';
import { auditor } from './audit.js';
import { parseConsumerBody, parseOwnerBody, parsePolicyBody, parsePreviewBody, parseResourceBody, parseRuleBody, splitResourceId } from './body.js';
import { catalogYaml } from './export.js';
import { allConsumers, resourceUsage } from './inventory.js';
import { parseAuditQuery } from './query.js';
import { storeCall } from '../inventory/api.js';
import type { JsonRoute, RouteInput } from '../json-routes.js';
import { ApiError, badParameter, jsonReply } from '../reply.js';

export interface CatalogApiDeps {
  registry: CatalogRegistry;
  /** The catalog sections of the config file (hot-reloaded). */
  config(): CatalogDefinitions;
  store: InventoryStore;
  /** Budgets and templates: template references are checked against them; the export includes them. */
  budgets?: { policies(): PolicySet; registry: BudgetRegistry };
  /** After a successful write: resolves once the sidecar's catalog in force includes it. */
  changed?(): Promise<void>;
  /** Longest wait for one store call (503 beyond). */
  storeTimeoutMs: number;
  now(): number;
  logger?: Logger;
}

/** Matching consumer ids listed by a rule preview (the total counts them all). */
export const MAX_PREVIEW_MATCHES = 1000;

type Kind = keyof CatalogDefinitions;
type Entity = AuditEntry['entity'];

interface KindSpec<T extends { id: string }> {
  /** Singular, for messages. */
  noun: string;
  entity: Entity;
  base: string;
  kind: Kind;
  collection(): DefinitionCollection<T>;
  /** The canonical id for a path id (resources: lower-case provider). */
  normalize?(id: string): string;
  /** Checks references and values against the definitions in force; throws a 400. */
  check(def: T, effective: Effective): void;
}

interface Effective {
  definitions: CatalogDefinitions;
  shadowed: Shadowed;
  templates: BudgetTemplate[];
}

export function catalogRoutes(deps: CatalogApiDeps): JsonRoute[] {
  const call = <T>(what: string, run: () => Promise<T>): Promise<T> => storeCall(deps, 'store', what, run);
  const audit = auditor({ audit: deps.registry.audit, now: deps.now, storeTimeoutMs: deps.storeTimeoutMs, logger: deps.logger });

  const budgetDefinitions = async (): Promise<{ budgets: Budget[]; templates: BudgetTemplate[] }> => {
    const b = deps.budgets;
    if (b === undefined) return { budgets: [], templates: [] };
    const snapshot = await call('budget registry', () => b.registry.snapshot());
    const config = { budgets: b.policies().budgets().filter((x) => x.source === 'config'), templates: b.policies().templates().filter((x) => x.source === 'config') };
    return effectiveDefinitions(config, snapshot);
  };
  const effective = async (withTemplates = false): Promise<Effective> => {
    const snapshot = await call('catalog registry', () => deps.registry.snapshot());
    const merged = effectiveCatalog(deps.config(), snapshot);
    const templates = withTemplates ? (await budgetDefinitions()).templates : [];
    return { ...merged, templates };
  };
  const changed = async (): Promise<void> => {
    try {
      await deps.changed?.();
    } catch (err) {
      // The write is stored; the poller applies it on its next round.
      deps.logger?.warn('catalog refresh after a write failed; the next poll applies it', errorFields(err));
    }
  };

  const checkOwner = (owner: string | undefined, e: Effective): void => {
    if (owner !== undefined && !e.definitions.owners.some((o) => o.id === owner)) {
      throw new ApiError(400, 'invalid_body', `owner: no owner ${JSON.stringify(owner)}; create it first (POST /api/v1/owners)`, 'owner');
    }
  };
  const checkTemplates = (named: string[] | undefined, e: Effective): void => {
    if (deps.budgets === undefined) return;
    named?.forEach((id, i) => {
      if (!e.templates.some((t) => t.id === id)) {
        throw new ApiError(400, 'invalid_body', `budgetTemplates[${i}]: no budget template ${JSON.stringify(id)}`, 'budgetTemplates');
      }
    });
  };

  const OWNERS: KindSpec<Owner> = {
    noun: 'owner',
    entity: 'owner',
    base: '/api/v1/owners',
    kind: 'owners',
    collection: () => deps.registry.owners,
    check: () => {},
  };
  const CONSUMERS: KindSpec<ConsumerEntry> = {
    noun: 'consumer',
    entity: 'consumer',
    base: '/api/v1/consumers',
    kind: 'consumers',
    collection: () => deps.registry.consumers,
    check: (c, e) => {
      checkOwner(c.owner, e);
      checkTemplates(c.budgetTemplates, e);
    },
  };
  const RULES: KindSpec<ConsumerRule> = {
    noun: 'consumer rule',
    entity: 'consumer_rule',
    base: '/api/v1/consumer-rules',
    kind: 'consumerRules',
    collection: () => deps.registry.consumerRules,
    check: (r, e) => {
      checkOwner(r.owner, e);
      checkTemplates(r.budgetTemplates, e);
    },
  };
  const RESOURCES: KindSpec<Resource> = {
    noun: 'resource',
    entity: 'resource',
    base: '/api/v1/resources',
    kind: 'resources',
    collection: () => deps.registry.resources,
    normalize: normalizeResourceId,
    check: () => {},
  };
  const POLICIES: KindSpec<SanctionPolicy> = {
    noun: 'policy',
    entity: 'policy',
    base: '/api/v1/policies',
    kind: 'policies',
    collection: () => deps.registry.policies,
    check: (p, e) => {
      if (p.id !== GLOBAL_POLICY_ID && !e.definitions.owners.some((o) => o.id === p.id)) {
        throw new ApiError(400, 'invalid_path', `id: a policy is "${GLOBAL_POLICY_ID}" or an owner's id, and there is no owner ${JSON.stringify(p.id)}`, 'id');
      }
    },
  };

  const readOnly = (spec: KindSpec<{ id: string }>, id: string): void => {
    if (deps.config()[spec.kind].some((d) => d.id === id)) {
      throw new ApiError(409, 'defined_in_config', `${spec.noun} ${JSON.stringify(id)} is defined in the config file, which wins over the API; change it there`, 'id');
    }
  };
  const location = (spec: KindSpec<{ id: string }>, id: string) => ({ location: `${spec.base}/${encodeURIComponent(id)}` });

  /** Create (POST, when `create`), put and delete for one kind, each audited. */
  const writes = <T extends { id: string }>(spec: KindSpec<T>, parse: (body: unknown, pathId?: string) => T, create: boolean): JsonRoute[] => {
    const parsed = async (input: RouteInput, pathId?: string): Promise<T> => {
      const def = parse(input.body, pathId);
      readOnly(spec, def.id);
      spec.check(def, await effective(spec.kind === 'consumers' || spec.kind === 'consumerRules'));
      return def;
    };
    const routes: JsonRoute[] = [
      {
        method: 'PUT',
        path: `${spec.base}/{id}`,
        async handle(input) {
          const id = spec.normalize?.(input.id) ?? input.id;
          readOnly(spec, id);
          const def = await parsed(input, id);
          const before = await call('catalog registry', () => spec.collection().get(def.id));
          const outcome = await call('catalog registry', () => spec.collection().put(def));
          await audit.record(input, { action: outcome === 'created' ? 'create' : 'update', entity: spec.entity, id: def.id, ...(before ? { before } : {}), after: def });
          await changed();
          return outcome === 'created' ? jsonReply(201, def, location(spec, def.id)) : jsonReply(200, def);
        },
      },
      {
        method: 'DELETE',
        path: `${spec.base}/{id}`,
        async handle(input) {
          const id = spec.normalize?.(input.id) ?? input.id;
          readOnly(spec, id);
          if (spec.kind === 'owners') checkUnused(id, await effective());
          const before = await call('catalog registry', () => spec.collection().get(id));
          if (!(await call('catalog registry', () => spec.collection().delete(id)))) throw notFound(spec.noun, id, 'created through the API');
          await audit.record(input, { action: 'delete', entity: spec.entity, id, ...(before ? { before } : {}) });
          await changed();
          return { status: 204, headers: {}, body: '' };
        },
      },
    ];
    if (create) {
      routes.push({
        method: 'POST',
        path: spec.base,
        async handle(input) {
          const def = await parsed(input);
          if (!(await call('catalog registry', () => spec.collection().create(def)))) {
            throw new ApiError(409, 'already_exists', `${spec.noun} ${JSON.stringify(def.id)} already exists; use PUT ${spec.base}/{id} to replace it`, 'id');
          }
          await audit.record(input, { action: 'create', entity: spec.entity, id: def.id, after: def });
          await changed();
          return jsonReply(201, def, location(spec, def.id));
        },
      });
    }
    return routes;
  };

  /** An owner still named by a consumer, rule or policy cannot go (those would point nowhere). */
  const checkUnused = (owner: string, e: Effective): void => {
    const users = [
      ...e.definitions.consumers.filter((c) => c.owner === owner).map((c) => `consumer ${JSON.stringify(c.id)}`),
      ...e.definitions.consumerRules.filter((r) => r.owner === owner).map((r) => `consumer rule ${JSON.stringify(r.id)}`),
      ...e.definitions.policies.filter((p) => p.id === owner).map((p) => `policy ${JSON.stringify(p.id)}`),
    ];
    if (users.length > 0) {
      const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? ` and ${users.length - 5} more` : '');
      throw new ApiError(409, 'in_use', `owner ${JSON.stringify(owner)} is still referenced by ${shown}`, 'id');
    }
  };

  /** GET list and GET one for a kind. */
  const reads = (spec: KindSpec<{ id: string }>, one: boolean): JsonRoute[] => {
    const routes: JsonRoute[] = [
      {
        method: 'GET',
        path: spec.base,
        async handle({ query }) {
          noParameters(query);
          const e = await effective();
          const defs: readonly { id: string }[] = e.definitions[spec.kind];
          return jsonReply(200, { items: sortById(defs), shadowed: e.shadowed[spec.kind] });
        },
      },
    ];
    if (one) {
      routes.push({
        method: 'GET',
        path: `${spec.base}/{id}`,
        async handle({ query, id }) {
          noParameters(query);
          const def = (await effective()).definitions[spec.kind].find((d) => d.id === id);
          if (def === undefined) throw notFound(spec.noun, id, 'in force');
          return jsonReply(200, def);
        },
      });
    }
    return routes;
  };

  return [
    ...reads(OWNERS, true),
    ...writes(OWNERS, parseOwnerBody, true),
    {
      method: 'GET',
      path: `${CONSUMERS.base}/{id}`,
      async handle({ query, id }) {
        noParameters(query);
        const e = await effective();
        const entry = e.definitions.consumers.find((c) => c.id === id) ?? null;
        return jsonReply(200, { id, entry, resolution: new Catalog(e.definitions).consumer(id) });
      },
    },
    ...writes(CONSUMERS, (body, pathId) => parseConsumerBody(body, pathId ?? ''), false),
    ...reads(RULES, true),
    ...writes(RULES, parseRuleBody, true),
    {
      method: 'POST',
      path: `${RULES.base}/preview`,
      async handle({ query, body }) {
        noParameters(query);
        const glob = compileGlob(parsePreviewBody(body));
        const ids = (await allConsumers(deps.store, call)).map((c) => c.consumer).filter((id) => glob.matches(id));
        return jsonReply(200, { matches: ids.slice(0, MAX_PREVIEW_MATCHES), total: ids.length });
      },
    },
    {
      method: 'GET',
      path: RESOURCES.base,
      async handle({ query }) {
        noParameters(query);
        const [e, usage] = await Promise.all([effective(), resourceUsage(deps.store, call)]);
        const ids = new Set([...e.definitions.resources.map((r) => r.id), ...usage.keys()]);
        const byId = new Map(e.definitions.resources.map((r) => [r.id, r]));
        const items = [...ids].sort().map((id) => {
          const def = byId.get(id);
          const used = usage.get(id);
          const stats = { requests: used?.requests ?? 0, costMicroUsd: used?.costMicroUsd ?? 0, consumers: used?.consumers ?? 0, responseModels: used?.responseModels ?? [] };
          if (def !== undefined) return { ...def, reviewed: true, ...stats };
          return { id, provider: used!.provider, model: used!.model, sanctioned: false, reviewed: false, ...stats };
        });
        return jsonReply(200, { items, shadowed: e.shadowed.resources });
      },
    },
    ...writes(RESOURCES, (body, pathId) => parseResourceBody(body, pathId ?? ''), false),
    ...reads(POLICIES, false),
    ...writes(POLICIES, (body, pathId) => parsePolicyBody(body, pathId ?? ''), false),
    {
      method: 'GET',
      path: '/api/v1/audit',
      async handle({ query }) {
        const q = parseAuditQuery(query);
        return jsonReply(200, { items: await call('audit log', () => deps.registry.audit.list(q)) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/catalog/export',
      async handle({ query }) {
        noParameters(query);
        const [e, b] = await Promise.all([effective(), budgetDefinitions()]);
        const d = e.definitions;
        const definitions: CatalogDefinitions = {
          owners: sortById(d.owners),
          consumers: sortById(d.consumers),
          consumerRules: sortById(d.consumerRules),
          resources: sortById(d.resources),
          policies: sortById(d.policies),
        };
        return {
          status: 200,
          headers: { 'content-type': 'application/yaml; charset=utf-8', 'content-disposition': 'attachment; filename="tokenwarden-catalog.yaml"' },
          body: catalogYaml(definitions, b.budgets, b.templates, deps.now()),
        };
      },
    },
  ];
}

/** `OpenAI/gpt-4o` and `openai/gpt-4o` are one resource: providers are lower-case names. */
function normalizeResourceId(id: string): string {
  const { provider, model } = splitResourceId(id);
  return `${provider}/${model}`;
}

function sortById<T extends { id: string }>(defs: readonly T[]): T[] {
  return [...defs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function notFound(noun: string, id: string, where: string): ApiError {
  return new ApiError(404, 'not_found', `no ${noun} ${JSON.stringify(id)} ${where}`, 'id');
}

function noParameters(query: URLSearchParams): void {
  for (const name of query.keys()) throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
}

