/**
 * The governed source of truth a platform team builds on top of discovery (product.md: Consumer,
 * Owner, Provider, Resource): who owns each consumer, which models are sanctioned, and the policy for
 * the ones that are not. Pure data: the config file (GitOps) and the admin API produce these; the
 * request path reads them through a CatalogView; showback groups usage by them.
 */

/** Where a definition comes from. Config wins over the API on the same id (see the README). */
export type CatalogSource = 'config' | 'api';

/** A team or department that answers for consumers (showback/chargeback subject). */
export interface Owner {
  /** Stable id, e.g. `payments`: labels, budgets and exports refer to it. */
  id: string;
  name: string;
  costCenter?: string;
  /** E-mail addresses, chat channels, on-call aliases. */
  contacts?: string[];
  source: CatalogSource;
}

/**
 * discovered: seen in traffic, nobody looked at it yet (no entry needed);
 * added: resolved and governed; ignored: reviewed and deliberately left alone (e.g. a test client).
 */
export type ConsumerStatus = 'discovered' | 'added' | 'ignored';

/** Labels a consumer carries once resolved: team, env, cost_center, app, ... (free-form keys). */
export type Labels = Record<string, string>;

/** What a platform engineer decided about one consumer (keyed by the discovered consumer id). */
export interface ConsumerEntry {
  /** The consumer id exactly as discovery reports it (header value, SPIFFE id, `key:<hmac>`, ...). */
  id: string;
  status: ConsumerStatus;
  /** Owner id. */
  owner?: string;
  labels?: Labels;
  displayName?: string;
  /** Budget templates that apply to this consumer whatever their selectors say (governance follows ownership). */
  budgetTemplates?: string[];
  source: CatalogSource;
}

/**
 * Bulk resolution: every consumer whose id matches `match` (a glob: `*`, `?`), now and discovered
 * later, gets these fields unless it has its own ConsumerEntry. Rules are tried in `priority` order
 * (lower first, then id); the first match wins.
 */
export interface ConsumerRule {
  id: string;
  match: string;
  priority: number;
  status: ConsumerStatus;
  owner?: string;
  labels?: Labels;
  budgetTemplates?: string[];
  source: CatalogSource;
}

/** A model at a provider. `model` is the model name requests use (its versions appear in the inventory). */
export interface Resource {
  /** `provider/model`. */
  id: string;
  provider: string;
  model: string;
  sanctioned: boolean;
  displayName?: string;
  /** Price override in USD per million tokens; absent classes keep the catalog price. */
  price?: ResourcePrice;
  /** For self-hosted or internal endpoints: where it runs, who runs it. */
  endpoint?: string;
  notes?: string;
  source: CatalogSource;
}

export interface ResourcePrice {
  input_mtok?: number;
  cached_input_mtok?: number;
  cache_write_mtok?: number;
  output_mtok?: number;
}

export type PolicyMode = 'off' | 'monitor' | 'enforce';

/**
 * What happens to requests for models that are not sanctioned. `id` is `global` or an owner id
 * (that owner's consumers follow their own policy instead of the global one). `allow` lists
 * `provider/model` globs permitted even though they are not sanctioned (per-owner allowlists).
 */
export interface SanctionPolicy {
  id: string;
  mode: PolicyMode;
  allow: string[];
  source: CatalogSource;
}

export const GLOBAL_POLICY_ID = 'global';

/** One change made through the admin API, readable as an audit log (config-file changes live in its Git history). */
export interface AuditEntry {
  /** Epoch ms. */
  at: number;
  /** Name of the admin token used (`anonymous` when the admin API runs without tokens on loopback). */
  actor: string;
  action: 'create' | 'update' | 'delete';
  entity: 'owner' | 'consumer' | 'consumer_rule' | 'resource' | 'policy' | 'budget' | 'template';
  id: string;
  /** The definition before and after the change (absent for create / delete respectively). */
  before?: unknown;
  after?: unknown;
}

/** A consumer as governance sees it: its entry, else its first matching rule, else discovered. */
export interface ResolvedConsumer {
  id: string;
  status: ConsumerStatus;
  owner: string | null;
  labels: Labels;
  displayName: string | null;
  budgetTemplates: string[];
  /** `entry`, `rule:<id>`, or `none` (discovered, nothing decided). */
  resolvedBy: string;
}

/** The sanction verdict for one request. */
export interface SanctionVerdict {
  /** True when the resource is marked sanctioned or allowed by the applicable policy's allowlist. */
  sanctioned: boolean;
  /** The policy that applies (global or the consumer's owner's); mode `off` when none. */
  policy: string;
  mode: PolicyMode;
}

/**
 * The in-memory view the request path and the admin API read (no I/O: a sidecar rebuilds it when
 * the store's catalog version moves or the config reloads).
 */
export interface CatalogView {
  readonly version: number;
  /** False when no policy can flag a request (none, or all `off`): the request path skips the check. */
  readonly policiesActive: boolean;
  consumer(id: string): ResolvedConsumer;
  owner(id: string): Owner | null;
  resource(provider: string, model: string): Resource | null;
  sanction(consumerId: string, provider: string, model: string): SanctionVerdict;
}
