/**
 * The budget registry contract: budgets and templates created through the admin API, persisted in
 * the store so every sidecar sees them. Config-file definitions are not kept here (the YAML is their
 * source of truth). One implementation in memory, one on Redis; both pass one contract suite.
 *
 * Every change bumps a version number, so a sidecar notices changes by polling version() (cheap) and
 * reads a snapshot() only when it moved.
 */
import type { Budget, BudgetTemplate } from '../governance/types.js';

/** One kind of definition (budgets or templates), keyed by id. Values are stored as given. */
export interface DefinitionCollection<T extends { id: string }> {
  /** Every definition, ordered by id. */
  list(): Promise<T[]>;
  get(id: string): Promise<T | null>;
  /** Adds the definition unless its id exists (then changes nothing and returns false). */
  create(def: T): Promise<boolean>;
  /** Adds or replaces the definition with this id. */
  put(def: T): Promise<'created' | 'replaced'>;
  /** False when there was no such id. */
  delete(id: string): Promise<boolean>;
}

/** Both kinds as of one version (read together, so a poller never sees half a change). */
export interface RegistrySnapshot {
  version: number;
  budgets: Budget[];
  templates: BudgetTemplate[];
}

export interface BudgetRegistry {
  readonly budgets: DefinitionCollection<Budget>;
  readonly templates: DefinitionCollection<BudgetTemplate>;
  /** Increases with every change of either kind (0 when nothing was ever written). */
  version(): Promise<number>;
  snapshot(): Promise<RegistrySnapshot>;
  close(): Promise<void>;
}
