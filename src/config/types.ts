/**
 * tokenwarden configuration: the typed shape after validation, with defaults applied.
 * The YAML file uses the same snake_case keys (see README "Configuration reference").
 */
import type { Budget, BudgetTemplate } from '../governance/types.js';
import type { ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';

export interface TlsConfig {
  cert_file: string;
  key_file: string;
  /** CA bundle for verifying client certificates (mTLS). */
  ca_file?: string;
  require_client_cert: boolean;
}

export interface GrpcConfig {
  /** `host:port` for TCP or `unix:/path/to.sock` for a Unix socket. */
  address: string;
  tls?: TlsConfig;
  /** Largest ProcessingRequest accepted; must cover Envoy's buffer limit for BUFFERED bodies. */
  max_receive_message_bytes: number;
  /** On SIGTERM: how long in-flight streams may take before they are cancelled. */
  shutdown_grace_ms: number;
  /** Answer non-LLM requests' headers with a mode_override that skips bodies and the response. */
  skip_non_llm: boolean;
  /**
   * Open ext_proc streams this process serves at once; a stream beyond it is ended at once with
   * status OK (Envoy continues that request unprocessed) and counted.
   */
  max_concurrent_streams: number;
  /**
   * Observability mode: a mirrored stream that receives nothing for this long is ended (OK) and
   * recorded as aborted, so a stream Envoy never closes cannot hold state forever.
   */
  observability_idle_timeout_ms: number;
  /**
   * Retire an HTTP/2 connection (graceful GOAWAY) before Envoy's stream resets could exhaust Node's
   * rapid-reset allowance on it, which would fail every exchange in flight on that connection.
   */
  rotate_connections: boolean;
}

export type AdminRole = 'admin' | 'viewer';

/** A named admin API token: the name is the actor in the audit log, the role what it may do. */
export interface AdminTokenConfig {
  name: string;
  /** From `token` or the variable named by `token_env`. */
  token: string;
  /** viewer: GET and HEAD only; admin: everything. */
  role: AdminRole;
}

export interface AdminConfig {
  /** `host:port`, or empty to disable the admin HTTP server. */
  address: string;
  /**
   * Bearer token required on /api/* and /metrics (from `token` or the variable named by
   * `token_env`); the same as a token named `admin` with role admin. With neither this nor
   * `tokens` there is no auth, which is refused unless `address` is a loopback address.
   */
  token: string;
  /** Named tokens with roles, besides `token`. */
  tokens: AdminTokenConfig[];
}

export interface RedisConfig {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS). With cluster_nodes or sentinels
   * only its credentials and TLS are used.
   */
  url: string;
  /** Redis Cluster seed nodes (`host:port`); the cluster is used when non-empty. */
  cluster_nodes: string[];
  /** Sentinel nodes (`host:port`) and the monitored master's name; used when non-empty. */
  sentinels: string[];
  sentinel_master: string;
  /** Prefix of every key; the hash tags derive from it (README "Redis key layout"). */
  key_prefix: string;
  /**
   * Inventory shards, each under its own hash tag (1-256). Absent: 1, or 16 with cluster_nodes.
   * Changing it is safe: reads merge every shard ever used.
   */
  inventory_shards?: number;
  connect_timeout_ms: number;
  /** Per-command timeout; a flush that times out is retried (batches are idempotent). */
  command_timeout_ms: number;
}

export interface StoreConfig {
  /** memory: embedded, this process only; redis: shared by every sidecar and gateway. */
  type: 'memory' | 'redis';
  redis: RedisConfig;
  /** Memory store: at most this many inventory records (least recently updated evicted). */
  memory_max_records: number;
  /** Hourly usage buckets are kept this long. */
  retention_hours: number;
  /** Aggregated deltas are flushed at least this often. */
  flush_interval_ms: number;
  /** ... and as soon as this many distinct keys are pending. */
  flush_max_deltas: number;
  /** Deltas kept for retry while the store is unreachable; beyond it the oldest are dropped (counted, logged). */
  retry_buffer_max_deltas: number;
}

export interface GovernanceConfig {
  /** A reservation not settled within this time expires (cancelled request, dead sidecar). */
  lease_ms: number;
  /** Deadline of one ledger decision on the request path; past it each budget's on_store_error decides. */
  ledger_timeout_ms: number;
  /** Output tokens reserved when a request sets no max_tokens. */
  default_max_output_tokens: number;
  /** Per-model defaults (first matching entry wins), before default_max_output_tokens. */
  max_output_tokens_by_model: { provider?: string; model: string; tokens: number }[];
  /** How often budgets created through the admin API are re-read from the store. */
  registry_poll_ms: number;
}

export interface MetricsConfig {
  /** Add a `tokenwarden_consumer` label to token/cost/request metrics (one series per consumer). */
  consumer_labels: boolean;
  /** Distinct model names (and consumer ids) used as label values; later new ones become "(other)". */
  max_label_values: number;
}

export interface TelemetryConfig {
  /** service.name of the exported telemetry (OTEL_SERVICE_NAME replaces it). */
  service_name: string;
  otlp: {
    /** Base URL of the OTLP receiver (e.g. http://otel-collector:4318); "" = no export. */
    endpoint: string;
    protocol: 'http/protobuf' | 'grpc';
    /** Sent with every export (secrets: never logged). */
    headers: Record<string, string>;
    /** One export's deadline; also bounds the final export at shutdown. */
    timeout_ms: number;
  };
  metrics: { export_interval_ms: number };
  traces: {
    /** One span per LLM exchange (GenAI span conventions), parented to the request's traceparent. */
    enabled: boolean;
    /** Sampled share of exchanges without a sampled-or-not parent (parent-based sampling). */
    sample_ratio: number;
    /** Spans waiting for export; past it new spans are dropped (counted). */
    max_queue_size: number;
    /** Finished spans are exported at least this often. */
    export_interval_ms: number;
  };
}

export interface MetadataConfig {
  /** Dynamic-metadata namespace (must be in Envoy's receiving_namespaces). */
  namespace: string;
  /** Also emit Envoy AI Gateway keys under `io.envoy.ai_gateway`. */
  ai_gateway_compat: boolean;
  /** When set, a request header with the requested model is added (with clear_route_cache). */
  model_header: string;
}

export type SelfHostedProvider = 'vllm' | 'ollama' | 'openai_compatible';

export interface SelfHostedEndpoint {
  /** Glob on `:authority` (host[:port]); `*` matches within a label sequence, case-insensitive. */
  host: string;
  provider: SelfHostedProvider;
}

export interface DiscoveryConfig {
  self_hosted: SelfHostedEndpoint[];
  /** Treat hosts containing `vllm` / `ollama` (or port 11434) as such (the fixtures' convention). */
  host_name_conventions: boolean;
}

export type ConsumerResolver =
  | { type: 'header'; header: string }
  | { type: 'xfcc' }
  | { type: 'attribute'; attribute: string }
  | { type: 'api_key'; headers: string[] };

export interface ConsumerConfig {
  /** Tried in order; the first that yields an identity wins. */
  resolvers: ConsumerResolver[];
  /**
   * HMAC-SHA256 key for API-key fingerprints (from `fingerprint_secret` or its env variable). Empty:
   * none configured, the server generates one (shared through Redis, or for this process only).
   */
  fingerprint_secret: string;
}

/** USD per million tokens for one model; absent classes fall back to the catalog (or input/output). */
export interface PriceOverride {
  provider: string;
  /** Glob on the model name (response model first, then requested model). */
  model: string;
  input_per_mtok?: number;
  cached_input_per_mtok?: number;
  cache_write_per_mtok?: number;
  output_per_mtok?: number;
  reasoning_per_mtok?: number;
}

export interface MeteringConfig {
  /** Add stream_options.include_usage to OpenAI-shaped streaming requests (hidden from the client). */
  inject_stream_usage: boolean;
  /** Prompt bytes tokenised exactly; beyond this a documented cheap bound is used. */
  max_exact_tokenize_bytes: number;
  /** Streamed output text kept per exchange for estimation when a stream reports no usage. */
  max_stream_text_bytes: number;
  price_overrides: PriceOverride[];
}

export interface LimitsConfig {
  /** Request bodies larger than this are passed through unparsed (counted in metrics). */
  max_request_body_bytes: number;
  /** Non-streaming response bodies larger than this are not parsed (counted). */
  max_response_body_bytes: number;
  /**
   * Decompressed bytes read from one compressed streaming response (a gzip bomb of zeros inflates
   * a thousandfold); past it the rest passes through undecoded (counted as body_too_large).
   */
  max_decoded_stream_bytes: number;
  /** One SSE event or NDJSON line of a stream; a longer one passes through unread (counted as body_too_large). */
  max_stream_event_bytes: number;
  /** One AWS event-stream frame; a longer one passes through unread (counted as body_too_large). */
  max_stream_frame_bytes: number;
}

export interface LoggingConfig {
  level: 'debug' | 'info' | 'warn' | 'error';
}

export interface TokenwardenConfig {
  grpc: GrpcConfig;
  admin: AdminConfig;
  metadata: MetadataConfig;
  discovery: DiscoveryConfig;
  consumer: ConsumerConfig;
  metering: MeteringConfig;
  limits: LimitsConfig;
  store: StoreConfig;
  governance: GovernanceConfig;
  budgets: Budget[];
  budget_templates: BudgetTemplate[];
  /** The catalog (config-as-code; the config wins over the admin API on the same id). */
  owners: Owner[];
  consumers: ConsumerEntry[];
  consumer_rules: ConsumerRule[];
  resources: Resource[];
  /** `policies:` in the file (`unsanctioned` and `owners.<id>`), as policies with ids global / owner id. */
  policies: SanctionPolicy[];
  metrics: MetricsConfig;
  telemetry: TelemetryConfig;
  logging: LoggingConfig;
}

/**
 * The development secret earlier versions used by default. It is public, so fingerprints made with it
 * can be recomputed by anyone: it is refused as a configured secret.
 */
export const PUBLIC_DEV_FINGERPRINT_SECRET = 'tokenwarden-dev-insecure-secret';

/** `grpc.max_concurrent_streams` by default: far above what one process serves within Envoy's timeouts. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;

export function defaultConfig(): TokenwardenConfig {
  return {
    grpc: {
      address: '127.0.0.1:50051',
      max_receive_message_bytes: 64 * 1024 * 1024,
      shutdown_grace_ms: 10_000,
      skip_non_llm: true,
      max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
      // Envoy's default 5 min stream idle timeout plus its 5 s deferred close, with room.
      observability_idle_timeout_ms: 360_000,
      rotate_connections: true,
    },
    admin: { address: '127.0.0.1:9090', token: '', tokens: [] },
    metadata: { namespace: 'tokenwarden', ai_gateway_compat: false, model_header: '' },
    discovery: { self_hosted: [], host_name_conventions: true },
    consumer: {
      resolvers: [
        { type: 'header', header: 'x-consumer-id' },
        { type: 'xfcc' },
        { type: 'api_key', headers: ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'] },
        { type: 'attribute', attribute: 'source.address' },
      ],
      fingerprint_secret: '',
    },
    metering: {
      inject_stream_usage: true,
      max_exact_tokenize_bytes: 256 * 1024,
      max_stream_text_bytes: 1024 * 1024,
      price_overrides: [],
    },
    limits: {
      max_request_body_bytes: 64 * 1024 * 1024,
      max_response_body_bytes: 16 * 1024 * 1024,
      max_decoded_stream_bytes: 256 * 1024 * 1024,
      max_stream_event_bytes: 1024 * 1024,
      max_stream_frame_bytes: 16 * 1024 * 1024,
    },
    store: {
      type: 'memory',
      redis: {
        url: 'redis://127.0.0.1:6379',
        cluster_nodes: [],
        sentinels: [],
        sentinel_master: 'mymaster',
        key_prefix: 'tw',
        connect_timeout_ms: 2_000,
        command_timeout_ms: 2_000,
      },
      memory_max_records: 100_000,
      retention_hours: 24 * 30,
      flush_interval_ms: 1_000,
      flush_max_deltas: 1_000,
      retry_buffer_max_deltas: 100_000,
    },
    governance: {
      lease_ms: 600_000,
      ledger_timeout_ms: 50,
      default_max_output_tokens: 4096,
      max_output_tokens_by_model: [],
      registry_poll_ms: 5_000,
    },
    budgets: [],
    budget_templates: [],
    owners: [],
    consumers: [],
    consumer_rules: [],
    resources: [],
    policies: [],
    metrics: { consumer_labels: false, max_label_values: 1_000 },
    telemetry: {
      service_name: 'tokenwarden',
      // The OpenTelemetry SDK's defaults (OTLP timeout, metric export interval, span queue and delay).
      otlp: { endpoint: '', protocol: 'http/protobuf', headers: {}, timeout_ms: 10_000 },
      metrics: { export_interval_ms: 60_000 },
      traces: { enabled: false, sample_ratio: 1, max_queue_size: 2_048, export_interval_ms: 5_000 },
    },
    logging: { level: 'info' },
  };
}
