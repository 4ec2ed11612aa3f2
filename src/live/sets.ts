/** The two live sets of a server: budgets (with templates) and the catalog, each config + API registry. */
import { Catalog, effectiveCatalog, EMPTY_DEFINITIONS, type CatalogDefinitions } from '../catalog/catalog.js';
import { PolicySet } from '../governance/policy-set.js';
import type { Budget, BudgetTemplate } from '../governance/types.js';
import type { CatalogRegistry } from '../registry/catalog-types.js';
import { effectiveDefinitions } from '../registry/merge.js';
import type { BudgetRegistry } from '../registry/types.js';
import { LiveSet } from './live-set.js';

export interface BudgetDefinitions {
  budgets: Budget[];
  templates: BudgetTemplate[];
}

/** Budgets and templates in force; building refuses duplicate ids (PolicySet throws). */
export function liveBudgets(config: BudgetDefinitions, registry: BudgetRegistry): LiveSet<BudgetDefinitions, PolicySet> {
  return new LiveSet({
    config,
    empty: { budgets: [], templates: [] },
    registry,
    build: (fromConfig, api) => {
      const effective = effectiveDefinitions(fromConfig, api);
      return new PolicySet(effective.budgets, effective.templates);
    },
  });
}

/** The catalog in force (owners, consumers, resources, sanction policies); its version moves with every rebuild. */
export function liveCatalog(config: CatalogDefinitions, registry: CatalogRegistry): LiveSet<CatalogDefinitions, Catalog> {
  let builds = 0;
  return new LiveSet({
    config,
    empty: EMPTY_DEFINITIONS,
    registry,
    build: (fromConfig, api) => new Catalog(effectiveCatalog(fromConfig, api).definitions, ++builds),
  });
}
