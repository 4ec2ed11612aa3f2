/**
 * JSON field scanning and the Exchange's body parsing under hostile bodies: 50 MB documents,
 * nesting tens of millions deep, invalid UTF-8 in keys, and the same bodies through a whole
 * Exchange (full parse below 8 MiB, scan above). Nothing may throw or overflow the stack, and the
 * top-level model must still be read wherever the document is valid.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { scanTopLevel } from '../../src/traffic/decode/json-scan.js';
import { Exchange, type ExchangeDeps } from '../../src/traffic/exchange.js';
import { recognize } from '../../src/traffic/recognize.js';
import { createConsumerResolver } from '../../src/traffic/consumer.js';
import { TokenCounter } from '../../src/metering/tokens.js';
import { PriceBook } from '../../src/metering/prices.js';
import { defaultConfig } from '../../src/config/types.js';
import { concat, utf8 } from '../decode/helpers.js';

const MB = 1024 * 1024;

/** `open` repeated n times, the core, then `close` n times, built without a 2n-character string. */
function nested(prefix: string, open: string, n: number, core: string, close: string, suffix: string): Uint8Array {
  const p = utf8(prefix);
  const c = utf8(core);
  const s = utf8(suffix);
  const out = new Uint8Array(p.length + n * (open.length + close.length) + c.length + s.length);
  out.set(p, 0);
  let o = p.length;
  out.fill(open.charCodeAt(0), o, o + n);
  o += n;
  out.set(c, o);
  o += c.length;
  out.fill(close.charCodeAt(0), o, o + n);
  o += n;
  out.set(s, o);
  return out;
}

describe('scanTopLevel on hostile documents', () => {
  it('50 MB of nesting (25 M levels) is valid and scanned in bounded time; unbalanced is invalid', () => {
    const n = 25 * MB;
    const started = performance.now();
    const doc = nested('{"messages":', '[', n, '"x"', ']', ',"model":"deep"}');
    expect(scanTopLevel(doc, ['model'])).toMatchObject({ ok: true, values: new Map([['model', 'deep']]) });
    const open = doc.subarray(0, doc.length - 40);
    expect(scanTopLevel(open, ['model'])).toEqual({ ok: false, error: 'invalid_json' });
    // Linear: ~1 s for both on a shared 2-core box.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('a 50 MB messages array before the model: the model is found and the array given as a range', () => {
    const message = utf8('{"role":"user","content":"' + 'lorem ipsum '.repeat(80) + '"},');
    const count = Math.floor((50 * MB) / message.length);
    const parts: Uint8Array[] = [utf8('{"messages":[')];
    for (let i = 0; i < count; i++) parts.push(message);
    parts.push(utf8('{"role":"user","content":"end"}],"metadata":{"model":"nested"},"model":"gpt-4o","stream":true}'));
    const body = concat(parts);
    const r = scanTopLevel(body, ['model', 'stream', 'messages']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.values.get('model')).toBe('gpt-4o');
    expect(r.values.get('stream')).toBe(true);
    expect(r.values.get('messages')).toEqual({ start: 12, end: Buffer.from(body.buffer, body.byteOffset, body.length).indexOf('],"metadata"') + 1 });
  });

  it('property: invalid UTF-8 anywhere in keys or strings never throws and agrees with the lossy decode', () => {
    const bad = fc.constantFrom([0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0x80]);
    fc.assert(
      fc.property(fc.string({ maxLength: 6 }), bad, fc.string({ maxLength: 6 }), bad, (k, kb, v, vb) => {
        const key = concat([utf8(k), new Uint8Array(kb)]);
        const value = concat([utf8(v), new Uint8Array(vb)]);
        const esc = (b: Uint8Array) => concat([utf8('"'), b, utf8('"')]);
        // Keys and values are plain (no quote or backslash inside): safe to splice as JSON strings.
        fc.pre(!key.includes(0x22) && !key.includes(0x5c) && !value.includes(0x22) && !value.includes(0x5c));
        fc.pre(key.every((c) => c >= 0x20) && value.every((c) => c >= 0x20));
        const doc = concat([utf8('{'), esc(key), utf8(':'), esc(value), utf8(',"model":"m"}')]);
        const lossyKey = new TextDecoder().decode(key);
        const r = scanTopLevel(doc, [lossyKey, 'model']);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.values.get('model')).toBe('m');
        if (lossyKey !== 'model') expect(r.values.get(lossyKey)).toBe(new TextDecoder().decode(value));
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostile bodies through an Exchange', () => {
  const config = defaultConfig();
  const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
  afterAll(() => tokens.close());
  const deps: ExchangeDeps = {
    recognize: (h) => recognize(h, config.discovery),
    resolveConsumer: createConsumerResolver(config.consumer),
    tokens,
    prices: new PriceBook([]),
    metering: config.metering,
    limits: config.limits,
  };
  const requestHeaders = new Map([
    [':method', 'POST'],
    [':authority', 'api.openai.com'],
    [':path', '/v1/chat/completions'],
    ['content-type', 'application/json'],
  ]);
  const responseHeaders = new Map([
    [':status', '200'],
    ['content-type', 'application/json'],
  ]);

  async function run(request: Uint8Array, response: Uint8Array) {
    const ex = new Exchange(deps, { observability: false });
    expect(ex.onRequestHeaders(requestHeaders, false, new Map())).toBe(true);
    const half = request.length >> 1;
    ex.onRequestBody(request.subarray(0, half), false);
    ex.onRequestBody(request.subarray(half), true);
    ex.onResponseHeaders(responseHeaders, false);
    ex.onResponseBody(response, true);
    return ex.finish();
  }

  const usage = utf8('{"model":"gpt-4o-2024-08-06","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}');

  it.each([
    ['1 M levels in a message (full parse)', 1_000_000],
    ['10 M levels in a message (scan)', 10_000_000],
  ])('%s: recorded with its model, no exception', async (_name, depth) => {
    const request = nested('{"messages":[{"role":"user","content":', '[', depth, '{"type":"text","text":"hi"}', ']', '}],"model":"gpt-4o"}');
    const record = await run(request, usage);
    expect(record.model).toBe('gpt-4o');
    expect(record.usage.total_tokens).toBe(7);
    expect(record.error).toBeNull();
  });

  it('tool input nested 1 M deep (counted as JSON) and a response nested 1 M deep', async () => {
    const request = nested(
      '{"model":"gpt-4o","messages":[{"role":"assistant","content":[{"type":"tool_use","name":"t","input":',
      '[',
      1_000_000,
      '1',
      ']',
      '}]}]}',
    );
    const deepResponse = nested('{"model":"gpt-4o-2024-08-06","choices":', '[', 1_000_000, '0', ']', ',"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}');
    const record = await run(request, deepResponse);
    expect(record.model).toBe('gpt-4o');
    expect(record.usage.total_tokens).toBe(7);
  });

  it('invalid UTF-8 in the request and a truncated deep response are flagged, never thrown', async () => {
    const request = concat([utf8('{"model":"gpt-4o","messages":[{"role":"user","content":"'), new Uint8Array([0xff, 0xfe, 0xc3]), utf8('"}]}')]);
    const truncated = utf8(`{"choices":${'['.repeat(100_000)}`);
    const record = await run(request, truncated);
    expect(record.model).toBe('gpt-4o');
    expect(['invalid_utf8', 'invalid_json']).toContain(record.error);
    expect(record.usageSource).not.toBe('reported');
  });
});
