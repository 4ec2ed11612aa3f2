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
 * Each key is declared once, with its doc string (the README's reference is generated from it); the
 * entry types derive from the declarations. The admin API validates its bodies with the same rules,
 * spelled in camelCase (costCenter, displayName, budgetTemplates), so both name the field a user
 * wrote; both parse to the YAML shape, which one conversion per kind turns into the catalog model.
 * Also here: the references across sections a config file must satisfy (checkCatalogReferences), and
 * the way back to the YAML spelling for the catalog export (ownerYaml ... policiesYaml).
 */
import { GLOBAL_POLICY_ID, type CatalogSource, type ConsumerEntry, type ConsumerRule, type ConsumerStatus, type Owner, type PolicyMode, type Resource, type ResourcePrice, type SanctionPolicy } from '../catalog/types.js';
import { resourceId } from '../catalog/catalog.js';
import type { PathSegment } from './errors.js';
import { labels, PROVIDER_NAMES, TEMPLATE_ID, uniqueIds } from './budgets-schema.js';
import { bool, int, key, list, mapOf, MAX_GLOB_CHARS, nonNegativeNumber, obj, oneOf, suggest, text, withDefault, type Fields, type Issue, type Mapping, type ObjSchema, type Out, type Schema } from './schema.js';

/** The API's names for the fields whose YAML name has an underscore (price classes keep theirs). */
const CAMEL: Readonly<Record<string, string>> = { cost_center: 'costCenter', display_name: 'displayName', budget_templates: 'budgetTemplates' };
const SNAKE: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(CAMEL).map(([snake, camel]) => [camel, snake]));

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

const price = (doc: string) => key(nonNegativeNumber(), { doc, type: 'USD per million tokens' });

const priceSchema = obj(
  {
    input_mtok: price('Input tokens not read from or written to a cache.'),
    cached_input_mtok: price("Input tokens read from the provider's prompt cache."),
    cache_write_mtok: price("Input tokens written to the provider's prompt cache."),
    output_mtok: price('Output tokens, reasoning included.'),
  } satisfies Record<(typeof PRICE_CLASSES)[number], Schema<number>>,
  {
    check(price, path, issues) {
      if (PRICE_CLASSES.every((c) => price[c] === undefined)) issues.push({ path, message: `sets no price; give at least one of ${PRICE_CLASSES.join(', ')}` });
    },
  },
);

/** One kind of definition in both spellings; both parse to the YAML shape, so one conversion serves both. */
interface Spelled<F extends Fields, R extends keyof F & string> {
  yaml: ObjSchema<F, R>;
  api: Schema<Out<ObjSchema<F, R>>>;
}

function spelled<F extends Fields, R extends keyof F & string>(fields: F, required: readonly R[]): Spelled<F, R> {
  const camel = (snake: string): string => CAMEL[snake] ?? snake;
  const apiFields = Object.fromEntries(Object.entries(fields).map(([snake, schema]) => [camel(snake), schema]));
  const api = obj(apiFields, { required: required.map(camel) });
  return {
    yaml: obj(fields, { required }),
    api: {
      label: 'mapping',
      parse(value, path, issues) {
        const parsed = api.parse(value, path, issues);
        if (parsed === undefined) return undefined;
        return Object.fromEntries(Object.entries(parsed).map(([name, v]) => [SNAKE[name] ?? name, v])) as Out<ObjSchema<F, R>>;
      },
    },
  };
}

const templates = key(list(templateId(), { maxItems: 100 }), {
  doc: 'Budget templates attached to the consumer whatever their consumer selection says (their `providers`, `models` and `apis` still narrow them); each must be defined in `budget_templates`.',
  type: 'list of template ids',
});
const statusDoc = 'The decision: `discovered` (not yet decided), `added` or `ignored`.';
const ownerDoc = 'The owner answering for it (showback, per-owner policy, the `owner` label); must be defined in `owners`.';
const labelsDoc = 'Labels budgets select on (`select.labels`, `group_by: label:<name>`).';

/** The definitions of each kind, in both spellings, so the config and the API validate alike. */
const KINDS = {
  owner: spelled(
    {
      id: key(ownerId(), { doc: 'Names the owner in consumers, rules, policies and showback. `global` is reserved.', type: 'id (letters, digits, `_`, `.`, `-`), required' }),
      name: key(name(), { doc: 'Display name.', type: 'string, required' }),
      cost_center: key(text({ minLength: 1, maxLength: 128 }), { doc: 'For chargeback; returned by the API and the catalog export.' }),
      contacts: key(list(name(), { maxItems: 50 }), { doc: 'E-mail addresses or other contacts.', type: 'list of strings' }),
    },
    ['id', 'name'],
  ),
  consumer: spelled(
    {
      id: key(consumerId(), { doc: 'The consumer id exactly as discovered (SPIFFE id, `key:<fingerprint>`, address...).', type: 'string, required' }),
      status: key(withDefault(oneOf(CONSUMER_STATUSES), 'added'), { doc: statusDoc }),
      owner: key(ownerId(), { doc: ownerDoc, type: 'owner id' }),
      labels: key(labels(), { doc: labelsDoc, type: 'mapping of label names to values' }),
      display_name: key(name(), { doc: 'Shown by the console and showback.' }),
      budget_templates: templates,
    },
    ['id'],
  ),
  rule: spelled(
    {
      id: key(plainId(), { doc: 'Names the rule (and orders rules of equal priority).', type: 'id (letters, digits, `_`, `.`, `-`), required' }),
      match: key(text({ minLength: 1, maxLength: MAX_GLOB_CHARS }), { doc: 'Consumer ids it resolves, now or discovered later, unless they have their own entry.', type: 'glob, required' }),
      priority: key(withDefault(int(-1_000_000, 1_000_000), DEFAULT_RULE_PRIORITY), { doc: 'Rules are tried lowest first, then by id; the first match wins.' }),
      status: key(withDefault(oneOf(CONSUMER_STATUSES), 'added'), { doc: statusDoc }),
      owner: key(ownerId(), { doc: ownerDoc, type: 'owner id' }),
      labels: key(labels(), { doc: labelsDoc, type: 'mapping of label names to values' }),
      budget_templates: templates,
    },
    ['id', 'match'],
  ),
  resource: spelled(
    {
      provider: key(provider(), { doc: 'A provider name tokenwarden reports (no glob: one model at one provider).', type: 'provider name, required' }),
      model: key(text({ minLength: 1, maxLength: 256 }), { doc: 'The requested model name; with `provider` the resource id `provider/model`, unique.', type: 'string, required' }),
      sanctioned: key(bool(), { doc: 'Whether the model may be used; the unsanctioned-model policies act on `false` and on models with no entry.', type: 'boolean, required' }),
      display_name: key(name(), { doc: 'Shown by the console.' }),
      price: key(priceSchema, { doc: 'USD per million tokens, at least one class; replaces the bundled catalog for this model (see [Prices](#prices)).', defaultText: 'the bundled catalog' }),
      endpoint: key(text({ minLength: 1, maxLength: 2048 }), { doc: 'Where a self-hosted model is served (documentation only).' }),
      notes: key(text({ maxLength: 4096 }), { doc: 'Free text.' }),
    },
    ['provider', 'model', 'sanctioned'],
  ),
  policy: spelled(
    {
      mode: key(oneOf(POLICY_MODES), { doc: '`off`, `monitor` (report and flag) or `enforce` (refuse with 403) for requests to unsanctioned models.', type: '`off`, `monitor` or `enforce`, required' }),
      allow: key(withDefault(list(text({ minLength: 1, maxLength: MAX_GLOB_CHARS }), { maxItems: 1_000 }), []), {
        doc: 'Unsanctioned `provider/model` globs this policy lets through anyway.',
        type: 'list of globs',
      }),
    },
    ['mode'],
  ),
};

export type OwnerEntry = Out<typeof KINDS.owner.yaml>;
export type ConsumerDefinition = Out<typeof KINDS.consumer.yaml>;
export type RuleEntry = Out<typeof KINDS.rule.yaml>;
export type ResourceEntry = Out<typeof KINDS.resource.yaml>;
export type PolicyEntry = Out<typeof KINDS.policy.yaml>;

/** The admin API's schemas: camelCase keys in, the YAML shape out. */
export const API_SCHEMAS = {
  owner: KINDS.owner.api,
  consumer: KINDS.consumer.api,
  rule: KINDS.rule.api,
  resource: KINDS.resource.api,
  policy: KINDS.policy.api,
};

/** Resources are unique by provider (any case) and model; a repeat is reported at its model. */
function resourceKey(e: Mapping): string | undefined {
  return typeof e['provider'] === 'string' && typeof e['model'] === 'string' ? resourceId(e['provider'].toLowerCase(), e['model']) : undefined;
}

export const catalogSections = {
  owners: key(uniqueIds(list(KINDS.owner.yaml, { maxItems: 10_000 })), { doc: 'Teams or people who answer for consumers; ids unique.', defaultText: '`[]`' }),
  consumers: key(uniqueIds(list(KINDS.consumer.yaml, { maxItems: 100_000 })), { doc: 'One decision per discovered consumer id; ids unique.', defaultText: '`[]`' }),
  consumer_rules: key(uniqueIds(list(KINDS.rule.yaml, { maxItems: 10_000 })), {
    doc: 'Bulk decisions: every consumer whose id matches, without its own entry; ids unique.',
    defaultText: '`[]`',
  }),
  resources: key(uniqueIds(list(KINDS.resource.yaml, { maxItems: 10_000 }), 'model', resourceKey), {
    doc: 'Models at providers: sanctioned or not, an optional price. Unique by provider/model.',
    defaultText: '`[]`',
  }),
  policies: key(
    obj(
      {
        unsanctioned: key(KINDS.policy.yaml, { doc: 'The global policy for unsanctioned models.', defaultText: 'off' }),
        owners: key(mapOf(ownerId(), KINDS.policy.yaml, { what: 'owner ids to policies', placeholder: '<owner id>' }), {
          doc: 'Per-owner policies, replacing the global one for that owner\'s consumers; each owner must be defined in `owners`.',
          type: 'mapping of owner ids to policies',
          defaultText: 'none',
        }),
      },
      { nullIsAbsent: true },
    ),
    { doc: 'Policies for unsanctioned models; see [Unsanctioned models](#unsanctioned-models).' },
  ),
};

/** The catalog sections as validated, before conversion (with the template ids they may name). */
export type CatalogDocument = { [K in keyof typeof catalogSections]?: Out<(typeof catalogSections)[K]> | undefined } & {
  budget_templates?: readonly { id: string }[] | undefined;
};

/**
 * Cross-section rules for the top-level check: owners named by consumers, rules and owner policies
 * are defined in `owners`; templates named by consumers and rules are defined in `budget_templates`.
 * (A config file is complete on its own: it cannot lean on definitions made through the API.)
 */
export function checkCatalogReferences(doc: CatalogDocument, path: readonly PathSegment[] = []): Issue[] {
  const owners = new Set((doc.owners ?? []).map((o) => o.id));
  const templates = new Set((doc.budget_templates ?? []).map((t) => t.id));
  const issues: Issue[] = [];
  const check = (section: 'consumers' | 'consumer_rules'): void => {
    (doc[section] ?? []).forEach((entry: ConsumerDefinition | RuleEntry, index) => {
      if (entry.owner !== undefined && !owners.has(entry.owner)) {
        issues.push({ path: [...path, section, index, 'owner'], message: `owner ${JSON.stringify(entry.owner)} is not defined in owners` });
      }
      (entry.budget_templates ?? []).forEach((t, i) => {
        if (!templates.has(t)) {
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
// Conversion (of entries that validated without issues; the API's are respelled to this shape)

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export function toOwner(e: OwnerEntry, source: CatalogSource): Owner {
  return { id: e.id, name: e.name, ...optional('costCenter', e.cost_center), ...optional('contacts', e.contacts), source };
}

export function toConsumer(e: ConsumerDefinition, source: CatalogSource): ConsumerEntry {
  return {
    id: e.id,
    status: e.status,
    ...optional('owner', e.owner),
    ...optional('labels', e.labels),
    ...optional('displayName', e.display_name),
    ...optional('budgetTemplates', e.budget_templates),
    source,
  };
}

export function toRule(e: RuleEntry, source: CatalogSource): ConsumerRule {
  return {
    id: e.id,
    match: e.match,
    priority: e.priority,
    status: e.status,
    ...optional('owner', e.owner),
    ...optional('labels', e.labels),
    ...optional('budgetTemplates', e.budget_templates),
    source,
  };
}

export function toResource(e: ResourceEntry, source: CatalogSource): Resource {
  return {
    id: resourceId(e.provider, e.model),
    provider: e.provider,
    model: e.model,
    sanctioned: e.sanctioned,
    ...optional('displayName', e.display_name),
    ...optional('price', e.price),
    ...optional('endpoint', e.endpoint),
    ...optional('notes', e.notes),
    source,
  };
}

export function toPolicy(id: string, e: PolicyEntry, source: CatalogSource): SanctionPolicy {
  return { id, mode: e.mode, allow: e.allow, source };
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
