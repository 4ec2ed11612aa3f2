/** Builds the configured stores: embedded memory (one sidecar) or shared Redis. */
import type { Cluster, Redis } from 'ioredis';
import type { StoreConfig } from './config/types.js';
import { MemoryStore } from './inventory/memory.js';
import { RedisStore } from './inventory/redis.js';
import type { InventoryStore } from './inventory/types.js';
import { HOUR_MS } from './time.js';
import type { BudgetLedger } from './governance/ledger.js';
import { MemoryLedger } from './ledger/memory.js';
import { RedisLedger, type RedisLedgerOptions } from './ledger/redis.js';
import type { BudgetRegistry } from './registry/types.js';
import { MemoryBudgetRegistry } from './registry/budgets-memory.js';
import { RedisBudgetRegistry } from './registry/budgets-redis.js';
import type { CatalogRegistry } from './registry/catalog-types.js';
import { MemoryCatalogRegistry } from './registry/catalog-memory.js';
import { RedisCatalogRegistry } from './registry/catalog-redis.js';

/** With Redis, pass one `client` to share a connection between the inventory, ledger and registries. */
export function createStore(cfg: StoreConfig, client?: Redis | Cluster): InventoryStore {
  if (cfg.type === 'redis') return new RedisStore({ redis: cfg.redis, retentionHours: cfg.retention_hours, ...(client ? { client } : {}) });
  return new MemoryStore({ maxRecords: cfg.memory_max_records, retentionHours: cfg.retention_hours });
}

/** The budget ledger next to the inventory: in memory, or on the same Redis. */
export function createLedger(cfg: StoreConfig, client?: Redis | Cluster, hooks: Pick<RedisLedgerOptions, 'onPending' | 'onLost'> = {}): BudgetLedger {
  const wouldBlockRetentionMs = cfg.retention_hours * HOUR_MS;
  if (cfg.type === 'redis') return new RedisLedger({ redis: cfg.redis, wouldBlockRetentionMs, ...hooks, ...(client ? { client } : {}) });
  return new MemoryLedger({ wouldBlockRetentionMs });
}

/** Where budgets and templates created through the admin API are kept. */
export function createBudgetRegistry(cfg: StoreConfig, client?: Redis | Cluster): BudgetRegistry {
  return cfg.type === 'redis' ? new RedisBudgetRegistry({ redis: cfg.redis, ...(client ? { client } : {}) }) : new MemoryBudgetRegistry();
}

/** Where the catalog (owners, consumers, rules, resources, policies) and its audit log are kept. */
export function createCatalogRegistry(cfg: StoreConfig, client?: Redis | Cluster): CatalogRegistry {
  return cfg.type === 'redis' ? new RedisCatalogRegistry({ redis: cfg.redis, ...(client ? { client } : {}) }) : new MemoryCatalogRegistry();
}
