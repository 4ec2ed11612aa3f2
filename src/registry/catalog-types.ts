/**
 * The catalog registry contract: owners, consumer entries and rules, resources and sanction
 * policies created through the admin API, persisted in the store so every sidecar sees them, plus
 * the audit log of those changes. Config-file definitions are not kept here (the YAML is their
 * source of truth). One implementation in memory, one on Redis; both pass one contract suite.
 *
 * Like the budget registry, every definition change bumps a version number: a sidecar polls
 * version() (cheap) and reads a snapshot() only when it moved. Audit appends change no version.
 */
import type { CatalogDefinitions } from '../catalog/catalog.js';
import type { AuditEntry, ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';
import type { DefinitionCollection } from './types.js';

/** Every kind as of one version (read together, so a poller never sees half a change). */
export interface CatalogSnapshot extends CatalogDefinitions {
  version: number;
}

export interface AuditQuery {
  /** At most this many entries. */
  limit: number;
  /** Only entries strictly older than this epoch ms. */
  before?: number;
}

/**
 * Bounded, newest first: the memory log keeps the last MEMORY_AUDIT_CAPACITY entries, the Redis
 * log the last REDIS_AUDIT_CAPACITY (older ones are dropped as new ones arrive).
 */
export interface AuditLog {
  append(entry: AuditEntry): Promise<void>;
  /** Newest first (in the order entries were appended). */
  list(query: AuditQuery): Promise<AuditEntry[]>;
}

export const MEMORY_AUDIT_CAPACITY = 10_000;
export const REDIS_AUDIT_CAPACITY = 100_000;

export interface CatalogRegistry {
  readonly owners: DefinitionCollection<Owner>;
  readonly consumers: DefinitionCollection<ConsumerEntry>;
  readonly consumerRules: DefinitionCollection<ConsumerRule>;
  readonly resources: DefinitionCollection<Resource>;
  readonly policies: DefinitionCollection<SanctionPolicy>;
  readonly audit: AuditLog;
  /** Increases with every definition change of any kind (0 when nothing was ever written). */
  version(): Promise<number>;
  snapshot(): Promise<CatalogSnapshot>;
  close(): Promise<void>;
}
