/**
 * The catalog sections of the YAML configuration (owners, consumers, consumer_rules, resources,
 * policies) and their conversion to the catalog model (src/catalog/types.ts). Example:
 *
 *   owners:
 *     - { id: payments, name: Payments, cost_center: CC-1042, contacts: [payments@example.com] }
 *   consumers:
 *     - { id: "spiffe://prod/ns/payments/sa/checkout", status: added, owner: payments,
 *         labels: { env: prod }, display_name: Checkout, budget_templates: [per-consumer] }
 *   consumer_rules:
 *     - { id: payments-prod, match: "spiffe://prod/ns/payments/*", priority: 10, owner: payments }
 *   resources:
 *     - { provider: openai, model: gpt-4o, sanctioned: true, price: { input_mtok: 2.5, output_mtok: 10 } }
 *   policies:
 *     unsanctioned: { mode: enforce, allow: ["openai/gpt-4o-mini*"] }
 *     owners: { payments: { mode: monitor } }
 *
 * The admin API validates its bodies with the same rules, spelled in camelCase (costCenter,
 * displayName, budgetTemplates): `Spelling` picks the key names, so both name the field a user wrote.
 */
import { GLOBAL_POLICY_ID, type CatalogSource, type ConsumerEntry, type ConsumerRule, type ConsumerStatus, type Labels, type Owner, type PolicyMode, type Resource, type ResourcePrice, type SanctionPolicy } from '../catalog/types.js';
import { resourceId } from '../catalog/catalog.js';
import type { PathSegment } from './errors.js';
import { labels, PROVIDER_NAMES, TEMPLATE_ID, uniqueIds } from './budgets-schema.js';
import { bool, int, isMapping, list, MAX_GLOB_CHARS, nonNegativeNumber, obj, oneOf, suggest, text, withDefault, type Fields, type Issue, type Mapping, type Schema } from './schema.js';

export type Spelling = 'yaml' | 'api';

const CAMEL: Readonly<Record<string, string>> = { cost_center: 'costCenter', display_name: 'displayName', budget_templates: 'budgetTemplates' };

/** The name of a field in the given spelling (price classes keep their snake_case names in both). */
export function fieldName(spelling: Spelling, snake: string): string {
  return spelling === 'api' ? (CAMEL[snake] ?? snake) : snake;
}

export const CONSUMER_STATUSES = ['discovered', 'added', 'ignored'] as const satisfies readonly ConsumerStatus[];
export const POLICY_MODES = ['off', 'monitor', 'enforce'] as const satisfies readonly PolicyMode[];
export const PRICE_CLASSES = ['input_mtok', 'cached_input_mtok', 'cache_write_mtok', 'output_mtok'] as const satisfies readonly (keyof ResourcePrice)[];
/** Rules without a priority come after those that set a lower one. */
export const DEFAULT_RULE_PRIORITY = 100;

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ID_HINT = 'an id (letters, digits, "_", "." or "-")';

const plainId = (): Schema<string> => text({ minLength: 1, maxLength: 128, pattern: ID, patternHint: ID_HINT });

/** An owner id; `global` names the global policy, so no owner may take it. */
function ownerId(): Schema<string> {
  const base = plainId();
  return {
    parse(value, path, issues) {
      const id = base.parse(value, path, issues);
      if (id !== GLOBAL_POLICY_ID) return id;
      issues.push({ path, message: `"${GLOBAL_POLICY_ID}" is reserved for the global policy; choose another owner id` });
      return undefined;
    },
  };
}

/** A consumer id exactly as discovery reports it (SPIFFE ids, `key:<hmac>`, addresses...). */
const consumerId = (): Schema<string> => text({ minLength: 1, maxLength: 1024 });
const templateId = (): Schema<string> => text({ minLength: 1, maxLength: 128, pattern: TEMPLATE_ID, patternHint: ID_HINT });
const name = (): Schema<string> => text({ minLength: 1, maxLength: 256 });

/** A provider tokenwarden reports in the inventory (no globs: a resource is one model at one provider). */
function provider(): Schema<string> {
  const base = text({ minLength: 1, maxLength: 64, lowercase: true });
  return {
    parse(value, path, issues) {
      const p = base.parse(value, path, issues);
      if (p === undefined || PROVIDER_NAMES.includes(p)) return p;
      const hint = suggest(p, PROVIDER_NAMES);
      const tail = hint === undefined ? `expected one of ${PROVIDER_NAMES.join(', ')}` : `did you mean "${hint}"?`;
      issues.push({ path, message: `unknown provider ${JSON.stringify(p)}; ${tail}` });
      return undefined;
    },
  };
}

const priceSchema = obj(
  Object.fromEntries(PRICE_CLASSES.map((c) => [c, nonNegativeNumber()])) as Record<(typeof PRICE_CLASSES)[number], Schema<number>>,
  {
    check(price, path, issues) {
      if (PRICE_CLASSES.every((c) => price[c] === undefined)) issues.push({ path, message: `sets no price; give at least one of ${PRICE_CLASSES.join(', ')}` });
    },
  },
);

function fields(spelling: Spelling, entries: Record<string, Schema<unknown>>): Fields {
  return Object.fromEntries(Object.entries(entries).map(([snake, schema]) => [fieldName(spelling, snake), schema]));
}

/** The field schemas of each kind in one spelling, so the config and the API validate alike. */
export function catalogSchemas(spelling: Spelling) {
  const templates = list(templateId(), { maxItems: 100 });
  return {
    owner: obj(
      fields(spelling, {
        id: ownerId(),
        name: name(),
        cost_center: text({ minLength: 1, maxLength: 128 }),
        contacts: list(name(), { maxItems: 50 }),
      }),
      { required: ['id', 'name'] },
    ),
    consumer: obj(
      fields(spelling, {
        id: consumerId(),
        status: withDefault(oneOf(CONSUMER_STATUSES), 'added'),
        owner: ownerId(),
        labels: labels(),
        display_name: name(),
        budget_templates: templates,
      }),
      { required: ['id'] },
    ),
    rule: obj(
      fields(spelling, {
        id: plainId(),
        match: text({ minLength: 1, maxLength: MAX_GLOB_CHARS }),
        priority: withDefault(int(-1_000_000, 1_000_000), DEFAULT_RULE_PRIORITY),
        status: withDefault(oneOf(CONSUMER_STATUSES), 'added'),
        owner: ownerId(),
        labels: labels(),
        budget_templates: templates,
      }),
      { required: ['id', 'match'] },
    ),
    resource: obj(
      fields(spelling, {
        provider: provider(),
        model: text({ minLength: 1, maxLength: 256 }),
        sanctioned: bool(),
        display_name: name(),
        price: priceSchema,
        endpoint: text({ minLength: 1, maxLength: 2048 }),
        notes: text({ maxLength: 4096 }),
      }),
      { required: ['provider', 'model', 'sanctioned'] },
    ),
    policy: obj({ mode: oneOf(POLICY_MODES), allow: withDefault(list(text({ minLength: 1, maxLength: MAX_GLOB_CHARS }), { maxItems: 1_000 }), []) }, { required: ['mode'] }),
  };
}

const YAML = catalogSchemas('yaml');

/** Resources are unique by provider (any case) and model; a repeat is reported at its model. */
function resourceKey(e: Mapping): string | undefined {
  return typeof e['provider'] === 'string' && typeof e['model'] === 'string' ? resourceId(e['provider'].toLowerCase(), e['model']) : undefined;
}

/** Owner ids to policies; validated keys, so a typo is reported where it is. */
const ownerPolicies: Schema<Record<string, Mapping>> = {
  parse(value, path, issues) {
    if (!isMapping(value)) {
      issues.push({ path, message: 'expected a mapping of owner ids to policies' });
      return undefined;
    }
    const out: [string, Mapping][] = [];
    for (const [key, raw] of Object.entries(value)) {
      if (ownerId().parse(key, [...path, key], issues) === undefined) continue;
      const parsed = YAML.policy.parse(raw, [...path, key], issues);
      if (parsed !== undefined) out.push([key, parsed as Mapping]);
    }
    return Object.fromEntries(out);
  },
};

export const catalogSections = {
  owners: uniqueIds(list(YAML.owner, { maxItems: 10_000 })),
  consumers: uniqueIds(list(YAML.consumer, { maxItems: 100_000 })),
  consumer_rules: uniqueIds(list(YAML.rule, { maxItems: 10_000 })),
  resources: uniqueIds(list(YAML.resource, { maxItems: 10_000 }), 'model', resourceKey),
  policies: obj({ unsanctioned: YAML.policy, owners: ownerPolicies }, { nullIsAbsent: true }),
};

/** The catalog sections as validated, before conversion. */
export interface CatalogDocument {
  owners?: Mapping[] | undefined;
  consumers?: Mapping[] | undefined;
  consumer_rules?: Mapping[] | undefined;
  resources?: Mapping[] | undefined;
  policies?: { unsanctioned?: Mapping | undefined; owners?: Record<string, Mapping> | undefined } | undefined;
  budget_templates?: { id: string }[] | undefined;
}

/**
 * Cross-section rules for the top-level check: owners named by consumers, rules and owner policies
 * are defined in `owners`; templates named by consumers and rules are defined in `budget_templates`.
 * (A config file is complete on its own: it cannot lean on definitions made through the API.)
 */
export function checkCatalogReferences(doc: CatalogDocument, path: readonly PathSegment[] = []): Issue[] {
  const owners = new Set((doc.owners ?? []).map((o) => o['id']));
  const templates = new Set((doc.budget_templates ?? []).map((t) => t.id));
  const issues: Issue[] = [];
  const check = (section: 'consumers' | 'consumer_rules'): void => {
    (doc[section] ?? []).forEach((entry, index) => {
      const owner = entry['owner'];
      if (typeof owner === 'string' && !owners.has(owner)) {
        issues.push({ path: [...path, section, index, 'owner'], message: `owner ${JSON.stringify(owner)} is not defined in owners` });
      }
      const named = entry['budget_templates'];
      (Array.isArray(named) ? named : []).forEach((t, i) => {
        if (!templates.has(t as string)) {
          issues.push({ path: [...path, section, index, 'budget_templates', i], message: `template ${JSON.stringify(t)} is not defined in budget_templates` });
        }
      });
    });
  };
  check('consumers');
  check('consumer_rules');
  for (const owner of Object.keys(doc.policies?.owners ?? {})) {
    if (!owners.has(owner)) issues.push({ path: [...path, 'policies', 'owners', owner], message: `owner ${JSON.stringify(owner)} is not defined in owners`, atKey: true });
  }
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Conversion (of entries that validated without issues)

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export function toOwner(e: Mapping, spelling: Spelling, source: CatalogSource): Owner {
  const f = (k: string): unknown => e[fieldName(spelling, k)];
  return {
    id: e['id'] as string,
    name: e['name'] as string,
    ...optional('costCenter', f('cost_center') as string | undefined),
    ...optional('contacts', f('contacts') as string[] | undefined),
    source,
  };
}

export function toConsumer(e: Mapping, spelling: Spelling, source: CatalogSource): ConsumerEntry {
  const f = (k: string): unknown => e[fieldName(spelling, k)];
  return {
    id: e['id'] as string,
    status: e['status'] as ConsumerStatus,
    ...optional('owner', e['owner'] as string | undefined),
    ...optional('labels', e['labels'] as Labels | undefined),
    ...optional('displayName', f('display_name') as string | undefined),
    ...optional('budgetTemplates', f('budget_templates') as string[] | undefined),
    source,
  };
}

export function toRule(e: Mapping, spelling: Spelling, source: CatalogSource): ConsumerRule {
  const f = (k: string): unknown => e[fieldName(spelling, k)];
  return {
    id: e['id'] as string,
    match: e['match'] as string,
    priority: e['priority'] as number,
    status: e['status'] as ConsumerStatus,
    ...optional('owner', e['owner'] as string | undefined),
    ...optional('labels', e['labels'] as Labels | undefined),
    ...optional('budgetTemplates', f('budget_templates') as string[] | undefined),
    source,
  };
}

export function toResource(e: Mapping, spelling: Spelling, source: CatalogSource): Resource {
  const provider = e['provider'] as string;
  const model = e['model'] as string;
  return {
    id: resourceId(provider, model),
    provider,
    model,
    sanctioned: e['sanctioned'] as boolean,
    ...optional('displayName', e[fieldName(spelling, 'display_name')] as string | undefined),
    ...optional('price', e['price'] as ResourcePrice | undefined),
    ...optional('endpoint', e['endpoint'] as string | undefined),
    ...optional('notes', e['notes'] as string | undefined),
    source,
  };
}

export function toPolicy(id: string, e: Mapping, source: CatalogSource): SanctionPolicy {
  return { id, mode: e['mode'] as PolicyMode, allow: e['allow'] as string[], source };
}

export function toPolicies(section: CatalogDocument['policies']): SanctionPolicy[] {
  const out: SanctionPolicy[] = [];
  if (section?.unsanctioned !== undefined) out.push(toPolicy(GLOBAL_POLICY_ID, section.unsanctioned, 'config'));
  for (const [id, p] of Object.entries(section?.owners ?? {})) out.push(toPolicy(id, p, 'config'));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Back to the YAML spelling (the export)

type Plain = Record<string, unknown>;

function defined(o: Plain): Plain {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export function ownerYaml(o: Owner): Plain {
  return defined({ id: o.id, name: o.name, cost_center: o.costCenter, contacts: o.contacts });
}

export function consumerYaml(c: ConsumerEntry): Plain {
  return defined({ id: c.id, status: c.status, owner: c.owner, labels: c.labels, display_name: c.displayName, budget_templates: c.budgetTemplates });
}

export function ruleYaml(r: ConsumerRule): Plain {
  return defined({ id: r.id, match: r.match, priority: r.priority, status: r.status, owner: r.owner, labels: r.labels, budget_templates: r.budgetTemplates });
}

export function resourceYaml(r: Resource): Plain {
  return defined({ provider: r.provider, model: r.model, sanctioned: r.sanctioned, display_name: r.displayName, price: r.price, endpoint: r.endpoint, notes: r.notes });
}

export function policiesYaml(policies: readonly SanctionPolicy[]): Plain {
  const body = (p: SanctionPolicy): Plain => ({ mode: p.mode, allow: p.allow });
  const global = policies.find((p) => p.id === GLOBAL_POLICY_ID);
  const owners = policies.filter((p) => p.id !== GLOBAL_POLICY_ID);
  return defined({
    unsanctioned: global === undefined ? undefined : body(global),
    owners: owners.length === 0 ? undefined : Object.fromEntries(owners.map((p) => [p.id, body(p)])),
  });
}
