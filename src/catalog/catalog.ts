/**
 * The CatalogView built from definitions (pure; no I/O): the config file's and the admin API's
 * merged (config wins on the same id, API definitions with that id are shadowed and reported), with
 * compiled rule and allowlist globs so the request path pays a map lookup, not a scan, per request.
 */
import { compileGlob, type Glob } from '../glob.js';
import {
  GLOBAL_POLICY_ID,
  type CatalogView,
  type ConsumerEntry,
  type ConsumerRule,
  type Owner,
  type ResolvedConsumer,
  type Resource,
  type SanctionPolicy,
  type SanctionVerdict,
} from './types.js';

/** Every kind of catalog definition, as the config file or the store holds them. */
export interface CatalogDefinitions {
  owners: Owner[];
  consumers: ConsumerEntry[];
  consumerRules: ConsumerRule[];
  resources: Resource[];
  policies: SanctionPolicy[];
}

export const EMPTY_DEFINITIONS: Readonly<CatalogDefinitions> = Object.freeze({
  owners: [],
  consumers: [],
  consumerRules: [],
  resources: [],
  policies: [],
});

export interface Shadowed {
  owners: string[];
  consumers: string[];
  consumerRules: string[];
  resources: string[];
  policies: string[];
}

/** `provider/model`, the id of a Resource. */
export function resourceId(provider: string, model: string): string {
  return `${provider}/${model}`;
}

function merge<T extends { id: string; source: string }>(config: readonly T[], api: readonly T[]): { kept: T[]; shadowed: string[] } {
  const ids = new Set(config.map((d) => d.id));
  const kept: T[] = config.map((d) => ({ ...d, source: 'config' }));
  const shadowed: string[] = [];
  for (const def of api) {
    if (ids.has(def.id)) shadowed.push(def.id);
    else kept.push({ ...def, source: 'api' });
  }
  return { kept, shadowed };
}

/** The definitions in force, and the API ids hidden by config definitions of the same kind and id. */
export function effectiveCatalog(config: CatalogDefinitions, api: CatalogDefinitions): { definitions: CatalogDefinitions; shadowed: Shadowed } {
  const owners = merge(config.owners, api.owners);
  const consumers = merge(config.consumers, api.consumers);
  const consumerRules = merge(config.consumerRules, api.consumerRules);
  const resources = merge(config.resources, api.resources);
  const policies = merge(config.policies, api.policies);
  return {
    definitions: {
      owners: owners.kept,
      consumers: consumers.kept,
      consumerRules: consumerRules.kept,
      resources: resources.kept,
      policies: policies.kept,
    },
    shadowed: {
      owners: owners.shadowed,
      consumers: consumers.shadowed,
      consumerRules: consumerRules.shadowed,
      resources: resources.shadowed,
      policies: policies.shadowed,
    },
  };
}

interface CompiledRule {
  rule: ConsumerRule;
  glob: Glob;
}

interface CompiledPolicy {
  policy: SanctionPolicy;
  allow: Glob[];
}

/** Resolved consumers remembered per catalog (rule matching is a scan; ids repeat across requests). */
const RESOLVED_CACHE_SIZE = 10_000;

export class Catalog implements CatalogView {
  private readonly owners: Map<string, Owner>;
  private readonly entries: Map<string, ConsumerEntry>;
  private readonly rules: CompiledRule[];
  private readonly resources: Map<string, Resource>;
  private readonly policies: Map<string, CompiledPolicy>;
  private readonly resolved = new Map<string, ResolvedConsumer>();
  readonly policiesActive: boolean;

  constructor(
    readonly definitions: CatalogDefinitions,
    readonly version: number = 0,
  ) {
    this.owners = new Map(definitions.owners.map((o) => [o.id, o]));
    this.entries = new Map(definitions.consumers.map((c) => [c.id, c]));
    this.rules = [...definitions.consumerRules]
      .sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((rule) => ({ rule, glob: compileGlob(rule.match) }));
    this.resources = new Map(definitions.resources.map((r) => [resourceId(r.provider, r.model), r]));
    this.policies = new Map(definitions.policies.map((p) => [p.id, { policy: p, allow: p.allow.map(compileGlob) }]));
    this.policiesActive = definitions.policies.some((p) => p.mode !== 'off');
  }

  consumer(id: string): ResolvedConsumer {
    const hit = this.resolved.get(id);
    if (hit) return hit;
    const r = this.resolve(id);
    if (this.resolved.size >= RESOLVED_CACHE_SIZE) this.resolved.clear();
    this.resolved.set(id, r);
    return r;
  }

  private resolve(id: string): ResolvedConsumer {
    const entry = this.entries.get(id);
    if (entry) {
      return {
        id,
        status: entry.status,
        owner: entry.owner ?? null,
        labels: { ...(entry.labels ?? {}) },
        displayName: entry.displayName ?? null,
        budgetTemplates: [...(entry.budgetTemplates ?? [])],
        resolvedBy: 'entry',
      };
    }
    const match = this.rules.find((r) => r.glob.matches(id));
    if (match) {
      const rule = match.rule;
      return {
        id,
        status: rule.status,
        owner: rule.owner ?? null,
        labels: { ...(rule.labels ?? {}) },
        displayName: null,
        budgetTemplates: [...(rule.budgetTemplates ?? [])],
        resolvedBy: `rule:${rule.id}`,
      };
    }
    return { id, status: 'discovered', owner: null, labels: {}, displayName: null, budgetTemplates: [], resolvedBy: 'none' };
  }

  owner(id: string): Owner | null {
    return this.owners.get(id) ?? null;
  }

  resource(provider: string, model: string): Resource | null {
    return this.resources.get(resourceId(provider, model)) ?? null;
  }

  /**
   * The consumer's owner's policy when it has one, else the global policy, else `off`. A resource is
   * sanctioned when its entry says so or the applicable policy's allowlist matches `provider/model`.
   */
  sanction(consumerId: string, provider: string, model: string): SanctionVerdict {
    const owner = this.consumer(consumerId).owner;
    const compiled = (owner !== null ? this.policies.get(owner) : undefined) ?? this.policies.get(GLOBAL_POLICY_ID);
    const marked = this.resource(provider, model)?.sanctioned === true;
    if (!compiled) return { sanctioned: marked, policy: GLOBAL_POLICY_ID, mode: 'off' };
    const id = resourceId(provider, model);
    const allowed = marked || compiled.allow.some((g) => g.matches(id));
    return { sanctioned: allowed, policy: compiled.policy.id, mode: compiled.policy.mode };
  }
}

/** The labels budgets select on: the consumer's own, plus `owner` when it has one. */
export function governanceLabels(c: ResolvedConsumer): Record<string, string> {
  return c.owner === null ? c.labels : { ...c.labels, owner: c.owner };
}
