/**
 * The budget policy model (product.md: Budget, Budget Template, Mode, Reservation). Pure data: the
 * config and the admin API produce these; admission evaluates them against the ledger.
 */
import type { ApiKind } from '../domain.js';

/** What a limit counts. Money is integer micro-dollars, like everywhere else. */
export type LimitMetric = 'input_tokens' | 'output_tokens' | 'total_tokens' | 'cost_micro_usd' | 'requests';

/**
 * Calendar windows start at the local boundary in `timezone` (IANA name); weeks start on
 * `weekStart` (0 = Sunday ... 6 = Saturday). Rolling windows cover the last `seconds` (TPM/RPM).
 */
export type Window =
  | { kind: 'minute' | 'hour' | 'day' | 'week' | 'month'; timezone: string; weekStart: number }
  | { kind: 'rolling'; seconds: number };

export interface Limit {
  metric: LimitMetric;
  /** Integer: tokens, requests, or micro-dollars. */
  max: number;
  window: Window;
}

/** Which traffic a budget applies to. Absent fields match everything; lists match any entry. */
export interface Selector {
  /** Consumer ids or globs (`*`, `?`). */
  consumers?: string[];
  /** Consumer labels (team, owner, env...) that must all be equal, once the consumer has them. */
  labels?: Record<string, string>;
  /** Provider names or globs. */
  providers?: string[];
  /** Model globs, matched against the requested model. */
  models?: string[];
  apis?: ApiKind[];
}

export type BudgetMode = 'monitor' | 'enforce';
export type StoreErrorPolicy = 'open' | 'closed';

export interface Budget {
  /** Stable id: counters are keyed by it (renaming a budget keeps its counters only if the id stays). */
  id: string;
  description?: string;
  selector: Selector;
  limits: Limit[];
  mode: BudgetMode;
  /** When the ledger is unreachable: admit (open, default) or reject (closed). Counted and logged. */
  onStoreError: StoreErrorPolicy;
  /** Reset a streaming response that runs past an exhausted enforce budget (default: let it finish). */
  stopStreams: boolean;
  /** Where the definition comes from; see "precedence" in the README. */
  source: 'config' | 'api' | 'template';
  /** For template instances: the template id and the group value. */
  template?: { id: string; group: string };
}

/** The attribute a template groups by: one budget instance per distinct value. */
export type GroupBy = 'consumer' | 'provider' | 'model' | { label: string };

export interface BudgetTemplate {
  id: string;
  description?: string;
  selector: Selector;
  groupBy: GroupBy;
  limits: Limit[];
  mode: BudgetMode;
  onStoreError: StoreErrorPolicy;
  stopStreams: boolean;
  source: 'config' | 'api';
}

/** What admission knows about a request when it decides. */
export interface RequestSubject {
  consumer: string;
  /** Labels of the consumer when known (resolved owners, teams); empty until then. */
  labels: Readonly<Record<string, string>>;
  /**
   * Budget templates attached to the consumer in the catalog: they apply to it whatever their
   * consumer selection (consumers, labels) says; their providers, models and apis still narrow.
   */
  templates?: readonly string[];
  provider: string;
  model: string;
  api: ApiKind;
}
