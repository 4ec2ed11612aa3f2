/**
 * tokenwarden's own ext_proc definitions (proto/envoy-wire) must stay wire-compatible with Envoy's
 * official protos (the Envoy 1.31 snapshot in @grpc/grpc-js-xds), and every element newer than
 * the snapshot must be marked `// [Envoy >= 1.NN]` and really be absent from it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromStruct } from '../src/extproc/messages.js';
import { constantAnswer, decodeResponse, encodeResponse, PROTO_DIR, root as ours, type WireProcessingResponse, type WireStruct } from '../src/extproc/protocol.js';
import { PlainStruct, toStruct, type PlainFields } from '../src/extproc/struct.js';
import { officialExtProcRoot } from './envoy/official-protos.js';
import { scanProtoDeclarations, type ProtoDecl } from './envoy/proto-decls.js';
import { compareWithOfficial } from './envoy/wire-compat.js';

const PACKAGES = [
  'envoy.service.ext_proc.v3',
  'envoy.config.core.v3',
  'envoy.type.v3',
  'envoy.extensions.filters.http.ext_proc.v3',
];

function ourDeclarations(): ProtoDecl[] {
  return fs
    .readdirSync(PROTO_DIR)
    .filter((f) => f.endsWith('.proto'))
    .flatMap((f) => scanProtoDeclarations(fs.readFileSync(path.join(PROTO_DIR, f), 'utf8')));
}

let official: protobuf.Root;
beforeAll(() => {
  official = officialExtProcRoot();
});

describe('proto/envoy-wire against the official Envoy protos', () => {
  it('has the same numbers, types, labels and oneofs for every element that is not marked newer', () => {
    expect(compareWithOfficial(ours, official, ourDeclarations(), PACKAGES)).toEqual([]);
  });

  it('actually covers the ext_proc protocol (the comparison is not vacuous)', () => {
    const decls = ourDeclarations();
    const names = new Set(decls.map((d) => d.fullName));
    for (const n of [
      'envoy.service.ext_proc.v3.ProcessingRequest.request_headers',
      'envoy.service.ext_proc.v3.ProcessingResponse.mode_override',
      'envoy.service.ext_proc.v3.ExternalProcessor.Process',
      'envoy.config.core.v3.HeaderValue.raw_value',
      'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode.BUFFERED',
    ]) {
      expect(names.has(n), n).toBe(true);
    }
    const marked = decls.filter((d) => d.since !== undefined).map((d) => d.fullName);
    expect(marked).toContain('envoy.service.ext_proc.v3.ProcessingRequest.protocol_config');
    expect(marked).toContain('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode.FULL_DUPLEX_STREAMED');
  });
});

describe('the comparison detects incompatibilities', () => {
  const FILES = fs.readdirSync(PROTO_DIR).filter((f) => f.endsWith('.proto'));

  /** Problems reported for proto/envoy-wire with one file edited (loaded from a temp copy). */
  function problemsWith(file: string, edit: (source: string) => string): string[] {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-wire-'));
    try {
      const sources = FILES.map((f) => {
        const original = fs.readFileSync(path.join(PROTO_DIR, f), 'utf8');
        const source = f === file ? edit(original) : original;
        fs.writeFileSync(path.join(dir, f), source);
        return source;
      });
      const root = new protobuf.Root();
      root.resolvePath = (_o, t) => (t.startsWith('google/protobuf/') ? t : path.join(dir, path.basename(t)));
      root.loadSync(FILES.map((f) => path.join(dir, f)), { keepCase: true });
      root.resolveAll();
      return compareWithOfficial(root, official, sources.flatMap((s) => scanProtoDeclarations(s)), PACKAGES);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it('accepts the unmodified files', () => {
    expect(problemsWith('processing_mode.proto', (s) => s)).toEqual([]);
  });

  it('reports a changed enum number', () => {
    const text = problemsWith('processing_mode.proto', (s) => s.replace('SKIP = 2;', 'SKIP = 7;')).join('\n');
    expect(text).toMatch(/HeaderSendMode\.SKIP: 7, official 2/);
  });

  it('reports a changed field number and type', () => {
    const text = problemsWith('processing_mode.proto', (s) =>
      s
        .replace('request_trailer_mode = 5;', 'request_trailer_mode = 9;')
        .replace('BodySendMode response_body_mode = 4;', 'HeaderSendMode response_body_mode = 4;'),
    ).join('\n');
    expect(text).toMatch(/request_trailer_mode: number 9, official 5/);
    expect(text).toMatch(/response_body_mode: .*HeaderSendMode, official .*BodySendMode/);
  });

  it('reports a newer element without its marker', () => {
    const text = problemsWith('processing_mode.proto', (s) =>
      s.replace(/FULL_DUPLEX_STREAMED = 4;.*/, 'FULL_DUPLEX_STREAMED = 4;'),
    ).join('\n');
    expect(text).toMatch(/FULL_DUPLEX_STREAMED: not in the official .* not marked/);
  });

  it('reports a newer message without its marker', () => {
    const text = problemsWith('external_processor.proto', (s) =>
      s.replace('message ProtocolConfiguration { // [Envoy >= 1.34]', 'message ProtocolConfiguration {'),
    ).join('\n');
    expect(text).toMatch(/ProtocolConfiguration: not in the official/);
  });

  it('reports a marker on an element the snapshot already has', () => {
    const text = problemsWith('processing_mode.proto', (s) =>
      s.replace('BUFFERED = 2;', 'BUFFERED = 2; // [Envoy >= 1.40]'),
    ).join('\n');
    expect(text).toMatch(/BodySendMode\.BUFFERED: marked \[Envoy >= 1\.40\] but the Envoy 1\.31 protos already have it/);
  });

  it('reports a field that moved out of its oneof', () => {
    const text = problemsWith('external_processor.proto', (s) =>
      s
        .replace('    bool clear_body = 2;\n', '')
        .replace('message BodyMutation {', 'message BodyMutation {\n  bool clear_body = 2;'),
    ).join('\n');
    expect(text).toMatch(/BodyMutation\.clear_body: oneof \(none\), official mutation/);
  });

  it('reports a field whose number belongs to another official field', () => {
    const text = problemsWith('core.proto', (s) => s.replace('bytes raw_value = 3;', 'bytes raw_bytes = 3;')).join('\n');
    expect(text).toMatch(/HeaderValue\.raw_bytes: number 3 is "raw_value" officially/);
  });
});

/** Plain-object view used to compare decodes from both definitions. */
function view(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  return type.toObject(type.decode(bytes), { longs: String, bytes: String, oneofs: true });
}

function encode(type: protobuf.Type, obj: Record<string, unknown>): Uint8Array {
  const err = type.verify(obj);
  if (err) throw new Error(`${type.name}: ${err}`);
  return type.encode(type.fromObject(obj)).finish();
}

const bytes = (s: string): Buffer => Buffer.from(s);
const struct = (fields: Record<string, string | number | boolean>): Record<string, unknown> => ({
  fields: Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [
      k,
      typeof v === 'string' ? { stringValue: v } : typeof v === 'number' ? { numberValue: v } : { boolValue: v },
    ]),
  ),
});

const REQUESTS: Record<string, Record<string, unknown>> = {
  request_headers: {
    request_headers: {
      headers: {
        headers: [
          { key: ':authority', raw_value: bytes('api.openai.com') },
          { key: ':path', raw_value: bytes('/v1/chat/completions') },
          { key: 'x-bin', raw_value: Buffer.from([0xff, 0x00, 0xc3]) },
        ],
      },
      end_of_stream: false,
    },
    metadata_context: { filter_metadata: { 'envoy.filters.http.jwt_authn': struct({ sub: 'svc-a' }) } },
    attributes: { 'envoy.filters.http.ext_proc': struct({ 'source.address': '10.1.2.3:5555' }) },
  },
  response_body: {
    response_body: { body: bytes('data: {"usage":{"total_tokens":12}}\n\n'), end_of_stream: true },
    observability_mode: true,
  },
  request_trailers: { request_trailers: { trailers: { headers: [{ key: 'grpc-status', raw_value: bytes('0') }] } } },
};

const RESPONSES: Record<string, Record<string, unknown>> = {
  request_body: {
    request_body: {
      response: {
        status: 1,
        header_mutation: {
          set_headers: [{ header: { key: 'content-length', raw_value: bytes('42') }, append: { value: false } }],
          remove_headers: ['x-remove-me'],
        },
        body_mutation: { body: bytes('{"model":"gpt-4o","stream_options":{"include_usage":true}}') },
        clear_route_cache: true,
      },
    },
    dynamic_metadata: {
      fields: { tokenwarden: { structValue: struct({ model: 'gpt-4o', input_tokens: 12, stream: true }) } },
    },
    mode_override: { response_header_mode: 2, request_body_mode: 0, response_body_mode: 0 },
    override_message_timeout: { seconds: 2, nanos: 500_000_000 },
  },
  immediate_response: {
    immediate_response: {
      status: { code: 429 },
      headers: { set_headers: [{ header: { key: 'retry-after', raw_value: bytes('30') } }] },
      body: bytes('{"error":"budget exceeded"}'),
      grpc_status: { status: 8 },
      details: 'tokenwarden_budget_exceeded',
    },
  },
  response_headers_clear_body: { response_headers: { response: { body_mutation: { clear_body: true } } } },
};

describe('round trip between the official and our definitions', () => {
  const both = (name: string): [protobuf.Type, protobuf.Type] => [
    official.lookupType(`envoy.service.ext_proc.v3.${name}`),
    ours.lookupType(`envoy.service.ext_proc.v3.${name}`),
  ];
  const pairs = (): [protobuf.Type, protobuf.Type, Record<string, Record<string, unknown>>][] => [
    [...both('ProcessingRequest'), REQUESTS],
    [...both('ProcessingResponse'), RESPONSES],
  ];

  it('decodes official bytes with our types to the same values, and our bytes with the official types', () => {
    for (const [off, own, samples] of pairs()) {
      for (const [name, sample] of Object.entries(samples)) {
        const fromOfficial = encode(off, sample);
        const fromOurs = encode(own, sample);
        const expected = view(off, fromOfficial);
        expect(view(own, fromOfficial), `${off.name} ${name} official -> ours`).toEqual(expected);
        expect(view(off, fromOurs), `${off.name} ${name} ours -> official`).toEqual(expected);
        expect(Buffer.from(fromOurs).equals(Buffer.from(fromOfficial)), `${name} same bytes`).toBe(true);
      }
    }
  });

  it('lets a 1.31 Envoy skip the newer fields we send and keep the rest', () => {
    const own = ours.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
    const off = official.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
    const sample = REQUESTS['request_headers'] ?? {};
    const withNewer = { ...sample, protocol_config: { request_body_mode: 4, response_body_mode: 1 } };
    expect(view(off, encode(own, withNewer))).toEqual(view(off, encode(off, sample)));
    expect(view(own, encode(own, withNewer))['protocol_config']).toEqual({ request_body_mode: 4, response_body_mode: 1 });
  });
});

describe('dynamic metadata written from a plain object (PlainStruct)', () => {
  const plain = {
    tokenwarden: { model: 'gpt-4o', input_tokens: 12, cost_usd: 0.000125, stream: true, error: undefined, consumer: 'é 🚀', nested: { list: [1, 'a', null, false, { x: -0.5 }], empty: {} } },
    'io.envoy.ai_gateway': { model_name_override: 'gpt-4o', llm_total_token: 0 },
  } as unknown as PlainFields; // undefined inside a namespace, as the metadata builders leave unknown keys
  const answer = (meta: WireStruct): WireProcessingResponse => ({ response_body: { response: {} }, dynamic_metadata: meta, mode_override: { response_body_mode: 0 } });

  it('decodes with the official protos exactly as the Struct protobufjs builds from Value objects', () => {
    const type = official.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
    const fast = new PlainStruct(plain);
    const bytes = encodeResponse(answer(fast));
    expect(view(type, bytes)).toEqual(view(type, encodeResponse(answer(toStruct(plain)))));
    expect(fromStruct(decodeResponse(bytes).dynamic_metadata)).toEqual(JSON.parse(JSON.stringify(plain)));
    // Read as a WireStruct it is the usual one, and encoding left the answer as it was.
    expect(fast.fields).toEqual(toStruct(plain).fields);
    const again = answer(fast);
    encodeResponse(again);
    expect(again.dynamic_metadata).toBe(fast);
  });
});

describe('dynamic metadata written from a plain object: random values', () => {
  it('decodes to the same Struct as the Value objects protobufjs encodes, for any values', () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const texts = ['', 'a', 'é', '🚀', 'x'.repeat(200), '\u0000', 'k"\\'];
    const value = (depth: number): unknown => {
      switch (rand(depth > 2 ? 4 : 7)) {
        case 0:
          return null;
        case 1:
          return [0, -1, 1.5, 2 ** 53, -1e-300, 12345678.9][rand(6)];
        case 2:
          return rand(2) === 0;
        case 3:
          return texts[rand(texts.length)]! + String(rand(1000));
        case 4:
          return Array.from({ length: rand(4) }, () => value(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: rand(5) }, (_, i) => [`${texts[rand(texts.length)]}${i}`, rand(5) === 0 ? undefined : value(depth + 1)]));
      }
    };
    const type = ours.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
    for (let i = 0; i < 300; i++) {
      const plain = { ns: value(1), other: value(2) } as unknown as PlainFields;
      const meta = (m: WireStruct): WireProcessingResponse => ({ request_body: {}, dynamic_metadata: m });
      expect(view(type, encodeResponse(meta(new PlainStruct(plain))))).toEqual(view(type, encodeResponse(meta(toStruct(plain)))));
    }
  });
});

describe('constant answers', () => {
  it('encode once to the bytes protobufjs gives for the same answer, and cannot be changed', () => {
    const make = (): WireProcessingResponse => ({ request_headers: {}, mode_override: { response_header_mode: 2, request_body_mode: 0 } });
    const constant = constantAnswer(make());
    expect(encodeResponse(constant)).toEqual(Buffer.from(ours.lookupType('envoy.service.ext_proc.v3.ProcessingResponse').encode(make()).finish()));
    expect(encodeResponse(constant)).toBe(encodeResponse(constant));
    expect(() => Object.assign(constant, { dynamic_metadata: {} })).toThrow(TypeError);
    expect(() => Object.assign(constant.mode_override!, { request_body_mode: 1 })).toThrow(TypeError);
  });
});
