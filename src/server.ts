/**
 * Composition: builds the ext_proc gRPC server, the metering pipeline and the admin server from a
 * validated configuration, plus the embedding hooks. This is what `tokenwarden serve` runs.
 */
import type { TokenwardenConfig } from './config/types.js';
import { ExtProcServer } from './extproc/server.js';
import type { StreamObserver } from './extproc/stream.js';
import type { RequestKind } from './extproc/protocol.js';
import { Exchange, type ExchangeDeps } from './traffic/exchange.js';
import type { ConsumerIdentity, ExchangeRecord } from './domain.js';
import { createRecognizer } from './traffic/recognize.js';
import { createConsumerResolver, type ResolveConsumer } from './traffic/consumer.js';
import { TokenCounter } from './metering/tokens.js';
import { PriceBook, type PriceRates } from './metering/prices.js';
import { Metrics } from './admin/metrics.js';
import type { HistogramCell } from './admin/series.js';
import { AdminServer, splitHostPort } from './admin/http.js';
import { adminTokens, isLoopbackAddress } from './admin/auth.js';
import { priceBookListPrices, showbackRoutes } from './admin/showback-api.js';
import { createBudgetRegistry, createCatalogRegistry, createLedger, createStore } from './store/create.js';
import { LazyConnection } from './store/redis-client.js';
import { fingerprintSecretKey, sharedFingerprintSecret } from './store/fingerprint-secret.js';
import { effectiveDefinitions } from './store/registry-merge.js';
import { PolicySet } from './governance/policy-set.js';
import { Admitter } from './governance/admission.js';
import type { Budget, BudgetTemplate } from './governance/types.js';
import { Catalog, EMPTY_DEFINITIONS, effectiveCatalog, type CatalogDefinitions } from './catalog/catalog.js';
import type { CatalogView, ResourcePrice } from './catalog/types.js';
import { configCatalog } from './config/watch.js';
import { BudgetGovernor } from './governance/governor.js';
import { compileGlob } from './glob.js';
import { Recorder } from './store/recorder.js';
import type { InventoryStore } from './store/types.js';
import { MemoryStore } from './store/memory.js';
import { createLogger, errorFields, type Logger } from './log.js';
import { resolveTelemetry } from './telemetry/settings.js';
import { NO_TELEMETRY, startTelemetry, type Telemetry } from './telemetry/telemetry.js';
import { ThrottledWarning } from './telemetry/failures.js';

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

/** A resource's price override as PriceBook rates; absent classes stay undefined and keep the bundled price. */
function resourceRates(price: ResourcePrice | undefined): PriceRates | null {
  if (price === undefined) return null;
  return { input: price.input_mtok, cached_input: price.cached_input_mtok, cache_write: price.cache_write_mtok, output: price.output_mtok } as PriceRates;
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
  // One Redis connection for the inventory, the budget ledger and the registry.
  const redis = config.store.type === 'redis' ? new LazyConnection(config.store.redis) : null;
  const store = hooks.store ?? createStore(config.store, redis?.client);
  let evictionsCounted = 0;
  const recorder = new Recorder(
    store,
    {
      flushIntervalMs: config.store.flush_interval_ms,
      flushMaxDeltas: config.store.flush_max_deltas,
      retryBufferMaxDeltas: config.store.retry_buffer_max_deltas,
    },
    {
      flushed: ({ seconds }) => {
        metrics.storeFlushSeconds.observe(seconds);
        metrics.storePending.set(recorder.pendingDeltas);
        // Only a flush adds records, so only a flush evicts.
        if (store instanceof MemoryStore) {
          metrics.storeEvicted.inc(store.evictions - evictionsCounted);
          evictionsCounted = store.evictions;
        }
      },
      flushFailed: (err, pending) => {
        metrics.storeFlushErrors.inc();
        metrics.storePending.set(pending);
        log.warn('inventory flush failed; the batch is kept and retried', { ...errorFields(err), pending_deltas: pending });
      },
      dropped: (deltas, requests) => {
        metrics.storeDropped.inc(requests);
        log.error('inventory deltas dropped (retry buffer full during a store outage, or not written by the shutdown deadline)', { deltas, requests });
      },
    },
  );
  const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
  // Prices: config overrides, then the embedder's lookup, then catalog resources' price overrides
  // (read from the catalog in force at each exchange), then the bundled catalog.
  const customLookup = hooks.priceLookup;
  const prices = new PriceBook(config.metering.price_overrides, {
    lookup: (provider, model) => customLookup?.(provider, model) ?? resourceRates(catalog.resource(provider, model)?.price),
  });

  // Budgets: config (hot-reloadable) merged with the API-defined ones in the registry; config wins.
  const settlementLost = new ThrottledWarning(log, 'budget settlement given up: Redis did not take it within a minute of retries; its usage is not counted', 10_000);
  const ledger = createLedger(config.store, redis?.client, {
    onPending: (n) => metrics.budgetSettlementsPending.set(n),
    onLost: () => {
      metrics.budgetSettlementsLost.inc();
      settlementLost.warn({});
    },
  });
  const registry = createBudgetRegistry(config.store, redis?.client);
  let fromConfig: { budgets: Budget[]; templates: BudgetTemplate[] } = { budgets: config.budgets, templates: config.budget_templates };
  let api: { budgets: Budget[]; templates: BudgetTemplate[] } = { budgets: [], templates: [] };
  let registryVersion = -1;
  const buildPolicies = (): PolicySet => {
    const effective = effectiveDefinitions(fromConfig, api);
    return new PolicySet(effective.budgets, effective.templates);
  };
  let policies = buildPolicies();
  const refreshBudgets = async (): Promise<void> => {
    const version = await registry.version();
    if (version === registryVersion) return;
    const snapshot = await registry.snapshot();
    api = { budgets: snapshot.budgets, templates: snapshot.templates };
    policies = buildPolicies();
    registryVersion = snapshot.version;
  };
  let registryTimer: NodeJS.Timeout | undefined;
  const outputDefaults = config.governance.max_output_tokens_by_model.map((d) => ({
    provider: compileGlob(d.provider ?? '*'),
    model: compileGlob(d.model),
    tokens: d.tokens,
  }));
  const admitter = new Admitter({
    policies: () => policies,
    ledger,
    price: (provider, model, usage) => prices.cost(provider, [model], usage)?.microUsd ?? null,
    defaultMaxOutputTokens: (provider, model) =>
      outputDefaults.find((d) => d.provider.matches(provider) && d.model.matches(model))?.tokens ?? config.governance.default_max_output_tokens,
    leaseMs: config.governance.lease_ms,
    ledgerTimeoutMs: config.governance.ledger_timeout_ms,
    onStoreError: (e) => {
      const decision = e.admitted === undefined ? 'none' : e.admitted ? 'admitted' : 'refused';
      metrics.budgetStoreErrors.inc({ op: e.op, decision });
      log.warn('budget ledger call failed', { op: e.op, decision, ...errorFields(e.error) });
    },
  });
  // The catalog in force (owners, consumers, resources, sanction policies): config (hot-reloadable)
  // merged with the API-defined ones in the registry, config winning; rebuilt when either changes.
  const catalogRegistry = createCatalogRegistry(config.store, redis?.client);
  let catalogConfig: CatalogDefinitions = configCatalog(config);
  let catalogApi: CatalogDefinitions = EMPTY_DEFINITIONS;
  let catalogRegistryVersion = -1;
  // The view's version: bumped on every rebuild, whatever caused it.
  let catalogBuilds = 0;
  const buildCatalog = (): Catalog => new Catalog(effectiveCatalog(catalogConfig, catalogApi).definitions, ++catalogBuilds);
  let catalog: Catalog = buildCatalog();
  const refreshCatalog = async (): Promise<void> => {
    const version = await catalogRegistry.version();
    if (version === catalogRegistryVersion) return;
    const { version: snapshotVersion, ...definitions } = await catalogRegistry.snapshot();
    catalogApi = definitions;
    catalog = buildCatalog();
    catalogRegistryVersion = snapshotVersion;
  };
  const refreshRegistries = (): Promise<void> =>
    Promise.all([
      refreshBudgets().catch((err: unknown) => log.warn('cannot refresh API-defined budgets', errorFields(err))),
      refreshCatalog().catch((err: unknown) => log.warn('cannot refresh the API-defined catalog', errorFields(err))),
    ]).then(() => {});
  const governor = new BudgetGovernor({
    admitter,
    catalog: () => catalog,
    decided: (budget, decision) => metrics.budgetDecisions.inc({ budget, decision }),
    unsanctioned: (e) => metrics.recordUnsanctioned(e),
  });
  // API-key fingerprints must agree wherever the inventory is shared. Without a configured secret
  // (and only when API keys are fingerprinted at all):
  // with Redis, the secret kept there (read in start(), before any stream); with the memory store, a
  // random one for this process, which lives as long as its inventory.
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

  // A phase's series appears with its first message, as prom-client's would.
  const phase = (k: RequestKind): { observe(v: number): void } => {
    let cell: HistogramCell | undefined;
    return { observe: (v) => (cell ??= metrics.phaseSeconds.cell({ phase: k })).observe(v) };
  };
  const phaseChildren: Record<RequestKind, { observe(v: number): void }> = {
    request_headers: phase('request_headers'),
    request_body: phase('request_body'),
    request_trailers: phase('request_trailers'),
    response_headers: phase('response_headers'),
    response_body: phase('response_body'),
    response_trailers: phase('response_trailers'),
  };
  const observer: StreamObserver = {
    // One labelled child per message kind, looked up once: observe() runs for every message.
    messageHandled: (kind, seconds) => phaseChildren[kind].observe(seconds),
    protocolError: (reason) => metrics.protocolErrors.inc({ reason }),
    nonLlmRequest: () => metrics.nonLlm.inc(),
    record: (record) => {
      recorder.record(record);
      metrics.recordExchange(record);
      telemetry.exchange(record);
      if (!hooks.onExchange) return;
      try {
        hooks.onExchange(record);
      } catch (err) {
        log.error('onExchange hook threw', errorFields(err));
      }
    },
    streamOpened: () => {
      metrics.streamsActive.inc();
      metrics.streamsTotal.inc();
    },
    streamClosed: () => metrics.streamsActive.dec(),
    streamEndedByServer: () => metrics.streamsEndedByServer.inc(),
    transitionRefused: (from, to) => metrics.streamTransitionsRefused.inc({ from, to }),
    internalError: (err) => {
      metrics.internalErrors.inc();
      log.error('error while processing an ext_proc message; answered unchanged', errorFields(err));
    },
  };

  const grpcServer = new ExtProcServer({
    address: config.grpc.address,
    tls: config.grpc.tls,
    maxReceiveMessageBytes: config.grpc.max_receive_message_bytes,
    maxConcurrentStreams: config.grpc.max_concurrent_streams,
    streamRefused: () => metrics.streamsRefused.inc(),
    rotateConnections: config.grpc.rotate_connections,
    sessions: {
      opened: () => {
        metrics.http2SessionsOpened.inc();
        metrics.http2SessionsActive.inc();
      },
      closed: (reason, streamsInFlight) => {
        metrics.http2SessionsActive.dec();
        metrics.http2SessionsClosed.inc({ reason });
        if (streamsInFlight > 0) log.warn('HTTP/2 session to Envoy closed with streams in flight', { reason, streams_in_flight: streamsInFlight });
      },
      streamResetByPeer: () => metrics.http2StreamsResetByPeer.inc(),
    },
    sessionsUnavailable: () => log.warn('this @grpc/grpc-js version hides its HTTP/2 servers: no session metrics and no connection rotation'),
    stream: {
      newExchange: (observability) => new Exchange(deps, { observability }),
      observabilityIdleMs: config.grpc.observability_idle_timeout_ms,
      metadata: config.metadata,
      skipNonLlm: config.grpc.skip_non_llm,
      observer,
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
        budgets: { policies: () => policies, registry, ledger },
        catalog: { registry: catalogRegistry, config: () => catalogConfig, changed: refreshCatalog, view: () => catalog },
        extraRoutes: showbackRoutes({
          store,
          catalog: () => catalog,
          prices: priceBookListPrices(prices),
          budgets: (subject) => policies.applicable(subject).map((b) => b.id),
          storeTimeoutMs: 5_000,
          now: Date.now,
          logger: log,
        }),
      })
    : null;

  return {
    metrics,
    store,
    get activeStreams() {
      return grpcServer.activeStreams;
    },
    flush: () => recorder.flush(),
    reloadBudgets(budgets, templates) {
      const next = { budgets, templates };
      const effective = effectiveDefinitions(next, api);
      policies = new PolicySet(effective.budgets, effective.templates);
      fromConfig = next;
      log.debug('budgets replaced', { budgets: budgets.length, templates: templates.length });
    },
    refreshBudgets,
    get catalog() {
      return catalog;
    },
    reloadCatalog(definitions) {
      catalogConfig = definitions;
      catalog = buildCatalog();
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
      registryTimer = setInterval(() => void refreshRegistries(), config.governance.registry_poll_ms);
      registryTimer.unref();
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
      clearInterval(registryTimer);
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
