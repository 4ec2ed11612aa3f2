/**
 * Composition: builds the ext_proc gRPC server, the metering pipeline and the admin server from a
 * validated configuration, plus the embedding hooks. This is what `tokenwarden serve` runs.
 */
import type { TokenwardenConfig } from './config/types.js';
import { configCatalog } from './config/watch.js';
import { ExtProcServer } from './extproc/server.js';
import { Exchange, type ExchangeDeps } from './traffic/exchange.js';
import type { ConsumerIdentity, ExchangeRecord } from './domain.js';
import { createRecognizer } from './traffic/recognize.js';
import { TokenCounter } from './metering/tokens.js';
import { PriceBook, resourcePriceLookup, type PriceRates } from './metering/prices.js';
import { Admitter } from './governance/admission.js';
import { BudgetGovernor } from './governance/governor.js';
import { defaultMaxOutputTokens } from './governance/output-defaults.js';
import type { Budget, BudgetTemplate } from './governance/types.js';
import type { Catalog, CatalogDefinitions } from './catalog/catalog.js';
import type { CatalogView } from './catalog/types.js';
import { definitionCounts, type LiveSet } from './live/live-set.js';
import { liveBudgets, liveCatalog, type BudgetDefinitions } from './live/sets.js';
import { ConsumerIdentities } from './identity.js';
import type { PolicySet } from './governance/policy-set.js';
import type { BudgetLedger } from './governance/ledger.js';
import type { BudgetRegistry } from './registry/types.js';
import type { CatalogRegistry } from './registry/catalog-types.js';
import { createBudgetRegistry, createCatalogRegistry, createLedger, createStore } from './stores.js';
import { LazyConnection } from './store/redis-client.js';
import { Recorder } from './inventory/recorder.js';
import type { InventoryStore } from './inventory/types.js';
import { Metrics } from './telemetry/metrics.js';
import { AdminServer, checkAdminExposure } from './admin/http.js';
import { priceBookListPrices, showbackRoutes } from './admin/showback/api.js';
import { grpcServerEvents, ledgerCallFailures, ledgerEvents, recorderEvents, streamObserver } from './observers.js';
import { createLogger, errorFields, type Logger } from './log.js';
import { resolveTelemetry } from './telemetry/settings.js';
import { NO_TELEMETRY, startTelemetry, type Telemetry } from './telemetry/telemetry.js';

export interface ServerHooks {
  /**
   * Custom consumer identity, tried before the configured resolvers. Return null/undefined to fall
   * back to them. Receives lower-case request headers and Envoy attributes (e.g. source.address).
   */
  resolveConsumer?(headers: ReadonlyMap<string, string>, attributes: ReadonlyMap<string, string>): ConsumerIdentity | null | undefined;
  /** Custom price (USD per million tokens), tried after config overrides and before the catalog. */
  priceLookup?(provider: string, model: string): PriceRates | null;
  /** Called once per LLM exchange when it completes (or ends early). Must not throw or block. */
  onExchange?(record: ExchangeRecord): void;
  /** Use this inventory store instead of the configured one (it is closed on shutdown). */
  store?: InventoryStore;
  /** Replace the logger (default: JSON lines on stderr at the configured level). */
  logger?: Logger;
}

export interface StartedAddresses {
  grpcAddress: string;
  adminAddress: string | null;
}

export interface TokenwardenServer {
  start(): Promise<StartedAddresses>;
  /** Graceful: stop accepting, let in-flight exchanges finish for up to graceMs, then close. */
  shutdown(graceMs?: number): Promise<void>;
  readonly metrics: Metrics;
  /** Open ext_proc streams (0 when idle: no per-stream state is kept after a stream ends). */
  readonly activeStreams: number;
  /** The inventory store (queried by the admin API). */
  readonly store: InventoryStore;
  /** Writes buffered inventory deltas to the store now (shutdown does it too). */
  flush(): Promise<void>;
  /**
   * Replaces the budgets and templates from configuration (hot reload). Counters are keyed by budget
   * id, so they carry over. Throws (and keeps the current policy) on duplicate ids.
   */
  reloadBudgets(budgets: Budget[], templates: BudgetTemplate[]): void;
  /** Re-reads budgets created through the admin API now (it also happens every registry_poll_ms). */
  refreshBudgets(): Promise<void>;
  /** The catalog in force: config merged with the admin API's definitions (config wins on the same id). */
  readonly catalog: CatalogView;
  /** Replaces the catalog definitions from configuration (hot reload). */
  reloadCatalog(definitions: CatalogDefinitions): void;
  /** Re-reads the catalog defined through the admin API now (it also happens every registry_poll_ms). */
  refreshCatalog(): Promise<void>;
}

export function createServer(config: TokenwardenConfig, hooks: ServerHooks = {}): TokenwardenServer {
  checkAdminExposure(config.admin);
  const log = hooks.logger ?? createLogger(config.logging.level);
  const metrics = new Metrics({ consumerLabels: config.metrics.consumer_labels, maxLabelValues: config.metrics.max_label_values });
  // OTLP export: the file's telemetry section with the OTEL_* variables applied (checked now, started in start()).
  const telemetrySettings = resolveTelemetry(config.telemetry);
  let telemetry: Telemetry = NO_TELEMETRY;

  // The shared store: one Redis connection for the inventory, the budget ledger and the registries.
  const redis = config.store.type === 'redis' ? new LazyConnection(config.store.redis) : null;
  const store = hooks.store ?? createStore(config.store, redis?.client);
  const recorder: Recorder = new Recorder(
    store,
    { flushIntervalMs: config.store.flush_interval_ms, flushMaxDeltas: config.store.flush_max_deltas, retryBufferMaxDeltas: config.store.retry_buffer_max_deltas },
    recorderEvents(metrics, log, store, () => recorder.pendingDeltas),
  );
  const ledger = createLedger(config.store, redis?.client, ledgerEvents(metrics, log));
  const registry = createBudgetRegistry(config.store, redis?.client);
  const catalogRegistry = createCatalogRegistry(config.store, redis?.client);

  // What is in force: the config file's definitions merged with the admin API's, config winning.
  const budgets = liveBudgets({ budgets: config.budgets, templates: config.budget_templates }, registry);
  const catalog = liveCatalog(configCatalog(config), catalogRegistry);

  // Metering: prices (config overrides, the embedder's lookup, the catalog's resources, the bundled data) and tokens.
  const prices = new PriceBook(config.metering.price_overrides, { lookup: resourcePriceLookup(() => catalog.view, hooks.priceLookup) });
  const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });

  // Governance: sanction policies, then budget admission on the ledger.
  const admitter = new Admitter({
    policies: () => budgets.view,
    ledger,
    price: (provider, model, usage) => prices.cost(provider, [model], usage)?.microUsd ?? null,
    defaultMaxOutputTokens: defaultMaxOutputTokens(config.governance),
    leaseMs: config.governance.lease_ms,
    ledgerTimeoutMs: config.governance.ledger_timeout_ms,
    onStoreError: ledgerCallFailures(metrics, log),
  });
  const governor = new BudgetGovernor({
    admitter,
    catalog: () => catalog.view,
    decided: (budget, decision) => metrics.budgetDecisions.inc({ budget, decision }),
    unsanctioned: (e) => metrics.recordUnsanctioned(e),
  });

  const consumers = new ConsumerIdentities(config.consumer, hooks.resolveConsumer);
  const deps: ExchangeDeps = {
    recognize: createRecognizer(config.discovery),
    resolveConsumer: consumers.resolve,
    tokens,
    prices,
    metering: config.metering,
    limits: config.limits,
  };

  const grpcServer = new ExtProcServer({
    address: config.grpc.address,
    tls: config.grpc.tls,
    maxReceiveMessageBytes: config.grpc.max_receive_message_bytes,
    maxConcurrentStreams: config.grpc.max_concurrent_streams,
    rotateConnections: config.grpc.rotate_connections,
    ...grpcServerEvents(metrics, log),
    stream: {
      newExchange: (observability) => new Exchange(deps, { observability }),
      observabilityIdleMs: config.grpc.observability_idle_timeout_ms,
      metadata: config.metadata,
      skipNonLlm: config.grpc.skip_non_llm,
      observer: streamObserver({ metrics, recorder, telemetry: () => telemetry, onExchange: hooks.onExchange, log }),
      governor,
    },
  });

  let serving = false;
  const admin = adminServer(config, { metrics, ready: () => serving, store, log, budgets, registry, ledger, catalog, catalogRegistry, prices });

  return {
    metrics,
    store,
    get activeStreams() {
      return grpcServer.activeStreams;
    },
    flush: () => recorder.flush(),
    reloadBudgets(fromConfig, templates) {
      budgets.reload({ budgets: fromConfig, templates });
      log.debug('budgets replaced', definitionCounts({ budgets: fromConfig, templates }));
    },
    refreshBudgets: () => budgets.refresh(),
    get catalog() {
      return catalog.view;
    },
    reloadCatalog(definitions) {
      catalog.reload(definitions);
      log.debug('catalog replaced', definitionCounts(definitions));
    },
    refreshCatalog: () => catalog.refresh(),
    async start() {
      await consumers.prepare(redis && { connection: redis, cfg: config.store.redis }, log);
      const grpcAddress = await grpcServer.start();
      let adminAddress: string | null = null;
      try {
        adminAddress = admin ? await admin.start() : null;
      } catch (err) {
        await grpcServer.shutdown(0);
        throw err;
      }
      recorder.start();
      const poll = config.governance.registry_poll_ms;
      await Promise.all([
        budgets.start(poll, (err) => log.warn('cannot refresh API-defined budgets', errorFields(err))),
        catalog.start(poll, (err) => log.warn('cannot refresh the API-defined catalog', errorFields(err))),
      ]);
      telemetry = startTelemetry(telemetrySettings, { metrics, log });
      serving = true;
      // Load the tokenizer in the background so the first estimate does not pay for it.
      void tokens.warmUp();
      log.info('tokenwarden started', { grpc: grpcAddress, admin: adminAddress });
      return { grpcAddress, adminAddress };
    },
    async shutdown(graceMs = config.grpc.shutdown_grace_ms) {
      serving = false;
      const deadline = Date.now() + graceMs;
      await grpcServer.shutdown(graceMs);
      // Streams are done: every record is in the recorder. Write what is left, retrying within what
      // remains of the grace period (at least a second, so a store blip does not lose the tail).
      await recorder.stop(Math.max(1_000, deadline - Date.now()));
      // Every exchange is recorded and every span ended: the last export carries the final numbers.
      await telemetry.shutdown();
      await admin?.close();
      budgets.stopPolling();
      catalog.stopPolling();
      for (const part of [store, ledger, registry, catalogRegistry, redis]) await part?.close();
      await tokens.close();
      log.info('tokenwarden stopped');
    },
  };
}

/** The admin HTTP server over the server's parts, or null when admin.address is empty. */
function adminServer(
  config: TokenwardenConfig,
  p: {
    metrics: Metrics;
    ready: () => boolean;
    store: InventoryStore;
    log: Logger;
    budgets: LiveSet<BudgetDefinitions, PolicySet>;
    registry: BudgetRegistry;
    ledger: BudgetLedger;
    catalog: LiveSet<CatalogDefinitions, Catalog>;
    catalogRegistry: CatalogRegistry;
    prices: PriceBook;
  },
): AdminServer | null {
  if (!config.admin.address) return null;
  return new AdminServer({
    address: config.admin.address,
    metrics: p.metrics,
    ready: p.ready,
    store: p.store,
    token: config.admin.token,
    tokens: config.admin.tokens,
    logger: p.log,
    budgets: { policies: () => p.budgets.view, registry: p.registry, ledger: p.ledger },
    catalog: { registry: p.catalogRegistry, config: () => p.catalog.config, changed: () => p.catalog.refresh(), view: () => p.catalog.view },
    extraRoutes: showbackRoutes({
      store: p.store,
      catalog: () => p.catalog.view,
      prices: priceBookListPrices(p.prices),
      budgets: (subject) => p.budgets.view.applicable(subject).map((b) => b.id),
      storeTimeoutMs: 5_000,
      now: Date.now,
      logger: p.log,
    }),
  });
}
