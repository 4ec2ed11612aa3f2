import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, type ConfigIssue } from '../src/config/errors.js';
import { applyOverrides, FINGERPRINT_SECRET_ENV, loadConfigFile, parseConfig } from '../src/config/load.js';
import { parseAddress, parseDuration, parseSize } from '../src/config/schema.js';
import { PUBLIC_DEV_FINGERPRINT_SECRET, defaultConfig } from '../src/config/types.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/config/${name}`, import.meta.url));

/** The ConfigError thrown by `load`, failing the test if it returns or throws something else. */
function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

interface Expected {
  path: string;
  message: RegExp;
  line?: number;
}

const broken: Record<string, Expected[]> = {
  'unknown-key.yaml': [{ path: 'grpc.adress', message: /unknown key; did you mean "address"/, line: 2 }],
  'unknown-section.yaml': [{ path: 'loging', message: /did you mean "logging"/, line: 1 }],
  'wrong-type.yaml': [{ path: 'grpc.skip_non_llm', message: /expected true or false, got "yes"/, line: 2 }],
  'section-not-mapping.yaml': [{ path: 'metering', message: /expected a mapping, got 42/, line: 1 }],
  'bad-address.yaml': [{ path: 'grpc.address', message: /IPv6 addresses need brackets/, line: 2 }],
  'bad-port.yaml': [{ path: 'admin.address', message: /port must be a number from 1 to 65535, got "70000"/ }],
  'relative-unix-socket.yaml': [{ path: 'grpc.address', message: /absolute socket path/ }],
  'admin-unix-socket.yaml': [{ path: 'admin.address', message: /Unix sockets are not supported/ }],
  'bad-enum.yaml': [{ path: 'logging.level', message: /expected one of debug, info, warn, error, got "verbose"/ }],
  'bad-size.yaml': [{ path: 'limits.max_request_body_bytes', message: /size such as "512KiB"/ }],
  'zero-size.yaml': [{ path: 'metering.max_stream_text_bytes', message: /must be between 1 and \d+ bytes, got 0 bytes/ }],
  'bad-duration.yaml': [{ path: 'grpc.shutdown_grace_ms', message: /duration such as "500ms"/ }],
  'duplicate-key.yaml': [{ path: 'metadata.namespace', message: /duplicate key \(first defined at line 2\)/, line: 4 }],
  'missing-env.yaml': [{ path: 'consumer.fingerprint_secret_env', message: /TW_TEST_SURELY_UNSET_VARIABLE is not set/, line: 2 }],
  'secret-and-env.yaml': [{ path: 'consumer.fingerprint_secret_env', message: /either fingerprint_secret or fingerprint_secret_env/ }],
  'invalid-resolvers.yaml': [
    { path: 'consumer.resolvers[2].header', message: /missing required key/, line: 6 },
    { path: 'consumer.resolvers[3].type', message: /expected one of header, xfcc, attribute, api_key, got "spiffe"/, line: 7 },
    { path: 'consumer.resolvers[4].headers', message: /at least 1 item/, line: 9 },
    { path: 'consumer.resolvers[5]', message: /expected a mapping, got "x-consumer-id"/, line: 10 },
  ],
  'non-mapping-root.yaml': [{ path: '', message: /document must be a mapping of sections.*got a list/ }],
  'invalid-yaml.yaml': [{ path: '', message: /invalid YAML/ }],
  'tls-incomplete.yaml': [
    { path: 'grpc.tls.key_file', message: /missing required key/ },
  ],
  'price-overrides.yaml': [
    { path: 'metering.price_overrides[0].provider', message: /did you mean "openai"/, line: 3 },
    { path: 'metering.price_overrides[1]', message: /sets no price/, line: 6 },
    { path: 'metering.price_overrides[2].output_per_mtok', message: /expected a number >= 0, got -1/, line: 10 },
  ],
  'glob-too-long.yaml': [{ path: 'discovery.self_hosted[0].host', message: /at most 256 characters/ }],
  'several-errors.yaml': [
    { path: 'grpc.address', message: /the port is missing/, line: 2 },
    { path: 'grpc.max_receive_message_bytes', message: /got -5 bytes/, line: 3 },
    { path: 'admin.address', message: /got "0"/, line: 5 },
    { path: 'metering.max_stream_text_bytes', message: /1\.5/, line: 7 },
    { path: 'metering.inject_stream_usage', message: /expected true or false, got "sometimes"/, line: 8 },
    { path: 'logging.level', message: /did you mean "info"/, line: 10 },
  ],
};

describe('broken configuration files', () => {
  const env = { TW_TEST_FINGERPRINT_SECRET: 'from-env' };

  it.each(Object.entries(broken))('%s is refused with the key path', (name, expected) => {
    const error = configError(() => loadConfigFile(fixture(`broken/${name}`), env));
    expect(error.issues).toHaveLength(expected.length);
    expected.forEach((want, index) => {
      const issue = error.issues[index] as ConfigIssue;
      expect(issue.source).toBe(fixture(`broken/${name}`));
      expect(issue.path).toBe(want.path);
      expect(issue.message).toMatch(want.message);
      if (want.line !== undefined) expect(issue.line).toBe(want.line);
    });
  });

  it('formats each issue as file:line:column: path: message', () => {
    const error = configError(() => loadConfigFile(fixture('broken/unknown-key.yaml')));
    expect(error.message).toBe(`${fixture('broken/unknown-key.yaml')}:2:3: grpc.adress: unknown key; did you mean "address"?`);
  });

  it('points YAML syntax errors at their line', () => {
    const error = configError(() => loadConfigFile(fixture('broken/invalid-yaml.yaml')));
    expect(error.issues[0]?.line).toBeGreaterThanOrEqual(2);
  });

  it('reports a missing file as a ConfigError naming the file', () => {
    const error = configError(() => loadConfigFile(fixture('does-not-exist.yaml')));
    expect(error.message).toContain('does-not-exist.yaml: file not found');
  });

  it('reports a directory instead of a file', () => {
    expect(configError(() => loadConfigFile(fixture('valid'))).message).toContain('is a directory');
  });

  it('lists every allowed key when an unknown key is not close to any', () => {
    const error = configError(() => parseConfig('limits:\n  zzz: 1\n', 'x.yaml'));
    expect(error.message).toBe('x.yaml:2:3: limits.zzz: unknown key; allowed keys: max_request_body_bytes, max_response_body_bytes, max_decoded_stream_bytes, max_stream_event_bytes, max_stream_frame_bytes');
  });

  it('suggests the snake_case key for camelCase and kebab-case spellings', () => {
    const error = configError(() => parseConfig('grpc:\n  shutdownGraceMs: 5\n  skip-non-llm: true\n', 'x.yaml'));
    expect(error.issues.map((issue) => issue.message)).toEqual([
      'unknown key; did you mean "shutdown_grace_ms"?',
      'unknown key; did you mean "skip_non_llm"?',
    ]);
  });

  it('never echoes the fingerprint secret in a message', () => {
    const error = configError(() => parseConfig('consumer:\n  fingerprint_secret: "hunter2\\u0007"\n', 'x.yaml'));
    expect(error.issues[0]?.path).toBe('consumer.fingerprint_secret');
    expect(error.message).not.toContain('hunter2');
  });

  it('quotes odd keys so control characters cannot reach the terminal', () => {
    const error = configError(() => parseConfig('"evil\\u001b[31m": 1\n', 'x.yaml'));
    expect(error.issues[0]?.path).toBe('["evil\\u001b[31m"]');
    expect(error.message).not.toContain('\u001b');
  });

  it('rejects alias bombs without expanding them', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) levels.push(`l${i}: &l${i} [${Array(10).fill(i === 1 ? '*a' : `*l${i - 1}`).join(', ')}]`);
    const error = configError(() => parseConfig(`${levels.join('\n')}\n`, 'bomb.yaml'));
    expect(error.message).toContain('expands too many aliases');
  });

  it('rejects deeply nested documents', () => {
    const deep = `grpc: ${'['.repeat(3000)}${']'.repeat(3000)}\n`;
    expect(configError(() => parseConfig(deep, 'deep.yaml')).issues.length).toBeGreaterThan(0);
  });

  it('rejects an empty TOKENWARDEN_FINGERPRINT_SECRET', () => {
    const error = configError(() => parseConfig('', 'x.yaml', { [FINGERPRINT_SECRET_ENV]: '' }));
    expect(error.message).toContain(`${FINGERPRINT_SECRET_ENV}: is set but empty`);
  });

  it('refuses the published development fingerprint secret, wherever it comes from', () => {
    const inFile = configError(() => parseConfig(`consumer:\n  fingerprint_secret: ${PUBLIC_DEV_FINGERPRINT_SECRET}\n`, 'x.yaml', {}));
    expect(inFile.issues).toEqual([expect.objectContaining({ path: 'consumer.fingerprint_secret', line: 2, message: expect.stringMatching(/published development value/) })]);
    const fromEnv = configError(() => parseConfig('consumer:\n  fingerprint_secret_env: S\n', 'x.yaml', { S: PUBLIC_DEV_FINGERPRINT_SECRET }));
    expect(fromEnv.issues[0]?.path).toBe('consumer.fingerprint_secret');
    const override = configError(() => parseConfig('', 'x.yaml', { [FINGERPRINT_SECRET_ENV]: PUBLIC_DEV_FINGERPRINT_SECRET }));
    expect(override.message).toContain(`${FINGERPRINT_SECRET_ENV}: is the published development value`);
    for (const error of [inFile, fromEnv, override]) expect(error.message).not.toContain(PUBLIC_DEV_FINGERPRINT_SECRET);
  });

  it('validates grpc.max_concurrent_streams (a whole number from 1)', () => {
    expect(parseConfig('grpc:\n  max_concurrent_streams: 3\n', 'x.yaml', {}).grpc.max_concurrent_streams).toBe(3);
    expect(defaultConfig().grpc.max_concurrent_streams).toBe(10_000);
    for (const bad of ['0', '-1', '1.5', 'many']) {
      expect(configError(() => parseConfig(`grpc:\n  max_concurrent_streams: ${bad}\n`, 'x.yaml', {})).issues[0]?.path).toBe('grpc.max_concurrent_streams');
    }
  });

  it('throws only ConfigError for arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseConfig(text, 'fuzz.yaml', {});
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('throws only ConfigError for arbitrary YAML structures under real section names', () => {
    const section = fc.constantFrom('grpc', 'admin', 'metadata', 'discovery', 'consumer', 'metering', 'limits', 'logging');
    const key = fc.constantFrom('address', 'tls', 'level', 'resolvers', 'self_hosted', 'price_overrides', 'namespace', 'max_request_body_bytes', 'type', 'header');
    const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(key, tie('value'), { maxKeys: 3 })),
    }));
    fc.assert(
      fc.property(fc.dictionary(section, value, { maxKeys: 4 }), (doc) => {
        try {
          parseConfig(stringify(doc), 'fuzz.yaml', {});
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('valid configuration files', () => {
  it('an empty file (comments only) gives exactly the defaults', () => {
    expect(loadConfigFile(fixture('valid/empty.yaml'), {})).toEqual(defaultConfig());
  });

  it('an empty section (`grpc:` with nothing under it) keeps that section\'s defaults', () => {
    expect(parseConfig('grpc:\nlogging:\n', 'x.yaml', {})).toEqual(defaultConfig());
  });

  it('merges a partial file over the defaults; lists replace', () => {
    const config = loadConfigFile(fixture('valid/partial.yaml'), {});
    const defaults = defaultConfig();
    expect(config.grpc).toEqual({ ...defaults.grpc, address: '0.0.0.0:50051', shutdown_grace_ms: 30_000 });
    expect(config.consumer.resolvers).toEqual([{ type: 'xfcc' }, { type: 'header', header: 'x-team-id' }]);
    // No secret configured: the server generates one (see test/security.test.ts).
    expect(config.consumer.fingerprint_secret).toBe('');
    expect(config.metering).toEqual({ ...defaults.metering, max_exact_tokenize_bytes: 512 * 1024 });
    expect(config.logging.level).toBe('debug');
    expect(config.admin).toEqual(defaults.admin);
    expect(config.limits).toEqual(defaults.limits);
  });

  it('loads a file that sets every key', () => {
    const config = loadConfigFile(fixture('valid/full.yaml'), { TW_TEST_FINGERPRINT_SECRET: 'from-env' });
    expect(config).toEqual({
      grpc: {
        address: 'unix:/run/tokenwarden/extproc.sock',
        tls: {
          cert_file: '/etc/tokenwarden/tls.crt',
          key_file: '/etc/tokenwarden/tls.key',
          ca_file: '/etc/tokenwarden/ca.crt',
          require_client_cert: true,
        },
        max_receive_message_bytes: 128 * 1024 * 1024,
        shutdown_grace_ms: 1500,
        skip_non_llm: false,
        max_concurrent_streams: 5000,
        observability_idle_timeout_ms: 600_000,
        rotate_connections: false,
      },
      admin: { address: '[::1]:9901', token: 'admin-token', tokens: [] },
      metadata: { namespace: 'com.example.tokenwarden', ai_gateway_compat: true, model_header: 'x-requested-model' },
      discovery: {
        self_hosted: [
          { host: '*.vllm.svc.cluster.local:8000', provider: 'vllm' },
          { host: 'gpu-box-1:11434', provider: 'ollama' },
        ],
        host_name_conventions: false,
      },
      consumer: {
        resolvers: [
          { type: 'header', header: 'x-consumer-id' },
          { type: 'attribute', attribute: 'source.principal' },
          { type: 'api_key', headers: ['authorization', 'x-api-key'] },
        ],
        fingerprint_secret: 'from-env',
      },
      metering: {
        inject_stream_usage: false,
        max_exact_tokenize_bytes: 1_000_000,
        max_stream_text_bytes: 2 * 1024 * 1024,
        price_overrides: [
          { provider: 'openai', model: 'gpt-4o*', input_per_mtok: 2.5, cached_input_per_mtok: 1.25, output_per_mtok: 10 },
          { provider: 'vllm', model: 'llama-3*', input_per_mtok: 0, output_per_mtok: 0 },
        ],
      },
      limits: { max_request_body_bytes: 32 * 1024 * 1024, max_response_body_bytes: 8_388_608, max_decoded_stream_bytes: 134_217_728, max_stream_event_bytes: 2 * 1024 * 1024, max_stream_frame_bytes: 8 * 1024 * 1024 },
      store: {
        type: 'redis',
        redis: {
          url: 'redis://:pw@redis.internal:6379/2',
          cluster_nodes: ['10.0.0.1:7000', '10.0.0.2:7000'],
          sentinels: ['10.0.0.5:26379'],
          sentinel_master: 'inventory',
          key_prefix: 'tw-prod',
          connect_timeout_ms: 5000,
          command_timeout_ms: 750,
          inventory_shards: 32,
        },
        memory_max_records: 5000,
        retention_hours: 48,
        flush_interval_ms: 2000,
        flush_max_deltas: 200,
        retry_buffer_max_deltas: 20_000,
      },
      metrics: { consumer_labels: true, max_label_values: 500 },
      telemetry: {
        service_name: 'tokenwarden-edge',
        otlp: { endpoint: 'https://otel-collector.observability:4317', protocol: 'grpc', headers: { 'x-tenant': 'payments' }, timeout_ms: 5_000 },
        metrics: { export_interval_ms: 30_000 },
        traces: { enabled: true, sample_ratio: 0.25, max_queue_size: 4096, export_interval_ms: 2_000 },
      },
      governance: {
        lease_ms: 120_000,
        ledger_timeout_ms: 80,
        default_max_output_tokens: 2048,
        max_output_tokens_by_model: [{ provider: 'openai', model: 'o3*', tokens: 32768 }],
        registry_poll_ms: 10_000,
      },
      budgets: [
        {
          id: 'org-monthly',
          selector: { providers: ['openai'] },
          limits: [{ metric: 'cost_micro_usd', max: 500_000_000, window: { kind: 'month', timezone: 'Europe/Berlin', weekStart: 1 } }],
          mode: 'enforce',
          onStoreError: 'open',
          stopStreams: false,
          source: 'config',
        },
      ],
      budget_templates: [
        {
          id: 'per-consumer',
          selector: {},
          groupBy: 'consumer',
          limits: [{ metric: 'total_tokens', max: 1_000_000, window: { kind: 'day', timezone: 'UTC', weekStart: 1 } }],
          mode: 'monitor',
          onStoreError: 'open',
          stopStreams: false,
          source: 'config',
        },
      ],
      owners: [],
      consumers: [],
      consumer_rules: [],
      resources: [],
      policies: [],
      logging: { level: 'warn' },
    });
  });

  it('refuses an admin API on a non-loopback address without a token', () => {
    expect(() => parseConfig('admin:\n  address: 0.0.0.0:9090\n', 'x.yaml', {})).toThrow(/admin\.token: is required when admin\.address \(0\.0\.0\.0:9090\) is not a loopback address/);
    expect(parseConfig('admin:\n  address: 0.0.0.0:9090\n  token: s3cret\n', 'x.yaml', {}).admin.token).toBe('s3cret');
    expect(parseConfig('admin:\n  address: 127.0.0.2:9090\n', 'x.yaml', {}).admin.token).toBe('');
    // The same loopback test as the server's: any spelling of ::1, IPv4-mapped 127/8.
    for (const address of ['[0:0:0:0:0:0:0:1]:9090', '[::ffff:127.0.0.1]:9090', 'localhost:9090']) {
      expect(parseConfig(`admin:\n  address: "${address}"\n`, 'x.yaml', {}).admin.address).toBe(address);
    }
    expect(() => parseConfig('admin:\n  address: "[::]:9090"\n', 'x.yaml', {})).toThrow(/is not a loopback address/);
    expect(() => applyOverrides(defaultConfig(), [{ path: 'admin.address', value: '0.0.0.0:9090', origin: '--admin-address' }])).toThrow(/--admin-address: admin\.token: is required/);
  });

  it('reads secrets from the environment variables named by *_env keys', () => {
    const text = 'admin:\n  token_env: TOKEN\nstore:\n  redis:\n    url_env: URL\n';
    const config = parseConfig(text, 'x.yaml', { TOKEN: 't', URL: 'rediss://r:6380' });
    expect(config.admin.token).toBe('t');
    expect(config.store.redis.url).toBe('rediss://r:6380');
    expect(() => parseConfig(text, 'x.yaml', { TOKEN: 't' })).toThrow(/store\.redis\.url_env: environment variable URL is not set/);
    expect(() => parseConfig('admin:\n  token: a\n  token_env: B\n', 'x.yaml', {})).toThrow(/admin\.token_env: give either token or token_env, not both/);
  });

  it('TOKENWARDEN_FINGERPRINT_SECRET overrides the file and fingerprint_secret_env', () => {
    const env = { TW_TEST_FINGERPRINT_SECRET: 'from-file-env', [FINGERPRINT_SECRET_ENV]: 'from-override' };
    expect(loadConfigFile(fixture('valid/full.yaml'), env).consumer.fingerprint_secret).toBe('from-override');
    expect(parseConfig('consumer:\n  fingerprint_secret: in-file\n', 'x.yaml', env).consumer.fingerprint_secret).toBe('from-override');
    expect(parseConfig('', 'x.yaml', env).consumer.fingerprint_secret).toBe('from-override');
  });

  it('lower-cases header names and host globs (they are case-insensitive)', () => {
    const config = parseConfig(
      'metadata:\n  model_header: X-Model\ndiscovery:\n  self_hosted:\n    - host: "*.VLLM.Internal"\n      provider: vllm\n',
      'x.yaml',
      {},
    );
    expect(config.metadata.model_header).toBe('x-model');
    expect(config.discovery.self_hosted[0]?.host).toBe('*.vllm.internal');
  });

  it('returns a fresh object each time (callers may mutate it)', () => {
    const first = parseConfig('', 'x.yaml', {});
    first.consumer.resolvers.length = 0;
    first.grpc.address = 'changed:1';
    expect(parseConfig('', 'x.yaml', {})).toEqual(defaultConfig());
  });
});

describe('overrides (command-line flags)', () => {
  it('replaces the named keys after validating them', () => {
    const config = applyOverrides(defaultConfig(), [
      { path: 'grpc.address', value: 'unix:///tmp/tw.sock', origin: '--grpc-address' },
      { path: 'admin.address', value: '', origin: '--admin-address' },
      { path: 'logging.level', value: 'error', origin: '--log-level' },
    ]);
    expect(config.grpc.address).toBe('unix:///tmp/tw.sock');
    expect(config.admin.address).toBe('');
    expect(config.logging.level).toBe('error');
  });

  it('reports every bad override with its origin and key path', () => {
    const error = configError(() =>
      applyOverrides(defaultConfig(), [
        { path: 'grpc.address', value: 'localhost', origin: '--grpc-address' },
        { path: 'logging.level', value: 'loud', origin: '--log-level' },
      ]),
    );
    expect(error.message.split('\n')).toEqual([
      '--grpc-address: grpc.address: expected host:port, [ipv6]:port or unix:/path, got "localhost" (the port is missing)',
      '--log-level: logging.level: expected one of debug, info, warn, error, got "loud"',
    ]);
  });

  it('does not modify the config it was given', () => {
    const base = defaultConfig();
    applyOverrides(base, [{ path: 'grpc.address', value: '0.0.0.0:1', origin: '--grpc-address' }]);
    expect(base).toEqual(defaultConfig());
  });

  it('refuses paths that are not keys inside a section', () => {
    for (const path of ['grpc', 'grpc.nope', 'grpc.tls.cert_file']) {
      expect(configError(() => applyOverrides(defaultConfig(), [{ path, value: 'x', origin: 'test' }])).message).toBe(
        `test: ${path}: cannot be overridden`,
      );
    }
  });
});

describe('value syntaxes', () => {
  it.each([
    ['1024', 1024],
    ['512KiB', 524_288],
    ['64MiB', 67_108_864],
    ['1GiB', 1_073_741_824],
    ['1.5MiB', 1_572_864],
    ['10kb', 10_000],
    ['2 MB', 2_000_000],
    ['100B', 100],
  ])('size %s = %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each(['', 'MiB', '64 megs', '-1KiB', '1.5B', '1e6', '0x10'])('size %j is refused', (input) => {
    expect(typeof parseSize(input)).toBe('string');
  });

  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
  ])('duration %s = %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['10', '1.5ms', '10 seconds', 's', '-1s'])('duration %j is refused', (input) => {
    expect(typeof parseDuration(input)).toBe('string');
  });

  it.each([
    ['127.0.0.1:50051', { kind: 'tcp', host: '127.0.0.1', port: 50051 }],
    ['0.0.0.0:1', { kind: 'tcp', host: '0.0.0.0', port: 1 }],
    ['localhost:65535', { kind: 'tcp', host: 'localhost', port: 65535 }],
    ['[::1]:9090', { kind: 'tcp', host: '::1', port: 9090 }],
    ['unix:/run/tw.sock', { kind: 'unix', path: '/run/tw.sock' }],
    ['unix:///run/tw.sock', { kind: 'unix', path: '/run/tw.sock' }],
  ])('address %s is accepted', (input, parsed) => {
    expect(parseAddress(input, true)).toEqual(parsed);
  });

  it.each([
    ['127.0.0.1', /port is missing/],
    [':50051', /host is missing/],
    ['127.0.0.1:0', /1 to 65535/],
    ['127.0.0.1:http', /1 to 65535/],
    ['256.1.1.1:80', /not a valid IPv4 address/],
    ['[::g]:80', /not a valid IPv6 address/],
    ['::1:80', /need brackets/],
    ['bad_host!:80', /not a valid host name/],
    ['unix:run/tw.sock', /absolute socket path/],
    [`unix:/${'d'.repeat(120)}`, /107-byte/],
  ])('address %s is refused', (input, message) => {
    expect(parseAddress(input, true)).toMatch(message);
  });

  it('refuses Unix sockets where only TCP is supported', () => {
    expect(parseAddress('unix:/run/tw.sock', false)).toMatch(/not supported/);
  });
});
