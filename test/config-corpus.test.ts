/**
 * The corpus of broken configuration files (test/fixtures/config/broken): every file is refused
 * with a ConfigError (never another exception) whose every issue names the file, its line and the
 * key path. Every file must be listed here, and every section of the schema must have a broken
 * file, so the corpus grows with the configuration.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigFile } from '../src/config/load.js';
import { configSchema } from '../src/config/config-schema.js';

const DIR = fileURLToPath(new URL('./fixtures/config/broken/', import.meta.url));
const ENV = { TW_TEST_FINGERPRINT_SECRET: 'from-env' };

/** Per file: every issue, in order, as [key path, a fragment of its message]. */
const CORPUS: Record<string, [path: string, message: string][]> = {
  'admin-open-without-token.yaml': [['admin.token', 'is required when admin.address (0.0.0.0:9090) is not a loopback address']],
  'admin-tokens-invalid.yaml': [
    ['admin.tokens[0].role', 'expected one of admin, viewer, got "root"'],
    ['admin.tokens[2].token', 'missing required key (or token_env)'],
    ['admin.tokens[3].token_env', 'give either token or token_env, not both'],
    ['admin.tokens[4].name', 'got "-dash"'],
    ['admin.tokens[1].name', 'duplicate name; first used at admin.tokens[0]'],
    ['admin.tokens[3].token_env', 'environment variable TW_TOKEN is not set'],
  ],
  'admin-tokens-same-value.yaml': [['admin.tokens[1].token', 'is the same token as admin.tokens[0]']],
  'admin-unix-socket.yaml': [['admin.address', 'Unix sockets are not supported']],
  'alias-bomb.yaml': [
    ['f[0][2][0][5][4][7]', 'nested too deeply or expands too many aliases'],
    ['a', 'unknown key'],
    ['b', 'unknown key'],
    ['c', 'unknown key'],
    ['d', 'unknown key'],
    ['e', 'unknown key'],
    ['f', 'unknown key'],
    ['g', 'unknown key'],
  ],
  'bad-address.yaml': [['grpc.address', 'IPv6 addresses need brackets']],
  'bad-duration.yaml': [['grpc.shutdown_grace_ms', 'duration such as "500ms"']],
  'bad-enum.yaml': [['logging.level', 'got "verbose"']],
  'bad-port.yaml': [['admin.address', 'from 1 to 65535, got "70000"']],
  'bad-size.yaml': [['limits.max_request_body_bytes', 'size such as "512KiB"']],
  'budget-references.yaml': [
    ['budgets[0].id', 'template "per-team", which budget_templates does not define'],
    ['budgets[1].id', 'groups by model; expected per-model:<provider>/<model>'],
  ],
  'budget-templates-invalid.yaml': [
    ['budget_templates[0].group_by', 'got "team"'],
    ['budget_templates[1].group_by', 'missing required key'],
    ['budget_templates[2].limits[0].week_start', 'got "funday"'],
    ['budget_templates[3].group_by', 'got "label:"'],
    ['budget_templates[4].id', 'duplicate id; first used at budget_templates[0]'],
  ],
  'budgets-empty-limits.yaml': [
    ['budgets[0].limits', 'at least 1 item'],
    ['budget_templates[0].limits', 'at least 1 item'],
  ],
  'budgets-invalid.yaml': [
    ['budgets[0].limits[0].cost_usd', 'one metric per limit'],
    ['budgets[1].limits[0].seconds', 'missing required key (per: rolling)'],
    ['budgets[2].limits[0].timezone', 'unknown time zone "Mars/Olympus_Mons"'],
    ['budgets[3].mode', 'got "block"'],
    ['budgets[4].select.providers[0]', 'did you mean "openai"?'],
    ['budgets[5].id', 'got "bad id"'],
    ['budgets[6].limits', 'missing required key'],
  ],
  'catalog-references.yaml': [
    ['consumers[0].owner', 'owner "nobody" is not defined in owners'],
    ['consumers[1].budget_templates[0]', 'template "no-such-template" is not defined in budget_templates'],
    ['consumer_rules[0].owner', 'owner "ghost-team" is not defined in owners'],
    ['policies.owners.ghost', 'owner "ghost" is not defined in owners'],
  ],
  'consumer-rules-invalid.yaml': [
    ['consumer_rules[0].match', 'missing required key'],
    ['consumer_rules[1].priority', 'expected a whole number, got 1.5'],
    ['consumer_rules[4].match', 'must be at most 256 characters'],
    ['consumer_rules[3].id', 'duplicate id; first used at consumer_rules[2]'],
  ],
  'consumers-invalid.yaml': [
    ['consumers[0].status', 'got "active"'],
    ['consumers[1].labels["bad label!"]', 'expected a label name'],
    ['consumers[2].display_name', 'must not be empty'],
    ['consumers[3].id', 'missing required key'],
    ['consumers[4].id', 'duplicate id; first used at consumers[0]'],
  ],
  'discovery-invalid.yaml': [
    ['discovery.self_hosted[0].host', 'got "http://vllm.local"'],
    ['discovery.self_hosted[1].provider', 'got "tgi"'],
  ],
  'duplicate-key.yaml': [['metadata.namespace', 'duplicate key (first defined at line 2)']],
  'glob-too-long.yaml': [['discovery.self_hosted[0].host', 'must be at most 256 characters']],
  'governance-invalid.yaml': [
    ['governance.lease_ms', 'must be between 1000 and 86400000 ms, got 10 ms'],
    ['governance.max_output_tokens_by_model[0].tokens', 'missing required key'],
  ],
  'invalid-resolvers.yaml': [
    ['consumer.resolvers[2].header', 'missing required key'],
    ['consumer.resolvers[3].type', 'got "spiffe"'],
    ['consumer.resolvers[4].headers', 'at least 1 item'],
    ['consumer.resolvers[5]', 'expected a mapping'],
  ],
  'invalid-yaml.yaml': [['', 'invalid YAML']],
  'limits-invalid.yaml': [
    ['limits.max_request_body_bytes', 'got "lots"'],
    ['limits.max_response_body_bytes', 'got 0 bytes'],
  ],
  'metadata-invalid.yaml': [
    ['metadata.namespace', 'got "bad namespace!"'],
    ['metadata.model_header', 'got "X Model"'],
  ],
  'metrics-wrong-type.yaml': [['metrics.consumer_labels', 'expected true or false, got 1']],
  'missing-env.yaml': [['consumer.fingerprint_secret_env', 'TW_TEST_SURELY_UNSET_VARIABLE is not set']],
  'non-mapping-root.yaml': [['', 'must be a mapping of sections']],
  'owners-invalid.yaml': [
    ['owners[0].id', '"global" is reserved'],
    ['owners[1].id', 'got "bad id!"'],
    ['owners[2].id', 'missing required key'],
    ['owners[4].id', 'duplicate id; first used at owners[3]'],
  ],
  'policies-invalid.yaml': [
    ['policies.unsanctioned.mode', 'got "block"'],
    ['policies.unsanctioned.allow[1]', 'must not be empty'],
    ['policies.owners.global', '"global" is reserved'],
    ['policies.owners.payments.mode', 'missing required key'],
  ],
  'price-overrides.yaml': [
    ['metering.price_overrides[0].provider', 'did you mean "openai"?'],
    ['metering.price_overrides[1]', 'sets no price'],
    ['metering.price_overrides[2].output_per_mtok', 'got -1'],
  ],
  'redis-url-and-env.yaml': [
    ['store.redis.url_env', 'give either url or url_env, not both'],
    ['store.redis.url_env', 'environment variable TW_REDIS_URL is not set'],
  ],
  'relative-unix-socket.yaml': [['grpc.address', 'absolute socket path']],
  'resources-invalid.yaml': [
    ['resources[0].provider', 'unknown provider "opneai"; did you mean "openai"?'],
    ['resources[1].sanctioned', 'got "yes"'],
    ['resources[2].price', 'sets no price'],
    ['resources[3].price.input_mtok', 'got -3'],
    ['resources[5].model', 'duplicate model; first used at resources[4]'],
  ],
  'secret-and-env.yaml': [['consumer.fingerprint_secret_env', 'either fingerprint_secret or fingerprint_secret_env']],
  'section-not-mapping.yaml': [['metering', 'expected a mapping, got 42']],
  'several-errors.yaml': [
    ['grpc.address', 'the port is missing'],
    ['grpc.max_receive_message_bytes', 'got -5 bytes'],
    ['admin.address', 'got "0"'],
    ['metering.max_stream_text_bytes', 'got 1.5'],
    ['metering.inject_stream_usage', 'got "sometimes"'],
    ['logging.level', 'got "INFO"'],
  ],
  'store-batch-over-buffer.yaml': [['store.retry_buffer_max_deltas', 'must be at least flush_max_deltas (1000), got 10']],
  'store-invalid.yaml': [
    ['store.type', 'got "postgres"'],
    ['store.memory_max_records', 'got 0'],
    ['store.flush_interval_ms', 'got 5 ms'],
    ['store.redis.url', 'a redis:// or rediss:// URL'],
    ['store.redis.key_prefix', 'got "bad prefix"'],
    ['store.redis.cluster_nodes[0]', 'the port is missing'],
    ['store.redis.inventory_shards', 'got 1000'],
  ],
  'telemetry-invalid.yaml': [
    ['telemetry.otlp.endpoint', 'expected "" or an http:// or https:// URL'],
    ['telemetry.otlp.protocol', 'did you mean "http/protobuf"?'],
    ['telemetry.otlp.headers["bad header"]', 'expected an HTTP header name'],
    ['telemetry.otlp.headers.authorization', 'must not contain control characters, got a string'],
    ['telemetry.metrics.export_interval_ms', 'must be between 100 and 86400000 ms, got 5 ms'],
    ['telemetry.traces.sample_ratio', 'expected a number from 0 to 1, got 1.5'],
    ['telemetry.traces.max_queue_sise', 'did you mean "max_queue_size"?'],
  ],
  'tls-incomplete.yaml': [['grpc.tls.key_file', 'missing required key']],
  'unknown-key.yaml': [['grpc.adress', 'did you mean "address"?']],
  'unknown-section.yaml': [['loging', 'did you mean "logging"?']],
  'wrong-type.yaml': [['grpc.skip_non_llm', 'expected true or false, got "yes"']],
  'zero-size.yaml': [['metering.max_stream_text_bytes', 'got 0 bytes']],
};

function refusal(file: string): ConfigError {
  try {
    loadConfigFile(file, ENV);
  } catch (error) {
    // Anything but a ConfigError (a TypeError from a half-validated entry) is a loader bug.
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`${file} was accepted`);
}

describe('broken configuration corpus', () => {
  it('lists every file of the corpus, and only those', () => {
    expect(readdirSync(DIR).sort()).toEqual(Object.keys(CORPUS).sort());
  });

  it('has a broken file for every section of the schema', () => {
    const sections = Object.keys((configSchema as unknown as { fields: Record<string, unknown> }).fields);
    const covered = new Set(Object.values(CORPUS).flatMap((issues) => issues.map(([path]) => path.split(/[.[]/)[0])));
    expect(sections.filter((s) => !covered.has(s))).toEqual([]);
  });

  it.each(Object.entries(CORPUS))('%s is refused, each issue naming the file, line and key path', (name, expected) => {
    const file = `${DIR}${name}`;
    const error = refusal(file);
    expect(error.issues.map((i) => [i.path, i.message])).toEqual(expected.map(([path, message]) => [path, expect.stringContaining(message)]));
    const lines = error.message.split('\n');
    expect(lines).toHaveLength(expected.length);
    error.issues.forEach((issue, index) => {
      expect(issue.source).toBe(file);
      const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.column ?? 1}`;
      expect(lines[index]).toBe(issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`);
      // Only whole-document problems may lack a line: a key path always has one.
      if (issue.path !== '') expect(issue.line).toBeGreaterThan(0);
    });
  });
});
