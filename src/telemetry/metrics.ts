/**
 * Prometheus metrics. Token, latency and request metrics follow the OpenTelemetry GenAI semantic
 * conventions, names and values (gen_ai_client_token_usage with gen_ai_provider_name="aws.bedrock",
 * gen_ai_operation_name="chat"); tokenwarden's API id has its own label, tokenwarden_api. Unknown
 * values (a model the response did not name) are left out of a series, never an empty string.
 * tokenwarden's own operational metrics are prefixed `tokenwarden_`. The consumer is a label only
 * when `metrics.consumer_labels` is on: one series per consumer can be a lot of series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ANONYMOUS_CONSUMER, type ExchangeRecord } from '../domain.js';
import { genAiOperationName, genAiProviderName } from './semconv.js';
import { SeriesCounter, SeriesHistogram, type CounterCell, type HistogramCell, type Labels } from './series.js';

/** The conventions' advised bucket boundaries (gen_ai.client.token.usage, .operation.duration). */
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/** The conventions' time-to-first-token boundaries, also used for the time to first byte. */
const FIRST_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** The conventions' time-per-output-token boundaries, with finer steps below 10 ms for fast models. */
const PER_TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
/** Labels of every per-exchange GenAI series; gen_ai_response_model only when the response named one. */
const GEN_AI_LABELS = ['gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'gen_ai_operation_name', 'tokenwarden_api'];
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

/** The series one kind of exchange updates, found once per label set (cells made on first use). */
interface ExchangeSeries {
  exchanges: CounterCell;
  genAi: Labels;
  model: Labels;
  /** The consumer label, when consumer labels are on. */
  who: Labels;
  cost?: CounterCell;
  unpriced?: CounterCell;
  inputTokens?: HistogramCell;
  outputTokens?: HistogramCell;
  timeToFirstByte?: HistogramCell;
  duration?: HistogramCell;
  timeToFirstChunk?: HistogramCell;
  timePerOutputToken?: HistogramCell;
}

/** Kinds of exchange remembered; past it the memo starts over (label caps bound the real number). */
const MAX_EXCHANGE_SERIES = 10_000;

export class Metrics {
  readonly registry = new Registry();
  private readonly consumerLabels: boolean;

  readonly tokenUsage: SeriesHistogram;
  readonly costUsd: SeriesCounter;
  readonly exchanges: SeriesCounter;
  readonly operationDuration = new SeriesHistogram(this.registry, {
    name: 'gen_ai_client_operation_duration_seconds',
    help: 'Inline exchanges: request headers to the end of the response, as Envoy saw it (gen_ai.client.operation.duration; includes the upstream).',
    labelNames: [...GEN_AI_LABELS, 'error_type'],
    buckets: DURATION_BUCKETS,
  });
  readonly timeToFirstChunk = new SeriesHistogram(this.registry, {
    name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
    help: 'Inline streams: request headers to the first response body chunk that carries output (gen_ai.client.operation.time_to_first_chunk).',
    labelNames: GEN_AI_LABELS,
    buckets: FIRST_BUCKETS,
  });
  readonly timeToFirstByte = new SeriesHistogram(this.registry, {
    name: 'tokenwarden_time_to_first_byte_seconds',
    help: 'Inline exchanges: request headers to the response headers.',
    labelNames: GEN_AI_LABELS,
    buckets: FIRST_BUCKETS,
  });
  readonly timePerOutputToken = new SeriesHistogram(this.registry, {
    name: 'tokenwarden_time_per_output_token_seconds',
    help: 'Inline streams with 2+ output tokens: (end of the response - first output chunk) / (output tokens - 1).',
    labelNames: GEN_AI_LABELS,
    buckets: PER_TOKEN_BUCKETS,
  });
  readonly exchangeErrors = new Counter({
    name: 'tokenwarden_exchange_errors_total',
    help: 'Exchanges with bad input by error code (invalid_json, invalid_utf8, empty_body, stream_truncated, ...).',
    labelNames: ['error', 'gen_ai_provider_name'],
    registers: [this.registry],
  });
  readonly unpriced = new SeriesCounter(this.registry, {
    name: 'tokenwarden_unpriced_exchanges_total',
    help: 'Exchanges with usage but no known price (cost left absent, never 0).',
    labelNames: ['gen_ai_provider_name', 'gen_ai_request_model'],
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
  readonly streamTransitionsRefused = new Counter({
    name: 'tokenwarden_extproc_stream_transitions_refused_total',
    help: 'Moves an ext_proc stream\'s lifecycle does not allow, refused (from phase, to phase); ended->open is a message that raced the server\'s end of the RPC.',
    labelNames: ['from', 'to'] as const,
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
  readonly phaseSeconds = new SeriesHistogram(this.registry, {
    name: 'tokenwarden_extproc_phase_duration_seconds',
    help: 'Time from receiving an ext_proc message to writing its answer, by message kind.',
    labelNames: ['phase'],
    buckets: PHASE_BUCKETS,
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
  readonly budgetSettlementsPending = new Gauge({
    name: 'tokenwarden_budget_settlements_pending',
    help: 'Budget settlements and releases waiting for (or in) a retry (Redis did not answer) or their second send (README "Redis failover and resharding").',
    registers: [this.registry],
  });
  readonly budgetSettlementsLost = new Counter({
    name: 'tokenwarden_budget_settlements_lost_total',
    help: 'Budget settlements and releases given up without reaching Redis (retried for a minute, or dropped from a full retry buffer): usage not counted, the reservation held until its lease ends.',
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
  readonly telemetryExportFailures = new Counter({
    name: 'tokenwarden_telemetry_export_failures_total',
    help: 'OTLP exports that failed or timed out (retries included), by signal (metrics, traces).',
    labelNames: ['signal'],
    registers: [this.registry],
  });
  readonly telemetrySpansDropped = new Counter({
    name: 'tokenwarden_telemetry_spans_dropped_total',
    help: 'Exchange spans never exported: the span queue was full (telemetry.traces.max_queue_size) or their export failed.',
    registers: [this.registry],
  });
  private readonly models: BoundedLabel;
  private readonly consumers: BoundedLabel;
  private readonly exchangeSeries = new Map<string, ExchangeSeries>();

  constructor(opts: { defaultMetrics?: boolean; consumerLabels?: boolean; maxLabelValues?: number } = {}) {
    this.consumerLabels = opts.consumerLabels === true;
    const max = opts.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    this.models = new BoundedLabel(max, () => this.labelOverflow.inc({ label: 'model' }));
    this.consumers = new BoundedLabel(max, () => this.labelOverflow.inc({ label: 'consumer' }));
    const consumer = this.consumerLabels ? [CONSUMER_LABEL] : [];
    this.tokenUsage = new SeriesHistogram(this.registry, {
      name: 'gen_ai_client_token_usage',
      help: 'Tokens per exchange by token type (OpenTelemetry GenAI gen_ai.client.token.usage).',
      labelNames: ['gen_ai_token_type', ...GEN_AI_LABELS, 'tokenwarden_usage_source', ...consumer],
      buckets: TOKEN_BUCKETS,
    });
    this.costUsd = new SeriesCounter(this.registry, {
      name: 'tokenwarden_cost_usd_total',
      help: 'Priced cost of exchanges in USD.',
      labelNames: ['gen_ai_provider_name', 'gen_ai_request_model', ...consumer],
    });
    this.exchanges = new SeriesCounter(this.registry, {
      name: 'tokenwarden_exchanges_total',
      help: 'LLM exchanges by provider, model and outcome (ok, upstream_error, bad_input, aborted).',
      labelNames: ['gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_operation_name', 'tokenwarden_api', 'outcome', ...consumer],
    });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'tokenwarden_' });
  }

  /** A model name as a label value (request and response models share one cap). */
  modelLabel(model: string): string {
    return this.models.value(model);
  }

  /** A sanction policy flagged or blocked a request (provider id as tokenwarden names it). */
  recordUnsanctioned(e: { provider: string; model: string; policy: string; decision: string }): void {
    this.unsanctionedRequests.inc({
      gen_ai_provider_name: genAiProviderName(e.provider),
      gen_ai_request_model: this.modelLabel(e.model),
      policy: e.policy,
      decision: e.decision,
    });
  }

  recordExchange(r: ExchangeRecord): void {
    const s = this.seriesOf(r);
    s.exchanges.inc();
    if (r.error) this.exchangeErrors.inc({ error: r.error, gen_ai_provider_name: s.genAi.gen_ai_provider_name! });
    if (r.usageInjected) this.usageInjected.inc();
    if (r.unpriced) (s.unpriced ??= this.unpriced.cell(s.model)).inc();
    if (r.costMicroUsd !== null) (s.cost ??= this.costUsd.cell({ ...s.model, ...s.who })).inc(r.costMicroUsd / 1e6);
    if (r.latency) this.recordLatency(r, s);
    if (r.usageSource === 'none') return;
    const tokens = (type: string): HistogramCell => this.tokenUsage.cell({ ...s.genAi, tokenwarden_usage_source: r.usageSource, ...s.who, gen_ai_token_type: type });
    if (r.usage.input_tokens !== null) (s.inputTokens ??= tokens('input')).observe(r.usage.input_tokens);
    if (r.usage.output_tokens !== null) (s.outputTokens ??= tokens('output')).observe(r.usage.output_tokens);
  }

  /**
   * The series of an exchange like `r`: the label values are computed, and the cells found, once
   * per kind of exchange. The label caps still apply per exchange (BoundedLabel), so a model past
   * the cap is counted as an overflow each time, as before. A raw value's label never changes
   * (a value within the cap stays, one past it stays "(other)"), so the raw values are the key.
   */
  private seriesOf(r: ExchangeRecord): ExchangeSeries {
    const model = r.model === null ? null : this.modelLabel(r.model);
    const responseModel = r.responseModel === null ? null : this.modelLabel(r.responseModel);
    const who: Labels = this.consumerLabels ? { [CONSUMER_LABEL]: this.consumers.value(r.consumer?.id ?? ANONYMOUS_CONSUMER) } : {};
    const outcome =
      r.completion === 'aborted' ? 'aborted' : r.error ? 'bad_input' : r.status !== null && r.status >= 400 ? 'upstream_error' : 'ok';
    const failed = r.status !== null && r.status >= 400 ? r.status : 0;
    const consumerKey = this.consumerLabels ? (r.consumer?.id ?? ANONYMOUS_CONSUMER) : '';
    const key = `${r.provider}\u0000${r.api}\u0000${r.model ?? '\u0001'}\u0000${r.responseModel ?? '\u0001'}\u0000${consumerKey}\u0000${outcome}\u0000${r.usageSource}\u0000${failed}`;
    let s = this.exchangeSeries.get(key);
    if (s) return s;
    const provider = genAiProviderName(r.provider);
    const series: Record<string, string> = { gen_ai_provider_name: provider, gen_ai_operation_name: genAiOperationName(r.api, r.model), tokenwarden_api: r.api };
    if (model !== null) series.gen_ai_request_model = model;
    const modelLabels = { gen_ai_provider_name: provider, ...(model !== null && { gen_ai_request_model: model }) };
    const exchanges = this.exchanges.cell({ ...series, outcome, ...who });
    if (responseModel !== null) series.gen_ai_response_model = responseModel;
    s = { exchanges, genAi: series, model: modelLabels, who };
    if (this.exchangeSeries.size >= MAX_EXCHANGE_SERIES) this.exchangeSeries.clear();
    this.exchangeSeries.set(key, s);
    return s;
  }

  private recordLatency(r: ExchangeRecord, s: ExchangeSeries): void {
    const l = r.latency!;
    if (l.timeToFirstByte !== null) (s.timeToFirstByte ??= this.timeToFirstByte.cell(s.genAi)).observe(l.timeToFirstByte);
    if (l.duration !== null) {
      const failed = r.status !== null && r.status >= 400;
      (s.duration ??= this.operationDuration.cell(failed ? { ...s.genAi, error_type: String(r.status) } : s.genAi)).observe(l.duration);
    }
    if (l.timeToFirstChunk !== null) (s.timeToFirstChunk ??= this.timeToFirstChunk.cell(s.genAi)).observe(l.timeToFirstChunk);
    if (l.timePerOutputToken !== null) (s.timePerOutputToken ??= this.timePerOutputToken.cell(s.genAi)).observe(l.timePerOutputToken);
  }
}
