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
import { createConsumerResolver, type ResolveConsumer } from './traffic/consumer.js';
import { TokenCounter } from './metering/tokens.js';
import { PriceBook, resourcePriceLookup, type PriceRates } from './metering/prices.js';
import { Admitter } from './governance/admission.js';
import { BudgetGovernor } from './governance/governor.js';
import { defaultMaxOutputTokens } from './governance/output-defaults.js';
import type { Budget, BudgetTemplate } from './governance/types.js';
import type { CatalogDefinitions } from './catalog/catalog.js';
import type { CatalogView } from './catalog/types.js';
import { liveBudgets, liveCatalog } from './live/sets.js';
import { createBudgetRegistry, createCatalogRegistry, createLedger, createStore } from './stores.js';
import { LazyConnection } from './store/redis-client.js';
import { fingerprintSecretKey, sharedFingerprintSecret } from './store/fingerprint-secret.js';
import { Recorder } from './inventory/recorder.js';
import type { InventoryStore } from './inventory/types.js';
import { Metrics } from './telemetry/metrics.js';
import { AdminServer, splitHostPort } from './admin/http.js';
import { adminTokens } from './admin/auth.js';
import { isLoopbackAddress } from './net.js';
import { priceBookListPrices, showbackRoutes } from './admin/showback/api.js';
import { grpcServerEvents, ledgerEvents, recorderEvents, streamObserver } from './observers.js';
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
  // The config loader refuses this too; embedders may build a config without it.
  const { address: adminAddress, token: adminToken, tokens: namedTokens } = config.admin;
  if (adminAddress !== '' && !adminTokens(adminToken, namedTokens).some((t) => t.role === 'admin') && !isLoopbackAddress(splitHostPort(adminAddress).host)) {
    throw new Error(`admin.address (${adminAddress}) is not a loopback address: an admin-role token (admin.token or admin.tokens) is required`);
  }
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
  const ledgerReports = ledgerEvents(metrics, log);
  const ledger = createLedger(config.store, redis?.client, ledgerReports);
  const registry = createBudgetRegistry(config.store, redis?.client);
  const catalogRegistry = createCatalogRegistry(config.store, redis?.client);

  // What is in force: the config file's definitions merged with the admin API's, config winning.
  const budgets = liveBudgets({ budgets: config.budgets, templates: config.budget_templates }, registry);
  const catalog = liveCatalog(configCatalog(config), catalogRegistry);
  const refreshBudgets = (): Promise<void> => budgets.refresh();
  const refreshCatalog = (): Promise<void> => catalog.refresh();

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
    onStoreError: ledgerReports.onStoreError,
  });
  const governor = new BudgetGovernor({
    admitter,
    catalog: () => catalog.view,
    decided: (budget, decision) => metrics.budgetDecisions.inc({ budget, decision }),
    unsanctioned: (e) => metrics.recordUnsanctioned(e),
  });

  // API-key fingerprints must agree wherever the inventory is shared. Without a configured secret
  // (and only when API keys are fingerprinted at all): with Redis, the secret kept there (read in
  // start(), before any stream); with the memory store, a random one for this process, which lives
  // as long as its inventory.
  const generatedSecret = config.consumer.fingerprint_secret === '' && config.consumer.resolvers.some((r) => r.type === 'api_key');
  let configured: ResolveConsumer = createConsumerResolver(config.consumer);
  const custom = hooks.resolveConsumer;
  const deps: ExchangeDeps = {
    recognize: createRecognizer(config.discovery),
    resolveConsumer: custom ? (h, a) => custom(h, a) ?? configured(h, a) : (h, a) => configured(h, a),
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
  const admin = config.admin.address
    ? new AdminServer({
        address: config.admin.address,
        metrics,
        ready: () => serving,
        store,
        token: config.admin.token,
        tokens: config.admin.tokens,
        logger: log,
        budgets: { policies: () => budgets.view, registry, ledger },
        catalog: { registry: catalogRegistry, config: () => catalog.config, changed: refreshCatalog, view: () => catalog.view },
        extraRoutes: showbackRoutes({
          store,
          catalog: () => catalog.view,
          prices: priceBookListPrices(prices),
          budgets: (subject) => budgets.view.applicable(subject).map((b) => b.id),
          storeTimeoutMs: 5_000,
          now: Date.now,
          logger: log,
        }),
      })
    : null;
  const refreshRegistries = (): Promise<void> =>
    Promise.all([
      refreshBudgets().catch((err: unknown) => log.warn('cannot refresh API-defined budgets', errorFields(err))),
      refreshCatalog().catch((err: unknown) => log.warn('cannot refresh the API-defined catalog', errorFields(err))),
    ]).then(() => {});

  return {
    metrics,
    store,
    get activeStreams() {
      return grpcServer.activeStreams;
    },
    flush: () => recorder.flush(),
    reloadBudgets(fromConfig, templates) {
      budgets.reload({ budgets: fromConfig, templates });
      log.debug('budgets replaced', { budgets: fromConfig.length, templates: templates.length });
    },
    refreshBudgets,
    get catalog() {
      return catalog.view;
    },
    reloadCatalog(definitions) {
      catalog.reload(definitions);
      log.debug('catalog replaced', {
        owners: definitions.owners.length,
        consumers: definitions.consumers.length,
        consumer_rules: definitions.consumerRules.length,
        resources: definitions.resources.length,
        policies: definitions.policies.length,
      });
    },
    refreshCatalog,
    async start() {
      if (generatedSecret && redis !== null) {
        const secret = await sharedFingerprintSecret(redis, config.store.redis);
        configured = createConsumerResolver({ ...config.consumer, fingerprint_secret: secret });
        log.info('API keys are fingerprinted with the secret shared in Redis', { key: fingerprintSecretKey(config.store.redis.key_prefix) });
      } else if (generatedSecret) {
        log.warn('no consumer.fingerprint_secret configured: API keys are fingerprinted with a random secret of this process, so their consumer ids change when it restarts');
      }
      const grpcAddress = await grpcServer.start();
      let adminAddress: string | null = null;
      try {
        adminAddress = admin ? await admin.start() : null;
      } catch (err) {
        await grpcServer.shutdown(0);
        throw err;
      }
      recorder.start();
      await refreshRegistries();
      budgets.startPolling(config.governance.registry_poll_ms, (err) => log.warn('cannot refresh API-defined budgets', errorFields(err)));
      catalog.startPolling(config.governance.registry_poll_ms, (err) => log.warn('cannot refresh the API-defined catalog', errorFields(err)));
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
      await store.close();
      await ledger.close();
      await registry.close();
      await catalogRegistry.close();
      await redis?.close();
      await tokens.close();
      log.info('tokenwarden stopped');
    },
  };
}
