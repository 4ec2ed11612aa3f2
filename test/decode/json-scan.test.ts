import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanTopLevel, type ScannedValue } from '../../src/traffic/decode/json-scan.js';
import { concat, loadFixture, utf8 } from './helpers.js';

const scan = (s: string, keys: readonly string[] = ['model', 'stream', 'max_tokens']) => scanTopLevel(utf8(s), keys);
const lossy = new TextDecoder();

function values(s: string, keys: readonly string[]): Record<string, ScannedValue> {
  const r = scan(s, keys);
  if (!r.ok) throw new Error(`not ok: ${r.error}`);
  return Object.fromEntries(r.values);
}

describe('scanTopLevel on fixture request bodies', () => {
  it('finds model and stream in an ordinary request', () => {
    const r = scanTopLevel(loadFixture('openai_chat_completions_stream_include_usage').request.bytes, ['model', 'stream', 'stream_options']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.values.get('model')).toBe('gpt-4o');
    expect(r.values.get('stream')).toBe(true);
    expect(r.values.get('stream_options')).toMatchObject({ start: expect.any(Number), end: expect.any(Number) });
  });

  it('5 MiB body: the model after the messages array is found', () => {
    const body = loadFixture('bad_large_request_5mb').request.bytes;
    expect(body.length).toBeGreaterThan(5_000_000);
    const r = scanTopLevel(body, ['model', 'messages']);
    expect(r.ok && r.values.get('model')).toBe((JSON.parse(Buffer.from(body).toString()) as { model: string }).model);
    const range = r.ok ? (r.values.get('messages') as { start: number; end: number }) : null;
    expect(body[range?.start ?? 0]).toBe(0x5b);
    expect(body[(range?.end ?? 0) - 1]).toBe(0x5d);
  });

  it('invalid UTF-8 inside strings is still valid JSON; the model is extracted', () => {
    const r = scanTopLevel(loadFixture('bad_invalid_utf8_request').request.bytes, ['model']);
    expect(r.ok && typeof r.values.get('model')).toBe('string');
  });

  it('truncated, form-encoded and empty bodies', () => {
    expect(scanTopLevel(loadFixture('bad_truncated_request_json').request.bytes, ['model'])).toEqual({ ok: false, error: 'invalid_json' });
    expect(scanTopLevel(loadFixture('bad_non_json_request_body').request.bytes, ['model'])).toEqual({ ok: false, error: 'invalid_json' });
    expect(scanTopLevel(loadFixture('bad_empty_request_body').request.bytes, ['model'])).toEqual({ ok: false, error: 'empty' });
  });
});

describe('scanTopLevel rules', () => {
  it('ignores nested keys of the same name', () => {
    const v = values('{"metadata":{"model":"evil"},"messages":[{"model":"x"}],"model":"gpt-4o"}', ['model']);
    expect(v).toEqual({ model: 'gpt-4o' });
    expect(values('{"metadata":{"model":"evil"}}', ['model'])).toEqual({});
  });

  it('unescapes keys and values, including surrogate pairs and lone surrogates like JSON.parse', () => {
    const doc = '{"mo\\u0064el":"a\\"b\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00\\ud800x","k":"😀é"}';
    expect(values(doc, ['model', 'k'])).toEqual(JSON.parse(doc));
  });

  it('scalars of every kind; the last duplicate wins', () => {
    expect(values('{"a":-1.5e3,"b":true,"c":false,"d":null,"e":0,"a":2}', ['a', 'b', 'c', 'd', 'e'])).toEqual({
      a: 2, b: true, c: false, d: null, e: 0,
    });
  });

  it('objects and arrays come back as byte ranges', () => {
    const doc = '{"x": {"y": [1, {"z": 2}]}, "w": []}';
    const v = values(doc, ['x', 'w']);
    expect(v.w).toEqual({ start: doc.indexOf('[]'), end: doc.indexOf('[]') + 2 });
    const x = v.x as { start: number; end: number };
    expect(JSON.parse(doc.slice(x.start, x.end))).toEqual({ y: [1, { z: 2 }] });
  });

  it('whitespace, BOM and non-object documents', () => {
    expect(scanTopLevel(concat([new Uint8Array([0xef, 0xbb, 0xbf]), utf8(' \n{"model":"m"}\r\n\t')]), ['model'])).toEqual({
      ok: true, isObject: true, values: new Map([['model', 'm']]),
    });
    expect(scan('[{"model":"m"}]')).toEqual({ ok: true, isObject: false, values: new Map() });
    expect(scan(' "model" ')).toEqual({ ok: true, isObject: false, values: new Map() });
    expect(scan(' \t\r\n ')).toEqual({ ok: false, error: 'empty' });
    expect(scanTopLevel(new Uint8Array([0xef, 0xbb, 0xbf]), [])).toEqual({ ok: false, error: 'empty' });
  });

  it.each([
    '{', '}', '{"a"}', '{"a":}', '{"a":1,}', '[1,]', '[,1]', '01', '1.', '.5', '-', '1e', '+1', '--1', 'tru', 'nul', 'True',
    '"abc', '"a\\x"', '"\\u12"', '"\u0001"', '{"a":1}x', '{} {}', "{'a':1}", '[1 2]', '{"a" 1}', 'NaN', '\u00a0{}',
  ])('rejects %j', (doc) => {
    expect(scan(doc)).toEqual({ ok: false, error: 'invalid_json' });
    expect(() => JSON.parse(doc)).toThrow();
  });

  it('100k-deep nesting neither throws nor overflows the stack', () => {
    const open = '['.repeat(100_000);
    expect(scan(open)).toEqual({ ok: false, error: 'invalid_json' });
    expect(scan(open + ']'.repeat(100_000))).toEqual({ ok: true, isObject: false, values: new Map() });
    const deepModel = `{"a":${'{"model":'.repeat(50_000)}1${'}'.repeat(50_000)},"model":"top"}`;
    expect(values(deepModel, ['model'])).toEqual({ model: 'top' });
  });
});

/** JSON whitespace only, after an optional BOM. */
function onlyWhitespace(bytes: Uint8Array): boolean {
  const hasBom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  return bytes.subarray(hasBom ? 3 : 0).every((c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d);
}

/** What JSON.parse says, for the wanted keys, in scanTopLevel's terms. */
function oracle(bytes: Uint8Array, keys: readonly string[]) {
  let doc: unknown;
  try {
    doc = JSON.parse(lossy.decode(bytes));
  } catch {
    return null;
  }
  const isObject = typeof doc === 'object' && doc !== null && !Array.isArray(doc);
  const found: [string, unknown][] = [];
  if (isObject) for (const k of new Set(keys)) if (Object.hasOwn(doc as object, k)) found.push([k, (doc as Record<string, unknown>)[k]]);
  return { isObject, found: found.sort(byKey) };
}

/** Entries sorted by key: plain objects would turn a "__proto__" key into a prototype. */
function resolved(bytes: Uint8Array, v: Map<string, ScannedValue>): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, val] of v) {
    out.push([k, val !== null && typeof val === 'object' ? JSON.parse(lossy.decode(bytes.subarray(val.start, val.end))) : val]);
  }
  return out.sort(byKey);
}

const byKey = (a: [string, unknown], b: [string, unknown]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

describe('scanTopLevel properties against JSON.parse', () => {
  const keyArb = fc.oneof(fc.constantFrom('model', 'stream', 'a', '__proto__', 'é', ''), fc.string({ maxLength: 4 }));

  it('agrees with JSON.parse on random JSON values (and their top-level keys)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.dictionary(keyArb, fc.jsonValue({ maxDepth: 4 })), fc.jsonValue({ maxDepth: 4 })),
        fc.array(keyArb, { maxLength: 4 }),
        fc.constantFrom(undefined, 2, '\t'),
        (value, extraKeys, indent) => {
          const text = JSON.stringify(value, null, indent);
          const bytes = utf8(text);
          const keys = [...extraKeys, ...(value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [])];
          const r = scanTopLevel(bytes, keys);
          const want = oracle(bytes, keys);
          expect(r.ok).toBe(true);
          if (!r.ok || !want) return;
          expect(r.isObject).toBe(want.isObject);
          expect(resolved(bytes, r.values)).toEqual(want.found);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('agrees with JSON.parse on validity of mutated JSON and of garbage', () => {
    const mutated = fc
      .tuple(
        fc.jsonValue({ maxDepth: 3 }),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x2d, 0x20, 0x01, 0x80, 0xff, 0x65)), {
          maxLength: 3,
        }),
        fc.nat(),
      )
      .map(([v, flips, cut]) => {
        const b = new Uint8Array(utf8(JSON.stringify(v)));
        for (const [at, x] of flips) if (b.length > 0) b[at % b.length] = x;
        return b.subarray(0, b.length - (cut % 3 === 0 ? cut % (b.length + 1) : 0));
      });
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '1', '-', '.', 'e', 'true', 'null', ' ', '\\', 'u', 'a') }).map(utf8),
    );
    fc.assert(
      fc.property(fc.oneof(mutated, garbage), fc.array(keyArb, { maxLength: 3 }), (bytes, keys) => {
        const r = scanTopLevel(bytes, keys);
        const want = oracle(bytes, keys);
        if (onlyWhitespace(bytes)) {
          expect(r).toEqual({ ok: false, error: 'empty' });
          return;
        }
        expect(r.ok).toBe(want !== null);
        if (r.ok && want) expect(resolved(bytes, r.values)).toEqual(want.found);
      }),
      { numRuns: 1500 },
    );
  });

  it('nested keys named like wanted keys are never returned', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 6 }), (inner, name) => {
        const doc = JSON.stringify({ outer: { model: inner, [name]: { model: 1 } }, list: [{ model: 2 }] });
        const r = scanTopLevel(utf8(doc), ['model']);
        expect(r.ok && r.values.size).toBe(0);
      }),
    );
  });
});
