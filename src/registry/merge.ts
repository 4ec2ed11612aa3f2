/**
 * Which definitions are in force when the config file and the admin API both define budgets and
 * templates. The config file wins: an API definition whose id a config definition of the same kind
 * already uses is shadowed (kept in the store, not applied, reported), so a config change can
 * never be undone from the API. Pure: the sidecar's poller and the admin API both call it.
 */
import type { Budget, BudgetTemplate } from '../governance/types.js';

export interface EffectiveDefinitions {
  /** Config budgets, then API budgets not shadowed (each group in the order given). */
  budgets: Budget[];
  templates: BudgetTemplate[];
  /** Ids of API definitions hidden by a config definition with the same id. */
  shadowed: { budgets: string[]; templates: string[] };
}

export function effectiveDefinitions(
  config: { budgets: readonly Budget[]; templates: readonly BudgetTemplate[] },
  api: { budgets: readonly Budget[]; templates: readonly BudgetTemplate[] },
): EffectiveDefinitions {
  const budgets = merge(config.budgets, api.budgets);
  const templates = merge(config.templates, api.templates);
  return {
    budgets: budgets.kept,
    templates: templates.kept,
    shadowed: { budgets: budgets.shadowed, templates: templates.shadowed },
  };
}

function merge<T extends { id: string; source: string }>(config: readonly T[], api: readonly T[]): { kept: T[]; shadowed: string[] } {
  const configIds = new Set(config.map((d) => d.id));
  const kept = [...config];
  const shadowed: string[] = [];
  for (const def of api) {
    if (configIds.has(def.id)) shadowed.push(def.id);
    // Whatever the store holds, what came through the API is an API definition.
    else kept.push({ ...def, source: 'api' });
  }
  return { kept, shadowed };
}
