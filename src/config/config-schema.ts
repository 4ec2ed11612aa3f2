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
  MAX_GLOB_CHARS,
  type Fields,
  type Issue,
  type ObjOptions,
  type ObjSchema,
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
    cert_file: filePath(),
    key_file: filePath(),
    ca_file: filePath(),
    require_client_cert: withDefault(bool(), false),
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
    provider: oneOf(PRICED_PROVIDERS),
    model: text({ minLength: 1, maxLength: MAX_GLOB_CHARS }),
    input_per_mtok: nonNegativeNumber(),
    cached_input_per_mtok: nonNegativeNumber(),
    cache_write_per_mtok: nonNegativeNumber(),
    output_per_mtok: nonNegativeNumber(),
    reasoning_per_mtok: nonNegativeNumber(),
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

const envName = (): Schema<string> =>
  text({ minLength: 1, maxLength: 256, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternHint: 'an environment variable name' });

/** `value` and `value_env` (read from the environment by the loader) exclude each other. */
function eitherValueOrEnv(value: string, env: string) {
  return (section: Record<string, unknown>, path: PathSegment[], issues: Issue[]): void => {
    if (section[value] !== undefined && section[env] !== undefined) {
      issues.push({ path: [...path, env], message: `give either ${value} or ${env}, not both` });
    }
  };
}

const redisSchema = obj(
  {
    url: text({ minLength: 1, maxLength: 4096, secret: true, pattern: /^rediss?:\/\/\S+$/, patternHint: 'a redis:// or rediss:// URL' }),
    url_env: envName(),
    cluster_nodes: list(address({ allowUnix: false, allowEmpty: false }), { maxItems: 64 }),
    sentinels: list(address({ allowUnix: false, allowEmpty: false }), { maxItems: 16 }),
    sentinel_master: text({ minLength: 1, maxLength: 256 }),
    key_prefix: text({ minLength: 1, maxLength: 64, pattern: /^[A-Za-z0-9_.:-]+$/, patternHint: 'letters, digits, ".", "_", ":" or "-"' }),
    connect_timeout_ms: duration(1),
    command_timeout_ms: duration(1),
    inventory_shards: int(1, MAX_INVENTORY_SHARDS),
  },
  { nullIsAbsent: true, check: eitherValueOrEnv('url', 'url_env') },
);

/** `admin.tokens`: named tokens with a role (ids unique; the loader resolves `token_env`). */
const adminTokensSchema = uniqueIds(
  list(
    obj(
      {
        name: text({ minLength: 1, maxLength: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9_.@-]*$/, patternHint: 'a name (letters, digits, "_", ".", "@" or "-")' }),
        token: text({ minLength: 1, maxLength: 4096, secret: true }),
        token_env: envName(),
        role: oneOf(['admin', 'viewer']),
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

const section = <F extends Fields>(fields: F, check?: ObjOptions<F, never>['check']): ObjSchema<F, never> =>
  obj(fields, check === undefined ? { nullIsAbsent: true } : { nullIsAbsent: true, check });

export const configSchema = obj(
  {
  grpc: section({
    address: address({ allowUnix: true, allowEmpty: false }),
    tls: tlsSchema,
    max_receive_message_bytes: size(),
    shutdown_grace_ms: duration(),
    skip_non_llm: bool(),
    max_concurrent_streams: int(1, 1_000_000),
    observability_idle_timeout_ms: duration(1_000),
    rotate_connections: bool(),
  }),
  admin: section(
    {
      address: address({ allowUnix: false, allowEmpty: true }),
      token: text({ minLength: 1, maxLength: 4096, secret: true }),
      token_env: envName(),
      tokens: adminTokensSchema,
    },
    eitherValueOrEnv('token', 'token_env'),
  ),
  metadata: section({
    namespace: text({ minLength: 1, maxLength: 128, pattern: /^[A-Za-z0-9_.-]+$/, patternHint: 'letters, digits, ".", "_" or "-"' }),
    ai_gateway_compat: bool(),
    model_header: text({ maxLength: 256, pattern: /^(?:[a-z0-9!#$%&'*+.^_`|~-]+)?$/, patternHint: `"" or ${HEADER_HINT}`, lowercase: true }),
  }),
  discovery: section({
    self_hosted: list(
      obj(
        {
          host: text({
            minLength: 1,
            maxLength: MAX_GLOB_CHARS,
            pattern: /^[a-z0-9.*_\-:[\]]+$/,
            patternHint: 'a host[:port] glob (letters, digits, ".", "-", ":", "*")',
            lowercase: true,
          }),
          provider: oneOf(['vllm', 'ollama', 'openai_compatible']),
        },
        { required: ['host', 'provider'] },
      ),
      { maxItems: 1000 },
    ),
    host_name_conventions: bool(),
  }),
  consumer: section(
    {
      resolvers: list(resolverSchema, { maxItems: 16 }),
      fingerprint_secret: text({ minLength: 1, maxLength: 4096, secret: true }),
      /** Name of the environment variable holding the secret; resolved by the loader. */
      fingerprint_secret_env: envName(),
    },
    eitherValueOrEnv('fingerprint_secret', 'fingerprint_secret_env'),
  ),
  metering: section({
    inject_stream_usage: bool(),
    max_exact_tokenize_bytes: size(),
    max_stream_text_bytes: size(),
    price_overrides: list(priceOverrideSchema, { maxItems: 10_000 }),
  }),
  limits: section({ max_request_body_bytes: size(), max_response_body_bytes: size(), max_decoded_stream_bytes: size(), max_stream_event_bytes: size(), max_stream_frame_bytes: size() }),
  store: section(
    {
      type: oneOf(['memory', 'redis']),
      redis: redisSchema,
      memory_max_records: int(1, 10_000_000),
      retention_hours: int(1, 24 * 400),
      flush_interval_ms: duration(10, 600_000),
      flush_max_deltas: int(1, 1_000_000),
      retry_buffer_max_deltas: int(1, 10_000_000),
    },
    (store, path, issues) => {
      const batch = store.flush_max_deltas;
      const buffer = store.retry_buffer_max_deltas;
      if (batch !== undefined && buffer !== undefined && batch > buffer) {
        issues.push({ path: [...path, 'retry_buffer_max_deltas'], message: `must be at least flush_max_deltas (${batch}), got ${buffer}` });
      }
    },
  ),
  metrics: section({ consumer_labels: bool(), max_label_values: int(1, 1_000_000) }),
  telemetry: telemetrySchema,
  governance: section({
    lease_ms: duration(1_000, 86_400_000),
    ledger_timeout_ms: duration(1, 60_000),
    default_max_output_tokens: int(1, 10_000_000),
    max_output_tokens_by_model: list(
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
    registry_poll_ms: duration(100, 3_600_000),
  }),
  budgets: budgetsSchema,
  budget_templates: templatesSchema,
  ...catalogSections,
  logging: section({ level: oneOf(LOG_LEVELS) }),
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
