/** The tokenwarden configuration schema, built from the declarative builders in schema.ts. */
import type { ProviderName } from '../domain.js';
import type { PathSegment } from './errors.js';
import { budgetsSchema, checkBudgetReferences, templatesSchema, uniqueIds } from './budgets-schema.js';
import { catalogSections, checkCatalogReferences } from './catalog-schema.js';
import { telemetrySchema } from './telemetry-schema.js';
import { MAX_INVENTORY_SHARDS } from '../store/redis-layout.js';
import {
  address,
  bool,
  duration,
  int,
  list,
  nonNegativeNumber,
  obj,
  oneOf,
  size,
  tagged,
  text,
  withDefault,
  key,
  section,
  MAX_GLOB_CHARS,
  type Issue,
  type Out,
  type Schema,
} from './schema.js';

// ---------------------------------------------------------------------------------------------
// The tokenwarden configuration

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

const PRICED_PROVIDERS = [
  'openai',
  'azure_openai',
  'anthropic',
  'aws_bedrock',
  'gcp_gemini',
  'gcp_vertex',
  'ollama',
  'vllm',
  'mistral',
  'groq',
  'cohere',
  'openai_compatible',
] as const satisfies readonly ProviderName[];

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const HEADER_HINT = "an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)";

const headerName = (): Schema<string> =>
  text({ minLength: 1, maxLength: 256, pattern: HEADER_NAME, patternHint: HEADER_HINT, lowercase: true });

const filePath = (): Schema<string> => text({ minLength: 1, maxLength: 4096 });

const tlsSchema = obj(
  {
    cert_file: key(filePath(), { doc: 'PEM certificate chain.', type: 'string, required in `tls`' }),
    key_file: key(filePath(), { doc: 'PEM private key.', type: 'string, required in `tls`' }),
    ca_file: key(filePath(), {
      doc: 'PEM CA bundle for verifying client certificates; required when `require_client_cert` is true.',
      type: 'string',
    }),
    require_client_cert: key(withDefault(bool(), false), { doc: 'Require mTLS from Envoy.' }),
  },
  {
    required: ['cert_file', 'key_file'],
    nullIsAbsent: true,
    check(tls, path, issues) {
      if (tls.require_client_cert && tls.ca_file === undefined) {
        issues.push({ path: [...path, 'ca_file'], message: 'is required when require_client_cert is true' });
      }
    },
  },
);

const resolverSchema = tagged('type', {
  header: obj({ type: oneOf(['header']), header: headerName() }, { required: ['type', 'header'] }),
  xfcc: obj({ type: oneOf(['xfcc']) }, { required: ['type'] }),
  attribute: obj(
    {
      type: oneOf(['attribute']),
      attribute: text({ minLength: 1, maxLength: 256, pattern: /^\S(?:.*\S)?$/, patternHint: 'an Envoy attribute such as source.address' }),
    },
    { required: ['type', 'attribute'] },
  ),
  api_key: obj(
    { type: oneOf(['api_key']), headers: list(headerName(), { minItems: 1, maxItems: 16 }) },
    { required: ['type', 'headers'] },
  ),
});

const PRICE_KEYS = ['input_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok', 'output_per_mtok', 'reasoning_per_mtok'] as const;

const priceOverrideSchema = obj(
  {
    provider: key(oneOf(PRICED_PROVIDERS), { doc: `One of ${PRICED_PROVIDERS.map((p) => `\`${p}\``).join(', ')}.`, type: 'provider name, required' }),
    model: key(text({ minLength: 1, maxLength: MAX_GLOB_CHARS }), {
      doc: 'Matched against the response model first, then the requested model.',
      type: 'glob, required',
    }),
    input_per_mtok: key(nonNegativeNumber(), { doc: 'USD per million input tokens.' }),
    cached_input_per_mtok: key(nonNegativeNumber(), { doc: 'USD per million cache-read input tokens.' }),
    cache_write_per_mtok: key(nonNegativeNumber(), { doc: 'USD per million cache-write input tokens.' }),
    output_per_mtok: key(nonNegativeNumber(), { doc: 'USD per million output tokens.' }),
    reasoning_per_mtok: key(nonNegativeNumber(), { doc: 'USD per million reasoning tokens.' }),
  },
  {
    required: ['provider', 'model'],
    check(override, path, issues) {
      if (PRICE_KEYS.every((key) => override[key] === undefined)) {
        issues.push({ path, message: `sets no price; give at least one of ${PRICE_KEYS.join(', ')}` });
      }
    },
  },
);

const envName = (): Schema<string> => ({
  ...text({ minLength: 1, maxLength: 256, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternHint: 'an environment variable name' }),
  label: 'environment variable name',
});

/** `value` and `value_env` (read from the environment by the loader) exclude each other. */
function eitherValueOrEnv(value: string, env: string) {
  return (section: Record<string, unknown>, path: PathSegment[], issues: Issue[]): void => {
    if (section[value] !== undefined && section[env] !== undefined) {
      issues.push({ path: [...path, env], message: `give either ${value} or ${env}, not both` });
    }
  };
}

const redisSchema = section(
  {
    url: key(text({ minLength: 1, maxLength: 4096, secret: true, pattern: /^rediss?:\/\/\S+$/, patternHint: 'a redis:// or rediss:// URL' }), {
      doc: 'Server (credentials, TLS with `rediss://`, db). With `cluster_nodes` or `sentinels` only its credentials and TLS are used.',
      default: 'redis://127.0.0.1:6379',
      type: '`redis://…` / `rediss://…` URL',
    }),
    url_env: key(envName(), {
      doc: 'Read the URL (it may hold a password) from this variable instead.',
      resolvedInto: 'url',
    }),
    cluster_nodes: key(list(address({ allowUnix: false, allowEmpty: false }), { maxItems: 64 }), {
      doc: 'Redis Cluster seed nodes; Cluster is used when non-empty.',
      default: [],
      type: 'list of `host:port`',
    }),
    sentinels: key(list(address({ allowUnix: false, allowEmpty: false }), { maxItems: 16 }), {
      doc: 'Sentinel nodes; Sentinel is used when non-empty.',
      default: [],
      type: 'list of `host:port`',
    }),
    sentinel_master: key(text({ minLength: 1, maxLength: 256 }), { doc: "The monitored master's name.", default: 'mymaster', type: 'string' }),
    key_prefix: key(
      text({ minLength: 1, maxLength: 64, pattern: /^[A-Za-z0-9_.:-]+$/, patternHint: 'letters, digits, ".", "_", ":" or "-"' }),
      {
        doc: 'Every key starts with `{<prefix>` (hash tags: [Redis key layout](#redis-key-layout)).',
        default: 'tw',
        type: 'letters, digits, `.`, `_`, `:`, `-`',
      },
    ),
    connect_timeout_ms: key(duration(1), { doc: 'Connection timeout.', default: 2_000, type: 'duration' }),
    command_timeout_ms: key(duration(1), {
      doc: 'Per-command timeout; a timed-out flush is retried (idempotently).',
      default: 2_000,
      type: 'duration',
    }),
    inventory_shards: key(int(1, MAX_INVENTORY_SHARDS), {
      doc: 'Inventory shards, each under its own hash tag, so a Cluster spreads the inventory over its masters. Safe to change at any time (reads merge every shard ever used).',
      defaultText: '`1`; `16` with `cluster_nodes`',
    }),
  },
  eitherValueOrEnv('url', 'url_env'),
);

/** `admin.tokens`: named tokens with a role (ids unique; the loader resolves `token_env`). */
const adminTokensSchema = uniqueIds(
  list(
    obj(
      {
        name: key(
          text({ minLength: 1, maxLength: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9_.@-]*$/, patternHint: 'a name (letters, digits, "_", ".", "@" or "-")' }),
          { doc: 'The actor in the audit log; unique.', type: 'string (letters, digits, `_`, `.`, `@`, `-`; 1-64 chars), required' },
        ),
        token: key(text({ minLength: 1, maxLength: 4096, secret: true }), { doc: "This entry's bearer token.", type: 'string' }),
        token_env: key(envName(), {
          doc: "Read this entry's token from the variable (set and non-empty). Give either this or `token`.",
          resolvedInto: 'token',
        }),
        role: key(oneOf(['admin', 'viewer']), { doc: '`viewer`: GET and HEAD only; `admin`: everything.', type: '`admin` or `viewer`, required' }),
      },
      {
        required: ['name', 'role'],
        check(entry, path, issues) {
          eitherValueOrEnv('token', 'token_env')(entry, path, issues);
          if (entry.token === undefined && entry.token_env === undefined) issues.push({ path: [...path, 'token'], message: 'missing required key (or token_env)' });
        },
      },
    ),
    { maxItems: 1_000 },
  ),
  'name',
);

/** `grpc.max_concurrent_streams` by default: far above what one process serves within Envoy's timeouts. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;

const MiB = 1024 * 1024;

export const grpcSchema = section({
  address: key(address({ allowUnix: true, allowEmpty: false }), {
    doc: 'Where Envoy connects. Use `0.0.0.0:50051` in a container, or a Unix socket shared with the Envoy sidecar.',
    default: '127.0.0.1:50051',
  }),
  tls: key(tlsSchema, { doc: 'Serve TLS. Keys below.', defaultText: 'absent (plaintext)' }),
  max_receive_message_bytes: key(size(), {
    doc: "Largest ProcessingRequest accepted. Must cover Envoy's buffer limit when bodies are sent BUFFERED.",
    default: 64 * MiB,
  }),
  shutdown_grace_ms: key(duration(), {
    doc: "On SIGTERM/SIGINT, how long in-flight streams may continue before they are cancelled. Keep it below the pod's `terminationGracePeriodSeconds`.",
    default: 10_000,
    defaultText: '`10000` (10 s)',
  }),
  skip_non_llm: key(bool(), {
    doc: "Answer non-LLM requests' headers with a mode override that skips their bodies and response. Either way tokenwarden then ends the RPC (except with FULL_DUPLEX_STREAMED bodies, which it echoes to the end of the response), so Envoy sends nothing more for that request even where it does not accept the override.",
    default: true,
  }),
  max_concurrent_streams: key(int(1, 1_000_000), {
    doc: "ext_proc streams this process serves at once. A stream beyond it is ended at once with status OK, which makes Envoy continue that request unprocessed (not recorded, not governed), and is counted in `tokenwarden_extproc_streams_refused_total`. This is tokenwarden's own count over all connections, not HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` (that would make Envoy queue streams instead).",
    default: DEFAULT_MAX_CONCURRENT_STREAMS,
  }),
  // Envoy's default 5 min stream idle timeout plus its 5 s deferred close, with room.
  observability_idle_timeout_ms: key(duration(1_000), {
    doc: "Observability-mode (mirrored) streams only: a stream that receives no message for this long is ended with status OK; Envoy stops mirroring that request, and the exchange is recorded as `aborted` and counted in `tokenwarden_extproc_protocol_errors_total{reason=\"observability_idle_timeout\"}`. Keep it above Envoy's HCM `stream_idle_timeout` plus the filter's `deferred_close_timeout`.",
    default: 360_000,
    type: 'duration ≥ 1 s',
    defaultText: '`360000` (6 min)',
  }),
  rotate_connections: key(bool(), {
    doc: "Retire an HTTP/2 connection with a graceful GOAWAY (then a PING, then the final GOAWAY; its open streams finish) before Envoy's stream resets could exceed Node's rapid-reset allowance on it (1,000, then 33/s), which would fail every exchange in flight there. At low rates it never triggers. Turn off only if Envoy closes side streams gracefully (`ext_proc_graceful_grpc_close`). Counted in `tokenwarden_http2_sessions_closed_total{reason=\"goaway_sent_rotation\"}`.",
    default: true,
  }),
});

export const adminSchema = section(
  {
    address: key(address({ allowUnix: false, allowEmpty: true }), {
      doc: 'Listen address; `""` disables the admin server.',
      default: '127.0.0.1:9090',
    }),
    token: key(text({ minLength: 1, maxLength: 4096, secret: true }), {
      doc: 'Bearer token required on `/api/*` and `/metrics`: the token named `admin`, role `admin`. When `admin.address` is not a loopback address, this or an `admin.tokens` entry with `role: admin` is required.',
      default: '',
      type: 'string',
      defaultText: '`""` (no auth)',
    }),
    token_env: key(envName(), {
      doc: 'Read the token from this variable instead (set and non-empty). Give either this or `token`.',
      resolvedInto: 'token',
    }),
    tokens: key(adminTokensSchema, {
      doc: 'Named tokens: `{name, token \\| token_env, role: admin \\| viewer}` (see [Authentication](#authentication)). Names unique (`admin` is taken when `admin.token` is set); every token different.',
      default: [],
      type: 'list',
    }),
  },
  eitherValueOrEnv('token', 'token_env'),
);

export const metadataSchema = section({
  namespace: key(
    text({ minLength: 1, maxLength: 128, pattern: /^[A-Za-z0-9_.-]+$/, patternHint: 'letters, digits, ".", "_" or "-"' }),
    {
      doc: "Dynamic-metadata namespace; list it in Envoy's `metadata_options.receiving_namespaces`.",
      default: 'tokenwarden',
      type: 'string (letters, digits, `.`, `_`, `-`; 1-128 chars)',
    },
  ),
  ai_gateway_compat: key(bool(), { doc: 'Also emit Envoy AI Gateway keys under `io.envoy.ai_gateway`.', default: false }),
  model_header: key(
    text({ maxLength: 256, pattern: /^(?:[a-z0-9!#$%&'*+.^_`|~-]+)?$/, patternHint: `"" or ${HEADER_HINT}`, lowercase: true }),
    {
      doc: 'When set, a request header carrying the requested model is added (with `clear_route_cache`).',
      default: '',
      type: 'header name or `""`',
      defaultText: '`""` (off)',
    },
  ),
});

export const discoverySchema = section({
  self_hosted: key(
    list(
      obj(
        {
          host: key(
            text({
              minLength: 1,
              maxLength: MAX_GLOB_CHARS,
              pattern: /^[a-z0-9.*_\-:[\]]+$/,
              patternHint: 'a host[:port] glob (letters, digits, ".", "-", ":", "*")',
              lowercase: true,
            }),
            {
              doc: 'Matched against `:authority`, case-insensitively; `*` matches within a label sequence.',
              type: 'glob on `host[:port]` (letters, digits, `.`, `-`, `_`, `:`, `[`, `]`, `*`), required',
            },
          ),
          provider: key(oneOf(['vllm', 'ollama', 'openai_compatible']), {
            doc: "How to read that endpoint's traffic.",
            type: '`vllm`, `ollama` or `openai_compatible`, required',
          }),
        },
        { required: ['host', 'provider'] },
      ),
      { maxItems: 1000 },
    ),
    { doc: 'Hosts to treat as self-hosted inference servers.', default: [] },
  ),
  host_name_conventions: key(bool(), {
    doc: 'Treat hosts whose name contains `vllm` / `ollama` (or port 11434) as such.',
    default: true,
  }),
});

export const consumerSchema = section(
  {
    resolvers: key(list(resolverSchema, { maxItems: 16 }), {
      doc: 'Tried in order; the first that yields an identity wins.',
      default: [
        { type: 'header', header: 'x-consumer-id' },
        { type: 'xfcc' },
        { type: 'api_key', headers: ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'] },
        { type: 'attribute', attribute: 'source.address' },
      ],
      defaultText:
        'header `x-consumer-id`, then `xfcc`, then `api_key` (`authorization`, `api-key`, `x-api-key`, `x-goog-api-key`), then attribute `source.address`',
    }),
    fingerprint_secret: key(text({ minLength: 1, maxLength: 4096, secret: true }), {
      doc: 'HMAC-SHA256 key used to fingerprint API keys; the key itself is never stored. The published development value `tokenwarden-dev-insecure-secret` of earlier versions is refused.',
      // Empty: none configured, the server generates one (shared through Redis, or for this process only).
      default: '',
      defaultText: 'absent: generated (see below)',
    }),
    fingerprint_secret_env: key(envName(), {
      doc: 'Read the secret from this variable instead (it must be set and non-empty). Give either this or `fingerprint_secret`, not both.',
      resolvedInto: 'fingerprint_secret',
    }),
  },
  eitherValueOrEnv('fingerprint_secret', 'fingerprint_secret_env'),
);

export const meteringSchema = section({
  inject_stream_usage: key(bool(), {
    doc: 'Add `stream_options.include_usage` to OpenAI-shaped streaming requests (hidden from the client) so streams report usage.',
    default: true,
  }),
  max_exact_tokenize_bytes: key(size(), { doc: 'Prompt bytes tokenised exactly; beyond this a documented cheap bound is used.', default: 256 * 1024 }),
  max_stream_text_bytes: key(size(), {
    doc: 'Streamed output text kept per exchange to estimate output tokens when a stream reports no usage.',
    default: MiB,
  }),
  price_overrides: key(list(priceOverrideSchema, { maxItems: 10_000 }), {
    doc: 'Prices that replace the catalog for matching models.',
    default: [],
  }),
});

export const limitsSchema = section({
  max_request_body_bytes: key(size(), { doc: 'Larger request bodies are passed through unparsed (and counted in metrics).', default: 64 * MiB }),
  max_response_body_bytes: key(size(), {
    doc: 'Larger non-streaming response bodies are not parsed (counted); also the most a compressed non-streaming response is decompressed to.',
    default: 16 * MiB,
  }),
  max_decoded_stream_bytes: key(size(), {
    doc: 'Decompressed bytes read from one compressed streaming response (gzip bombs); past it the rest passes through undecoded and the exchange is flagged `body_too_large`.',
    default: 256 * MiB,
  }),
  max_stream_event_bytes: key(size(), {
    doc: 'One SSE event or NDJSON line of a streamed response; a longer one passes through unread (later ones are still read) and the exchange is flagged `body_too_large`.',
    default: MiB,
  }),
  max_stream_frame_bytes: key(size(), { doc: 'One AWS event-stream frame; same behaviour.', default: 16 * MiB }),
});

export const storeSchema = section(
  {
    type: key(oneOf(['memory', 'redis']), { doc: 'Embedded (this process only) or shared Redis.', default: 'memory' }),
    redis: redisSchema,
    memory_max_records: key(int(1, 10_000_000), {
      doc: 'Memory store bound (least recently updated records evicted, counted in `tokenwarden_store_evicted_records_total`).',
      default: 100_000,
    }),
    retention_hours: key(int(1, 24 * 400), { doc: 'Hourly usage buckets are kept this long.', default: 24 * 30, type: 'integer 1-9600' }),
    flush_interval_ms: key(duration(10, 600_000), {
      doc: 'Aggregated inventory deltas are written at least this often.',
      default: 1_000,
      type: 'duration 10 ms-10 min',
    }),
    flush_max_deltas: key(int(1, 1_000_000), { doc: '…and as soon as this many distinct keys are pending.', default: 1_000, type: 'integer' }),
    retry_buffer_max_deltas: key(int(1, 10_000_000), {
      doc: 'Deltas kept for retry while the store is unreachable; beyond it the oldest are dropped (counted, logged).',
      default: 100_000,
      type: 'integer ≥ `flush_max_deltas`',
    }),
  },
  (store, path, issues) => {
    const batch = store.flush_max_deltas;
    const buffer = store.retry_buffer_max_deltas;
    if (batch !== undefined && buffer !== undefined && batch > buffer) {
      issues.push({ path: [...path, 'retry_buffer_max_deltas'], message: `must be at least flush_max_deltas (${batch}), got ${buffer}` });
    }
  },
);

export const metricsSchema = section({
  consumer_labels: key(bool(), {
    doc: 'Add a `tokenwarden_consumer` label to `gen_ai_client_token_usage`, `tokenwarden_cost_usd_total` and `tokenwarden_exchanges_total`. One series per consumer: enable only when consumers are few.',
    default: false,
  }),
  max_label_values: key(int(1, 1_000_000), {
    doc: 'Distinct model names (request and response models together) and, with `consumer_labels`, consumer ids used as label values. Both come from traffic; past the cap new values are reported as `(other)` and counted in `tokenwarden_metrics_label_overflow_total`, so `/metrics` stays bounded.',
    default: 1_000,
  }),
});

export const governanceSchema = section({
  lease_ms: key(duration(1_000, 86_400_000), {
    doc: 'A reservation not settled within this time expires (cancelled request, dead sidecar). Keep it above your longest response.',
    default: 600_000,
    type: 'duration 1 s-24 h',
    defaultText: '`600000` (10 min)',
  }),
  ledger_timeout_ms: key(duration(1, 60_000), {
    doc: 'Deadline of one ledger decision on the request path; past it `on_store_error` decides.',
    default: 50,
    type: 'duration',
  }),
  default_max_output_tokens: key(int(1, 10_000_000), { doc: 'Output tokens reserved when a request sets no maximum.', default: 4096, type: 'integer' }),
  max_output_tokens_by_model: key(
    list(
      obj(
        {
          provider: text({ minLength: 1, maxLength: MAX_GLOB_CHARS }),
          model: text({ minLength: 1, maxLength: MAX_GLOB_CHARS }),
          tokens: int(1, 10_000_000),
        },
        { required: ['model', 'tokens'] },
      ),
      { maxItems: 1_000 },
    ),
    {
      doc: 'Per-model output reservation when a request sets no maximum; the first match wins, else `default_max_output_tokens`.',
      default: [],
      type: 'list of `{provider?, model, tokens}` (globs)',
    },
  ),
  registry_poll_ms: key(duration(100, 3_600_000), {
    doc: 'How often budgets and catalog definitions created through the admin API are re-read.',
    default: 5_000,
    type: 'duration',
  }),
});

export const loggingSchema = section({
  level: key(oneOf(LOG_LEVELS), { doc: 'Minimum level written to stderr.', default: 'info', type: '`debug`, `info`, `warn` or `error`' }),
});

export const configSchema = obj(
  {
    grpc: grpcSchema,
    admin: adminSchema,
    metadata: metadataSchema,
    discovery: discoverySchema,
    consumer: consumerSchema,
    metering: meteringSchema,
    limits: limitsSchema,
    store: storeSchema,
    metrics: metricsSchema,
    telemetry: telemetrySchema,
    governance: governanceSchema,
    budgets: budgetsSchema,
    budget_templates: templatesSchema,
    ...catalogSections,
    logging: loggingSchema,
  },
  {
    check(doc, path, issues) {
      issues.push(...checkBudgetReferences(doc, path));
      issues.push(...checkCatalogReferences(doc, path));
    },
  },
);

/** The validated (partial) document, before defaults and secrets are applied. */
export type ConfigDocument = NonNullable<Out<typeof configSchema>>;
