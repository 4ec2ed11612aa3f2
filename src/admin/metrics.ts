/**
 * Prometheus metrics. Token and request metrics follow the OpenTelemetry GenAI semantic conventions
 * (gen_ai_client_token_usage with gen_ai_* labels); tokenwarden's own operational metrics are
 * prefixed `tokenwarden_`. The consumer is a label only when `metrics.consumer_labels` is on: one
 * series per consumer can be a lot of series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ExchangeRecord } from '../domain.js';

const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];
const PHASE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

const CONSUMER_LABEL = 'tokenwarden_consumer';
/** The label value that stands for every value past a label's cap. */
export const OTHER_LABEL_VALUE = '(other)';
/** `metrics.max_label_values` by default. */
export const DEFAULT_MAX_LABEL_VALUES = 1_000;

/**
 * The values one label may take. Model names and consumer ids come from traffic: without a cap,
 * a client sending a new model name per request would add series to /metrics without bound.
 * The first `max` distinct values keep their name; later new ones become OTHER_LABEL_VALUE.
 */
class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(
    private readonly max: number,
    private readonly overflow: () => void,
  ) {}

  value(v: string): string {
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) {
      this.overflow();
      return OTHER_LABEL_VALUE;
    }
    this.seen.add(v);
    return v;
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly consumerLabels: boolean;

  readonly tokenUsage: Histogram;
  readonly costUsd: Counter;
  readonly exchanges: Counter;
  readonly exchangeErrors = new Counter({
    name: 'tokenwarden_exchange_errors_total',
    help: 'Exchanges with bad input by error code (invalid_json, invalid_utf8, empty_body, stream_truncated, ...).',
    labelNames: ['error', 'gen_ai_provider_name'],
    registers: [this.registry],
  });
  readonly unpriced = new Counter({
    name: 'tokenwarden_unpriced_exchanges_total',
    help: 'Exchanges with usage but no known price (cost left absent, never 0).',
    labelNames: ['gen_ai_provider_name', 'gen_ai_request_model'],
    registers: [this.registry],
  });
  readonly usageInjected = new Counter({
    name: 'tokenwarden_stream_usage_injected_total',
    help: 'Streaming requests that got stream_options.include_usage added by tokenwarden.',
    registers: [this.registry],
  });
  readonly nonLlm = new Counter({
    name: 'tokenwarden_non_llm_requests_total',
    help: 'Requests that were not recognised as LLM traffic.',
    registers: [this.registry],
  });
  readonly streamsActive = new Gauge({
    name: 'tokenwarden_extproc_streams_active',
    help: 'Open ext_proc streams.',
    registers: [this.registry],
  });
  readonly streamsTotal = new Counter({
    name: 'tokenwarden_extproc_streams_total',
    help: 'ext_proc streams accepted.',
    registers: [this.registry],
  });
  readonly streamsRefused = new Counter({
    name: 'tokenwarden_extproc_streams_refused_total',
    help: 'ext_proc streams ended at once with status OK (Envoy continues the request unprocessed) because grpc.max_concurrent_streams were open.',
    registers: [this.registry],
  });
  readonly streamsEndedByServer = new Counter({
    name: 'tokenwarden_extproc_streams_ended_by_server_total',
    help: 'ext_proc streams the server ended with status OK right after the last answer Envoy could need.',
    registers: [this.registry],
  });
  readonly http2SessionsOpened = new Counter({
    name: 'tokenwarden_http2_sessions_opened_total',
    help: 'HTTP/2 connections accepted on the gRPC port.',
    registers: [this.registry],
  });
  readonly http2SessionsActive = new Gauge({
    name: 'tokenwarden_http2_sessions_active',
    help: 'Open HTTP/2 connections on the gRPC port (a rotated one stays until its streams end).',
    registers: [this.registry],
  });
  readonly http2SessionsClosed = new Counter({
    name: 'tokenwarden_http2_sessions_closed_total',
    help: 'HTTP/2 connections closed, by reason: goaway_sent_rotation, goaway_sent_shutdown, goaway_received, error, connection_lost (streams in flight), connection_closed.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly http2StreamsResetByPeer = new Counter({
    name: 'tokenwarden_http2_streams_reset_by_peer_total',
    help: 'gRPC streams the peer reset, or lost with their connection, before the server had ended them.',
    registers: [this.registry],
  });
  readonly phaseSeconds = new Histogram({
    name: 'tokenwarden_extproc_phase_duration_seconds',
    help: 'Time from receiving an ext_proc message to writing its answer, by message kind.',
    labelNames: ['phase'],
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });
  readonly protocolErrors = new Counter({
    name: 'tokenwarden_extproc_protocol_errors_total',
    help: 'Malformed or unexpected ext_proc messages.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly internalErrors = new Counter({
    name: 'tokenwarden_internal_errors_total',
    help: 'Unexpected exceptions while processing a message (the message was answered unchanged).',
    registers: [this.registry],
  });

  readonly storeFlushSeconds = new Histogram({
    name: 'tokenwarden_store_flush_duration_seconds',
    help: 'Duration of successful inventory flushes to the store.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly storeFlushErrors = new Counter({
    name: 'tokenwarden_store_flush_errors_total',
    help: 'Inventory flushes that failed (the batch is kept and retried).',
    registers: [this.registry],
  });
  readonly storeDropped = new Counter({
    name: 'tokenwarden_store_dropped_requests_total',
    help: 'Exchanges dropped from the inventory because the retry buffer overflowed during a store outage.',
    registers: [this.registry],
  });
  readonly storeEvicted = new Counter({
    name: 'tokenwarden_store_evicted_records_total',
    help: 'Inventory records evicted from the memory store (least recently updated first) because store.memory_max_records were kept.',
    registers: [this.registry],
  });
  readonly budgetDecisions = new Counter({
    name: 'tokenwarden_budget_decisions_total',
    help: 'Budget decisions per budget: admitted, blocked (enforce) or would_block (monitor).',
    labelNames: ['budget', 'decision'],
    registers: [this.registry],
  });
  readonly unsanctionedRequests = new Counter({
    name: 'tokenwarden_unsanctioned_requests_total',
    help: 'Requests for models not sanctioned for their consumer, by the policy that applied (global or an owner id) and its decision: flagged (monitor, or observability mode) or blocked (enforce, answered 403).',
    labelNames: ['gen_ai_provider_name', 'gen_ai_request_model', 'policy', 'decision'],
    registers: [this.registry],
  });
  readonly budgetStoreErrors = new Counter({
    name: 'tokenwarden_budget_store_errors_total',
    help: 'Ledger calls that failed or missed their deadline, by operation and what on_store_error decided.',
    labelNames: ['op', 'decision'],
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'tokenwarden_config_reloads_total',
    help: 'Reloads of the configuration file by result: applied, unchanged, or refused (invalid; the policy in force was kept).',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly configLastReloadSuccessful = new Gauge({
    name: 'tokenwarden_config_last_reload_successful',
    help: '1 unless the last reload of the configuration file was refused.',
    registers: [this.registry],
  });
  readonly storePending = new Gauge({
    name: 'tokenwarden_store_pending_deltas',
    help: 'Inventory deltas waiting to be written (aggregating or in the retry buffer).',
    registers: [this.registry],
  });

  readonly labelOverflow = new Counter({
    name: 'tokenwarden_metrics_label_overflow_total',
    help: 'Label values reported as "(other)" because the label already had metrics.max_label_values distinct values.',
    labelNames: ['label'],
    registers: [this.registry],
  });
  private readonly models: BoundedLabel;
  private readonly consumers: BoundedLabel;

  constructor(opts: { defaultMetrics?: boolean; consumerLabels?: boolean; maxLabelValues?: number } = {}) {
    this.consumerLabels = opts.consumerLabels === true;
    const max = opts.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    this.models = new BoundedLabel(max, () => this.labelOverflow.inc({ label: 'model' }));
    this.consumers = new BoundedLabel(max, () => this.labelOverflow.inc({ label: 'consumer' }));
    const consumer = this.consumerLabels ? [CONSUMER_LABEL] : [];
    this.tokenUsage = new Histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens per exchange by token type (OpenTelemetry GenAI gen_ai.client.token.usage).',
      labelNames: ['gen_ai_token_type', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'gen_ai_operation_name', 'tokenwarden_usage_source', ...consumer],
      buckets: TOKEN_BUCKETS,
      registers: [this.registry],
    });
    this.costUsd = new Counter({
      name: 'tokenwarden_cost_usd_total',
      help: 'Priced cost of exchanges in USD.',
      labelNames: ['gen_ai_provider_name', 'gen_ai_request_model', ...consumer],
      registers: [this.registry],
    });
    this.exchanges = new Counter({
      name: 'tokenwarden_exchanges_total',
      help: 'LLM exchanges by provider, model and outcome (ok, upstream_error, bad_input, aborted).',
      labelNames: ['gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_operation_name', 'outcome', ...consumer],
      registers: [this.registry],
    });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'tokenwarden_' });
  }

  /** A model name as a label value (request and response models share one cap). */
  modelLabel(model: string): string {
    return this.models.value(model);
  }

  recordExchange(r: ExchangeRecord): void {
    const provider = r.provider;
    const model = this.modelLabel(r.model ?? '');
    const who = this.consumerLabels ? { [CONSUMER_LABEL]: this.consumers.value(r.consumer?.id ?? '') } : {};
    const outcome =
      r.completion === 'aborted' ? 'aborted' : r.error ? 'bad_input' : r.status !== null && r.status >= 400 ? 'upstream_error' : 'ok';
    this.exchanges.inc({ gen_ai_provider_name: provider, gen_ai_request_model: model, gen_ai_operation_name: r.api, outcome, ...who });
    if (r.error) this.exchangeErrors.inc({ error: r.error, gen_ai_provider_name: provider });
    if (r.usageInjected) this.usageInjected.inc();
    if (r.unpriced) this.unpriced.inc({ gen_ai_provider_name: provider, gen_ai_request_model: model });
    if (r.costMicroUsd !== null) this.costUsd.inc({ gen_ai_provider_name: provider, gen_ai_request_model: model, ...who }, r.costMicroUsd / 1e6);
    if (r.usageSource === 'none') return;
    const labels = {
      gen_ai_provider_name: provider,
      gen_ai_request_model: model,
      gen_ai_response_model: this.modelLabel(r.responseModel ?? ''),
      gen_ai_operation_name: r.api,
      tokenwarden_usage_source: r.usageSource,
      ...who,
    };
    if (r.usage.input_tokens !== null) this.tokenUsage.observe({ ...labels, gen_ai_token_type: 'input' }, r.usage.input_tokens);
    if (r.usage.output_tokens !== null) this.tokenUsage.observe({ ...labels, gen_ai_token_type: 'output' }, r.usage.output_tokens);
  }
}
