/**
 * The Envoy config validator must reject what Envoy (1.31 API + marked newer fields) would reject,
 * point at the YAML path and line, and accept valid variants (JSON names, lower-case enums).
 */
import { describe, expect, it } from 'vitest';
import { validateEnvoyYaml, type ConfigIssue } from './validate.js';

const BASE = `admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 9901 }
static_resources:
  listeners:
  - name: main
    address:
      socket_address: { address: 127.0.0.1, port_value: 10000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config:
            name: routes
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: backend }
                typed_per_filter_config:
                  tw.ext_proc:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    disabled: true
          http_filters:
          - name: tw.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: { cluster_name: tokenwarden }
              failure_mode_allow: true
              message_timeout: 1s
              processing_mode:
                request_header_mode: SEND
                request_body_mode: BUFFERED
                response_header_mode: SEND
                response_body_mode: STREAMED
              allow_mode_override: true
              request_attributes: [source.address]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: tokenwarden
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: tokenwarden
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 50051 }
  - name: backend
    type: STRICT_DNS
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: backend.internal, port_value: 8000 }
`;

const EXT_PROC = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const PER_ROUTE =
  'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config';

/** BASE with one exact substring replaced (fails loudly if the substring is missing). */
function variant(from: string, to: string): string {
  expect(BASE.includes(from), `BASE contains ${JSON.stringify(from)}`).toBe(true);
  return BASE.replace(from, to);
}

function lineOf(source: string, needle: string): number {
  return source.slice(0, source.indexOf(needle)).split('\n').length;
}

function only(issues: ConfigIssue[]): ConfigIssue {
  expect(issues, JSON.stringify(issues, null, 2)).toHaveLength(1);
  return issues[0] as ConfigIssue;
}

const EXT_PROC_FIELDS = '              failure_mode_allow: true\n';

describe('validateEnvoyYaml: valid input', () => {
  it('accepts the base bootstrap', () => {
    expect(validateEnvoyYaml(BASE)).toEqual([]);
  });

  it('accepts JSON (camelCase) field names, lower-case enum names and enum numbers', () => {
    const src = variant('failure_mode_allow: true', 'failureModeAllow: true')
      .replace('request_body_mode: BUFFERED', 'request_body_mode: buffered')
      .replace('response_body_mode: STREAMED', 'response_body_mode: 1');
    expect(validateEnvoyYaml(src)).toEqual([]);
  });

  it('accepts a marked newer field and checks its value', () => {
    const ok = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              status_on_error: { code: ServiceUnavailable } # [Envoy >= 1.36]\n`);
    expect(validateEnvoyYaml(ok)).toEqual([]);
    const badValue = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              status_on_error: { code: Unavailable } # [Envoy >= 1.36]\n`);
    expect(only(validateEnvoyYaml(badValue)).message).toMatch(/"Unavailable" is not a value of envoy\.type\.v3\.StatusCode/);
  });

  it('accepts a marked field it knows nothing about (absent from the snapshot)', () => {
    const src = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              some_future_option: 3 # [Envoy >= 1.40]\n`);
    expect(validateEnvoyYaml(src)).toEqual([]);
  });

  it('accepts a marked FULL_DUPLEX_STREAMED body mode with its trailer mode SEND', () => {
    const src = variant(
      'response_body_mode: STREAMED',
      'response_body_mode: FULL_DUPLEX_STREAMED # [Envoy >= 1.34]\n                response_trailer_mode: SEND',
    );
    expect(validateEnvoyYaml(src)).toEqual([]);
  });
});

describe('validateEnvoyYaml: schema errors', () => {
  it('reports an unknown key with its path and line', () => {
    const src = variant('failure_mode_allow: true', 'failure_mode_allowed: true');
    expect(only(validateEnvoyYaml(src))).toEqual({
      path: `${EXT_PROC}.failure_mode_allowed`,
      line: lineOf(src, 'failure_mode_allowed'),
      message: 'unknown field "failure_mode_allowed" in envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
    });
  });

  it('reports a field given under both of its names', () => {
    const src = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              failureModeAllow: false\n`);
    expect(only(validateEnvoyYaml(src)).message).toMatch(/given twice/);
  });

  it('reports an enum value that does not exist, listing the valid ones', () => {
    const issue = only(validateEnvoyYaml(variant('response_body_mode: STREAMED', 'response_body_mode: STREAMING')));
    expect(issue.path).toBe(`${EXT_PROC}.processing_mode.response_body_mode`);
    expect(issue.message).toMatch(/"STREAMING" is not a value of .*BodySendMode \(NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL\)/);
  });

  it('reports an @type that names no loaded message', () => {
    const issue = only(validateEnvoyYaml(variant('filters.http.router.v3.Router', 'filters.http.router.v3.Routr')));
    expect(issue.path).toMatch(/http_filters\[1\]\.typed_config\.@type$/);
    expect(issue.message).toMatch(/"envoy\.extensions\.filters\.http\.router\.v3\.Routr" is not a message type/);
  });

  it('reports an Any without @type', () => {
    const src = variant(
      '"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      'suppress_envoy_headers: true',
    );
    expect(only(validateEnvoyYaml(src)).message).toMatch(/needs an "@type"/);
  });

  it('checks the fields inside an Any against its @type', () => {
    const src = variant('stat_prefix: main', 'stat_prefix: main\n          max_request_headers_kb: 9000');
    expect(only(validateEnvoyYaml(src)).message).toMatch(/9000 must be <= 8192/);
  });

  it('reports malformed durations and PGV duration bounds', () => {
    expect(only(validateEnvoyYaml(variant('message_timeout: 1s', 'message_timeout: 1000ms'))).message).toMatch(
      /expected a duration/,
    );
    expect(only(validateEnvoyYaml(variant('message_timeout: 1s', 'message_timeout: 7200s'))).message).toMatch(
      /7200s must be <= 3600s/,
    );
  });

  it('checks scalar types and ranges, including inside wrappers', () => {
    expect(only(validateEnvoyYaml(variant('port_value: 50051', 'port_value: 70000'))).message).toMatch(/must be <= 65535/);
    expect(only(validateEnvoyYaml(variant('failure_mode_allow: true', 'failure_mode_allow: "yes"'))).message).toMatch(
      /expected true or false/,
    );
    const wrapper = variant('    type: STATIC\n', '    type: STATIC\n    per_connection_buffer_limit_bytes: -5\n');
    expect(only(validateEnvoyYaml(wrapper)).message).toMatch(/-5 is out of range for uint32/);
  });

  it('checks list and mapping shapes', () => {
    expect(only(validateEnvoyYaml(variant('request_attributes: [source.address]', 'request_attributes: source.address'))).message).toBe(
      'expected a list',
    );
    const struct = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              filter_metadata: [a, b]\n`);
    expect(only(validateEnvoyYaml(struct)).message).toMatch(/expected a mapping \(google\.protobuf\.Struct\)/);
  });

  it('reports two members of one oneof', () => {
    const issue = only(validateEnvoyYaml(variant('- match: { prefix: "/" }', '- match: { prefix: "/", path: "/x" }')));
    expect(issue.message).toBe('only one of "prefix", "path" may be set (oneof path_specifier)');
  });

  it('reports a missing required oneof and a missing required field', () => {
    expect(only(validateEnvoyYaml(variant('disabled: true', 'disabled: null'))).message).toMatch(
      /one of "disabled", "overrides" is required/,
    );
    const issues = validateEnvoyYaml(variant('              grpc_service:\n                envoy_grpc: { cluster_name: tokenwarden }\n', ''));
    expect(issues.map((i) => i.message).sort()).toEqual([
      'exactly one of grpc_service or http_service must be configured',
      'required field "grpc_service" is missing',
    ]);
  });

  it('reports deprecated fields', () => {
    const src = variant('    type: STRICT_DNS\n', '    type: STRICT_DNS\n    http2_protocol_options: {}\n');
    expect(only(validateEnvoyYaml(src)).message).toBe('"http2_protocol_options" is deprecated in envoy.config.cluster.v3.Cluster');
  });

  it('reports YAML syntax errors and odd documents without throwing', () => {
    expect(validateEnvoyYaml('admin: [unclosed\n')[0]?.line).toBe(2);
    expect(only(validateEnvoyYaml('42\n')).message).toMatch(/expected a mapping/);
    expect(validateEnvoyYaml('')).toEqual([]);
    const recursive = validateEnvoyYaml('node: &n\n  metadata:\n    filter_metadata:\n      a: *n\nstats_flush_interval: &d 5s\nx: *d\n');
    expect(recursive.length).toBeGreaterThan(0);
  });
});

describe('validateEnvoyYaml: version markers', () => {
  const NEWER = '              allowed_override_modes:\n              - { response_header_mode: SKIP }\n';

  it('requires a marker on a field newer than the snapshot, and says which release has it', () => {
    const issue = only(validateEnvoyYaml(variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + NEWER)));
    expect(issue.message).toMatch(/unknown field "allowed_override_modes" .*added in Envoy 1\.32: mark the line "# \[Envoy >= 1\.32\]"/);
  });

  it('accepts the marked field and walks its value', () => {
    const marked = NEWER.replace('allowed_override_modes:', 'allowed_override_modes: # [Envoy >= 1.32]');
    expect(validateEnvoyYaml(variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + marked))).toEqual([]);
    const badEntry = marked.replace('response_header_mode: SKIP', 'response_header_mode: SKIPPED');
    expect(only(validateEnvoyYaml(variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + badEntry))).path).toBe(
      `${EXT_PROC}.allowed_override_modes[0].response_header_mode`,
    );
  });

  it('rejects a marker that names a release older than the field', () => {
    const early = NEWER.replace('allowed_override_modes:', 'allowed_override_modes: # [Envoy >= 1.31]');
    expect(only(validateEnvoyYaml(variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + early))).message).toMatch(
      /not in the Envoy 1\.31 snapshot, but the marker says 1\.31/,
    );
    const tooEarly = NEWER.replace('allowed_override_modes:', 'allowed_override_modes: # [Envoy >= 1.33]').replace(
      'allowed_override_modes',
      'status_on_error: { code: BadGateway } # [Envoy >= 1.33]\n              allowed_override_modes',
    );
    const issues = validateEnvoyYaml(variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + tooEarly));
    expect(only(issues).message).toBe('field "status_on_error" first appeared in Envoy 1.36, but the marker says 1.33');
  });

  it('rejects a marker on a line that uses nothing newer (stale marker)', () => {
    const src = variant('failure_mode_allow: true', 'failure_mode_allow: true # [Envoy >= 1.35]');
    expect(only(validateEnvoyYaml(src))).toMatchObject({
      line: lineOf(src, '# [Envoy >= 1.35]'),
      message: 'marker [Envoy >= 1.35] but nothing on this line is newer than the Envoy 1.31 snapshot',
    });
  });

  it('ignores markers in comment-only lines (prose)', () => {
    expect(validateEnvoyYaml(`# Fields marked [Envoy >= 1.32] need Envoy 1.32.\n${BASE}`)).toEqual([]);
  });

  it('admits one newer element per marker: typos inside a marked flow mapping are still reported', () => {
    const src = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}              status_on_error: { cod: BadGateway } # [Envoy >= 1.36]\n`);
    expect(only(validateEnvoyYaml(src)).message).toBe('unknown field "cod" in envoy.type.v3.HttpStatus');
  });

  it('does not admit unknown enum values behind a marker', () => {
    const src = variant('response_body_mode: STREAMED', 'response_body_mode: STREAMED_FAST # [Envoy >= 1.40]');
    expect(validateEnvoyYaml(src).map((i) => i.message)).toEqual([
      'marker [Envoy >= 1.40] but nothing on this line is newer than the Envoy 1.31 snapshot',
      expect.stringMatching(/"STREAMED_FAST" is not a value of/),
    ]);
  });

  it('requires a marker on a newer enum value', () => {
    const src = variant('response_body_mode: STREAMED', 'response_body_mode: FULL_DUPLEX_STREAMED\n                response_trailer_mode: SEND');
    expect(only(validateEnvoyYaml(src)).message).toMatch(/"FULL_DUPLEX_STREAMED" is not a value .*added in Envoy 1\.33/);
  });

  it('accepts a marked newer @type without knowing its fields', () => {
    const type = 'envoy.extensions.http.ext_proc.response_processors.save_processing_response.v3.SaveProcessingResponse';
    const added = [
      '              on_processing_response: # [Envoy >= 1.34]',
      '                name: save',
      '                typed_config:',
      `                  "@type": type.googleapis.com/${type} # [Envoy >= 1.34]`,
      '                  save_response: {}',
    ];
    const src = variant(EXT_PROC_FIELDS, `${EXT_PROC_FIELDS}${added.join('\n')}\n`);
    expect(validateEnvoyYaml(src)).toEqual([]);
  });
});

describe('validateEnvoyYaml: ext_proc and bootstrap rules', () => {
  it('rejects ExtProcPerRoute.disabled: false', () => {
    const issue = only(validateEnvoyYaml(variant('disabled: true', 'disabled: false')));
    expect(issue).toMatchObject({ path: `${PER_ROUTE}["tw.ext_proc"].disabled`, message: 'only true is allowed' });
  });

  it('requires typed_per_filter_config keys to equal the ext_proc filter name', () => {
    const src = variant('                  tw.ext_proc:\n', '                  envoy.filters.http.ext_proc:\n');
    const issue = only(validateEnvoyYaml(src));
    expect(issue.path).toBe(`${PER_ROUTE}["envoy.filters.http.ext_proc"]`);
    expect(issue.message).toMatch(/does not name an ext_proc filter .*"tw\.ext_proc"/);
    expect(issue.line).toBe(lineOf(src, 'envoy.filters.http.ext_proc:'));
  });

  it('requires trailer mode SEND with FULL_DUPLEX_STREAMED', () => {
    const src = variant('response_body_mode: STREAMED', 'response_body_mode: FULL_DUPLEX_STREAMED # [Envoy >= 1.34]');
    expect(only(validateEnvoyYaml(src))).toMatchObject({
      path: `${EXT_PROC}.processing_mode.response_trailer_mode`,
      message: 'response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode: SEND',
    });
  });

  it('wants STREAMED bodies and failure_mode_allow in observability mode', () => {
    const src = variant('failure_mode_allow: true', 'observability_mode: true');
    expect(validateEnvoyYaml(src).map((i) => i.message)).toEqual([
      'observability_mode needs failure_mode_allow: true (a side-stream error would otherwise fail the request)',
      'observability_mode mirrors only STREAMED bodies; BUFFERED bodies are never sent',
    ]);
  });

  it('rejects http_service with body processing', () => {
    const src = variant(
      '              grpc_service:\n                envoy_grpc: { cluster_name: tokenwarden }\n',
      '              http_service: # [Envoy >= 1.33]\n' +
        '                http_service: { http_uri: { uri: "http://127.0.0.1:8080", cluster: tokenwarden, timeout: 1s } }\n',
    );
    expect(only(validateEnvoyYaml(src)).message).toBe('with http_service the processing mode cannot send bodies or trailers');
  });

  it('rejects disable_clear_route_cache with a route_cache_action', () => {
    const added = '              disable_clear_route_cache: true\n              route_cache_action: CLEAR\n';
    const src = variant(EXT_PROC_FIELDS, EXT_PROC_FIELDS + added);
    expect(only(validateEnvoyYaml(src)).message).toMatch(/cannot be set together/);
  });

  it('reports an allow-list that cannot apply without allow_mode_override', () => {
    const src = variant(
      'allow_mode_override: true',
      'allowed_override_modes: # [Envoy >= 1.32]\n              - { response_header_mode: SKIP }',
    );
    expect(only(validateEnvoyYaml(src)).message).toMatch(/no effect without allow_mode_override/);
  });

  it('reports an ext_proc filter placed after the router', () => {
    const src = BASE.replace(
      /( {10}- name: tw\.ext_proc\n[\s\S]*?)( {10}- name: envoy\.filters\.http\.router\n[\s\S]*?Router\n)/,
      '$2$1',
    );
    expect(src).not.toBe(BASE);
    expect(only(validateEnvoyYaml(src)).message).toBe('ext_proc filter "tw.ext_proc" comes after the router and never runs');
  });

  it('reports undefined clusters and an ext_proc cluster without HTTP/2', () => {
    expect(only(validateEnvoyYaml(variant('route: { cluster: backend }', 'route: { cluster: backend2 }'))).message).toBe(
      'route targets undefined cluster "backend2"',
    );
    expect(only(validateEnvoyYaml(variant('{ cluster_name: tokenwarden }', '{ cluster_name: tw }'))).message).toBe(
      'ext_proc uses undefined cluster "tw"',
    );
    const h1 = variant('http2_protocol_options: {}', 'http_protocol_options: {}');
    expect(only(validateEnvoyYaml(h1)).message).toMatch(/not configured for HTTP\/2/);
  });
});
