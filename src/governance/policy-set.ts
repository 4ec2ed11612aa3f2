/**
 * The budgets that apply to a request: explicit budgets (config, admin API) whose selector matches,
 * plus one instance per matching template for the request's group value. A template attached to the
 * consumer in the catalog (RequestSubject.templates) matches it whatever its consumer selection says.
 *
 * Precedence: an explicit budget whose id is an instance id, `<template id>:<group value>`, is an
 * override. It takes that instance's place: it applies where the instance would (the template's
 * selector and that group value) and, within that, where its own selector matches; it never applies
 * to other groups. Since it has the instance's id it keeps the instance's counters. An override of a
 * template that does not exist applies to nothing (config validation reports it).
 */
import { LRUCache } from 'lru-cache';
import { compileResourceSelector, compileSelector, type SubjectPredicate } from './select.js';
import { groupValue, instantiate, instanceId, parseInstanceId } from './templates.js';
import type { Budget, BudgetTemplate, RequestSubject } from './types.js';

/** Instances are cheap to rebuild (deterministic), so the cache only bounds memory. */
export const DEFAULT_MAX_INSTANCES = 100_000;

interface CompiledBudget {
  budget: Budget;
  matches: SubjectPredicate;
}

interface CompiledTemplate {
  template: BudgetTemplate;
  matches: SubjectPredicate;
  /** For consumers the template is attached to (RequestSubject.templates). */
  matchesResource: SubjectPredicate;
  /** Overrides by group value. */
  overrides: Map<string, CompiledBudget>;
}

export interface PolicySetOptions {
  maxInstances?: number;
}

function isGroupValue(template: BudgetTemplate, group: string): boolean {
  if (template.groupBy !== 'model') return true;
  const slash = group.indexOf('/');
  return slash > 0 && slash < group.length - 1;
}

/** The consumer's catalog entry attaches the template, and the request is for one of its resources. */
function attached(entry: CompiledTemplate, subject: RequestSubject): boolean {
  return subject.templates !== undefined && subject.templates.includes(entry.template.id) && entry.matchesResource(subject);
}

export class PolicySet {
  private readonly explicit: CompiledBudget[] = [];
  private readonly byId = new Map<string, Budget>();
  private readonly compiled: CompiledTemplate[] = [];
  private readonly templateById = new Map<string, CompiledTemplate>();
  private readonly cache: LRUCache<string, Budget>;

  /** Throws on duplicate budget ids, duplicate template ids, or a template id containing `:`. */
  constructor(budgets: readonly Budget[], templates: readonly BudgetTemplate[], options: PolicySetOptions = {}) {
    this.cache = new LRUCache({ max: Math.max(1, options.maxInstances ?? DEFAULT_MAX_INSTANCES) });
    for (const template of templates) {
      if (template.id.includes(':')) {
        throw new Error(`budget template id ${JSON.stringify(template.id)} must not contain ":"`);
      }
      if (this.templateById.has(template.id)) throw new Error(`duplicate budget template id ${JSON.stringify(template.id)}`);
      const entry: CompiledTemplate = {
        template,
        matches: compileSelector(template.selector),
        matchesResource: compileResourceSelector(template.selector),
        overrides: new Map(),
      };
      this.compiled.push(entry);
      this.templateById.set(template.id, entry);
    }
    for (const budget of budgets) {
      if (this.byId.has(budget.id)) throw new Error(`duplicate budget id ${JSON.stringify(budget.id)}`);
      this.byId.set(budget.id, budget);
      const entry: CompiledBudget = { budget, matches: compileSelector(budget.selector) };
      const target = parseInstanceId(budget.id);
      if (target === undefined) this.explicit.push(entry);
      else this.templateById.get(target.templateId)?.overrides.set(target.group, entry);
    }
  }

  /** Every budget that applies to the request, explicit budgets first, then template instances. */
  applicable(subject: RequestSubject): Budget[] {
    const out: Budget[] = [];
    for (const entry of this.explicit) if (entry.matches(subject)) out.push(entry.budget);
    for (const entry of this.compiled) {
      if (!entry.matches(subject) && !attached(entry, subject)) continue;
      const group = groupValue(entry.template.groupBy, subject);
      if (group === undefined) continue;
      const override = entry.overrides.get(group);
      if (override !== undefined) {
        if (override.matches(subject)) out.push(override.budget);
        continue;
      }
      out.push(this.instance(entry.template, group));
    }
    return out;
  }

  /** Explicit budgets (config and admin API, overrides included), in the order given. */
  budgets(): Budget[] {
    return [...this.byId.values()];
  }

  templates(): BudgetTemplate[] {
    return this.compiled.map((entry) => entry.template);
  }

  /** Template instances created on traffic so far (bounded by the cache), sorted by id. */
  instances(): Budget[] {
    return [...this.cache.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * An explicit budget or a template instance by id. Instances are derived from their id, so one
   * seen only by another sidecar is found too (without being added to `instances()`).
   */
  budget(id: string): Budget | undefined {
    const explicit = this.byId.get(id);
    if (explicit !== undefined) return explicit;
    const cached = this.cache.get(id);
    if (cached !== undefined) return cached;
    const target = parseInstanceId(id);
    const template = target === undefined ? undefined : this.templateById.get(target.templateId)?.template;
    if (target === undefined || template === undefined || !isGroupValue(template, target.group)) return undefined;
    return instantiate(template, target.group);
  }

  private instance(template: BudgetTemplate, group: string): Budget {
    const id = instanceId(template.id, group);
    let budget = this.cache.get(id);
    if (budget === undefined) {
      budget = instantiate(template, group);
      this.cache.set(id, budget);
    }
    return budget;
  }
}
