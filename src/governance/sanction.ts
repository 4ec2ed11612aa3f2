/**
 * The unsanctioned-model policy on the request path: the catalog's verdict turned into what happens
 * to the request. Pure apart from remembering the last catalog seen, so that a catalog without any
 * policy costs a reference comparison per request, not a lookup.
 */
import { resourceId } from '../catalog/catalog.js';
import type { CatalogView } from '../catalog/types.js';

/** On responses a monitor policy flagged (and on the 403 of an enforce policy): `provider/model`. */
export const UNSANCTIONED_HEADER = 'x-tokenwarden-unsanctioned';
/** On the 403 of an enforce policy: the id of the policy that refused. */
export const POLICY_HEADER = 'x-tokenwarden-policy';

/** How ExchangeRecord.blockedBy names a policy that refused the request. */
export function policyBlocker(policyId: string): string {
  return `policy:${policyId}`;
}

/** A request for a model that is not sanctioned under a monitor or enforce policy. */
export interface Unsanctioned {
  /** `global` or the owner id whose policy applies. */
  policy: string;
  /** enforce: refuse (inline mode); monitor: flag. */
  mode: 'monitor' | 'enforce';
  /** `provider/model`. */
  resource: string;
}

/** The verdict for one request, or null when it passes unflagged (sanctioned, allowed, or policy off). */
export function judge(view: CatalogView, consumerId: string, provider: string, model: string): Unsanctioned | null {
  const verdict = view.sanction(consumerId, provider, model);
  if (verdict.sanctioned || verdict.mode === 'off') return null;
  return { policy: verdict.policy, mode: verdict.mode, resource: resourceId(provider, model) };
}

/** Judges requests against the catalog in force, skipping catalogs without policies. */
export class SanctionCheck {
  private view: CatalogView | null = null;
  private active = false;

  constructor(private readonly catalog: () => CatalogView) {}

  /**
   * `consumerId` is '' for an unidentified consumer (the global policy applies). A request whose
   * model is unknown ('') is not judged: there is no resource to look up.
   */
  check(consumerId: string, provider: string, model: string): Unsanctioned | null {
    const view = this.catalog();
    if (view !== this.view) {
      this.view = view;
      this.active = view.policiesActive;
    }
    if (!this.active || model === '') return null;
    return judge(view, consumerId, provider, model);
  }
}
