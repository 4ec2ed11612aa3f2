/**
 * tokenwarden as a library: embed the ext_proc server in a Node program.
 *
 * ```ts
 * import { createServer, defaultConfig } from 'tokenwarden';
 * const server = createServer(defaultConfig(), { onExchange: (r) => console.log(r.model, r.usage) });
 * await server.start();
 * ```
 */
export { createServer } from './server.js';
export type { ServerHooks, TokenwardenServer, StartedAddresses } from './server.js';
export { defaultConfig } from './config/types.js';
export type * from './config/types.js';
export { loadConfigFile, parseConfig, applyOverrides } from './config/load.js';
export { ConfigError } from './config/errors.js';
export type { ConfigIssue } from './config/errors.js';
export type * from './domain.js';
export { EMPTY_USAGE } from './domain.js';
export type { PriceRates } from './metering/prices.js';
export type { Logger } from './log.js';
export type * from './inventory/types.js';
export { MemoryStore } from './inventory/memory.js';
export { RedisStore } from './inventory/redis.js';
export { runDemo } from './demo/run.js';
export type * from './catalog/types.js';
export { GLOBAL_POLICY_ID } from './catalog/types.js';
export { Catalog, effectiveCatalog, governanceLabels, resourceId, EMPTY_DEFINITIONS } from './catalog/catalog.js';
export type { CatalogDefinitions, Shadowed } from './catalog/catalog.js';
export type { CatalogRegistry, CatalogSnapshot, AuditLog, AuditQuery } from './registry/catalog-types.js';
export { MemoryCatalogRegistry } from './registry/catalog-memory.js';
export { RedisCatalogRegistry } from './registry/catalog-redis.js';
