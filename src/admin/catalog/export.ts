/**
 * The catalog export: every definition in force (config file and admin API) as YAML in the config
 * file's own format, so API changes can be pasted back into the file (GitOps). Pure.
 */
import { Document } from 'yaml';
import type { CatalogDefinitions } from '../../catalog/catalog.js';
import { consumerYaml, ownerYaml, policiesYaml, resourceYaml, ruleYaml } from '../../config/catalog-schema.js';
import type { Budget, BudgetTemplate } from '../../governance/types.js';
import { budgetJson, templateJson } from '../budgets/body.js';

/** The definition as the config writes it: without the read-only `source`. */
function withoutSource(json: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(json).filter(([key]) => key !== 'source'));
}

export function catalogYaml(catalog: CatalogDefinitions, budgets: readonly Budget[], templates: readonly BudgetTemplate[], at: number): string {
  const doc = new Document({
    owners: catalog.owners.map(ownerYaml),
    consumers: catalog.consumers.map(consumerYaml),
    consumer_rules: catalog.consumerRules.map(ruleYaml),
    resources: catalog.resources.map(resourceYaml),
    policies: policiesYaml(catalog.policies),
    budgets: budgets.map((b) => withoutSource(budgetJson(b))),
    budget_templates: templates.map((t) => withoutSource(templateJson(t))),
  });
  doc.commentBefore =
    ` tokenwarden catalog export, ${new Date(at).toISOString()}: every definition in force (config file and admin API).\n` +
    ' Paste these sections into the config file; definitions in the file win over the admin API on the same id.';
  return doc.toString({ lineWidth: 0 });
}
