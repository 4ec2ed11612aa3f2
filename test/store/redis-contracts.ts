/**
 * Every shared store contract suite (inventory store, budget ledger, budget registry, catalog
 * registry with its audit log) against one Redis deployment, each store building its own client
 * from the RedisConfig the way the sidecar does. Used by the Cluster and Sentinel test files; the
 * standalone files instantiate the suites one by one next to their Redis-specific tests.
 */
import type { RedisConfig } from '../../src/config/types.js';
import { RedisCatalogRegistry } from '../../src/registry/catalog-redis.js';
import { RedisLedger } from '../../src/ledger/redis.js';
import { RedisStore } from '../../src/inventory/redis.js';
import { RedisBudgetRegistry } from '../../src/registry/budgets-redis.js';
import { catalogContract } from './catalog-contract.js';
import { storeContract } from './contract.js';
import { ledgerContract } from './ledger-contract.js';
import { registryContract } from './registry-contract.js';

/** `config()` is called once per test, after the deployment is up: give each call a fresh key prefix. */
export function redisContracts(name: string, config: () => RedisConfig): void {
  storeContract(name, async ({ now, retentionHours }) => {
    const store = new RedisStore({ redis: config(), retentionHours, now });
    return { store, cleanup: () => store.close() };
  });
  ledgerContract(name, async ({ now }) => {
    const ledger = new RedisLedger({ redis: config(), now });
    return { ledger, cleanup: () => ledger.close() };
  });
  registryContract(name, async () => {
    const registry = new RedisBudgetRegistry({ redis: config() });
    return { registry, cleanup: () => registry.close() };
  });
  catalogContract(name, async () => {
    const registry = new RedisCatalogRegistry({ redis: config() });
    return { registry, cleanup: () => registry.close() };
  });
}
