import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContentDecoder, type ContentDecoder } from '../../src/traffic/decode/content-encoding.js';
import { concat, loadFixture, oneByteChunks, splitAt, utf8 } from './helpers.js';

async function decode(encoding: string | undefined, chunks: readonly Uint8Array[], opts?: { maxOutputBytes?: number }) {
  const out: Uint8Array[] = [];
  const dec = createContentDecoder(encoding, (c) => out.push(new Uint8Array(c)), opts);
  if (!dec) return null;
  for (const c of chunks) dec.push(c);
  const { error } = await dec.end();
  return { error, output: concat(out) };
}

const ENCODERS: Record<string, (b: Uint8Array) => Uint8Array> = {
  gzip: (b) => zlib.gzipSync(b),
  'x-gzip': (b) => zlib.gzipSync(b),
  deflate: (b) => zlib.deflateSync(b),
  br: (b) => zlib.brotliCompressSync(b),
};
const sample = utf8(JSON.stringify({ text: 'héllo wörld '.repeat(500), n: [1, 2, 3] }));

describe('createContentDecoder', () => {
  it('gzip fixture split across two chunks decodes to the usage JSON', async () => {
    const { response } = loadFixture('openai_chat_completions_gzip_response');
    const r = await decode(response.headers.get('content-encoding'), response.chunks);
    expect(r?.error).toBeNull();
    const body = JSON.parse(Buffer.from(r?.output ?? new Uint8Array()).toString('utf8')) as { usage: unknown };
    expect(body.usage).toMatchObject({ prompt_tokens: 15, completion_tokens: 31, total_tokens: 46 });
  });

  it.each(Object.keys(ENCODERS))('%s round-trips, also in 1-byte chunks', async (enc) => {
    const compressed = (ENCODERS[enc] as (b: Uint8Array) => Uint8Array)(sample);
    expect(await decode(enc, [compressed])).toEqual({ error: null, output: sample });
    expect(await decode(enc.toUpperCase(), oneByteChunks(compressed))).toEqual({ error: null, output: sample });
  });

  it('raw deflate (no zlib wrapper) is accepted as a fallback', async () => {
    expect(await decode('deflate', [zlib.deflateRawSync(sample)])).toEqual({ error: null, output: sample });
  });

  it('identity or no encoding needs no decoder', () => {
    for (const enc of [undefined, '', 'identity', ' Identity ']) expect(createContentDecoder(enc, () => {})).toBeNull();
  });

  it('unknown and stacked encodings are unsupported and emit nothing', async () => {
    for (const enc of ['zstd', 'compress', 'gzip, br']) {
      expect(await decode(enc, [zlib.gzipSync(sample)])).toEqual({ error: 'unsupported_encoding', output: new Uint8Array() });
    }
    expect(await decode('gzip, identity', [zlib.gzipSync(sample)])).toEqual({ error: null, output: sample });
  });

  it('an empty body is fine whatever the encoding says', async () => {
    expect(await decode('gzip', [])).toEqual({ error: null, output: new Uint8Array() });
    expect(await decode('br', [new Uint8Array()])).toEqual({ error: null, output: new Uint8Array() });
  });

  it.each(Object.keys(ENCODERS))('%s: corrupt or truncated data is corrupt_encoding, output so far kept', async (enc) => {
    const big = utf8('x'.repeat(300_000) + 'end');
    const compressed = (ENCODERS[enc] as (b: Uint8Array) => Uint8Array)(big);
    const cut = await decode(enc, [compressed.subarray(0, compressed.length - 8)]);
    expect(cut?.error).toBe('corrupt_encoding');
    expect(Buffer.from(big).subarray(0, cut?.output.length).equals(Buffer.from(cut?.output ?? []))).toBe(true);
    expect((await decode(enc, [utf8('this is not compressed at all')]))?.error).toBe('corrupt_encoding');
    expect((await decode(enc, [new Uint8Array([0x1f])]))?.error).toBe('corrupt_encoding');
  });

  it('stops at maxOutputBytes (zip bomb) with too_large', async () => {
    const bomb = zlib.gzipSync(new Uint8Array(32 * 1024 * 1024));
    const r = await decode('gzip', splitAt(bomb, [1000, 5000]), { maxOutputBytes: 1024 * 1024 });
    expect(r?.error).toBe('too_large');
    expect(r?.output.length).toBe(1024 * 1024);
  });

  it('push never throws, also after end()', async () => {
    const dec = createContentDecoder('gzip', () => {}) as ContentDecoder;
    dec.push(utf8('garbage'));
    await new Promise((r) => setImmediate(r));
    dec.push(utf8('more garbage after the error'));
    expect((await dec.end()).error).toBe('corrupt_encoding');
    dec.push(utf8('after end'));
    expect((await dec.end()).error).toBe('corrupt_encoding');
  });

  it('property: any chunking of a gzip or br body decodes to the original', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2000 }),
        fc.constantFrom('gzip', 'br', 'deflate'),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (body, enc, cuts) => {
          const compressed = (ENCODERS[enc] as (b: Uint8Array) => Uint8Array)(body);
          expect(await decode(enc, splitAt(compressed, cuts))).toEqual({ error: null, output: new Uint8Array(body) });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('property: random truncation or corruption never throws or hangs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('gzip', 'br', 'deflate'),
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        async (enc, cut, flips) => {
          const compressed = new Uint8Array((ENCODERS[enc] as (b: Uint8Array) => Uint8Array)(sample));
          for (const [at, v] of flips) compressed[at % compressed.length] = v;
          const r = await decode(enc, splitAt(compressed.subarray(0, cut % (compressed.length + 1)), [cut >> 3]));
          expect([null, 'corrupt_encoding']).toContain(r?.error);
          expect(r?.output.length).toBeLessThanOrEqual(64 * 1024 * 1024);
        },
      ),
      { numRuns: 60 },
    );
  });
});
