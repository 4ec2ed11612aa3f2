/** Builds the configured inventory store: embedded memory (one sidecar) or shared Redis. */
import type { StoreConfig } from '../config/types.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { InventoryStore } from './types.js';

export function createStore(cfg: StoreConfig): InventoryStore {
  if (cfg.type === 'redis') return new RedisStore({ redis: cfg.redis, retentionHours: cfg.retention_hours });
  return new MemoryStore({ maxRecords: cfg.memory_max_records, retentionHours: cfg.retention_hours });
}
