import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventStreamDecoder, type EventStreamFrame } from '../../src/traffic/decode/eventstream.js';
import { chunking, concat, loadFixture, oneByteChunks, splitAt, utf8 } from './helpers.js';

type Header = [name: string, type: number, value: Uint8Array];

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function stringHeader(name: string, value: string): Header {
  return [name, 7, utf8(value)];
}

function encodeHeaders(headers: readonly Header[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, type, value] of headers) {
    const n = utf8(name);
    parts.push(new Uint8Array([n.length]), n, new Uint8Array([type]));
    if (type === 6 || type === 7) parts.push(new Uint8Array([value.length >> 8, value.length & 0xff]));
    parts.push(value);
  }
  return concat(parts);
}

/** Encodes one frame as AWS does. */
function encodeFrame(headers: readonly Header[], payload: Uint8Array): Uint8Array {
  const h = encodeHeaders(headers);
  const total = 12 + h.length + payload.length + 4;
  const prelude = concat([u32(total), u32(h.length)]);
  const head = concat([prelude, u32(crc32(prelude)), h, payload]);
  return concat([head, u32(crc32(head))]);
}

function flip(b: Uint8Array, at: number): void {
  b[at] = (b[at] as number) ^ 0xff;
}

function decode(chunks: readonly Uint8Array[], opts?: { maxFrameBytes?: number }) {
  const dec = new EventStreamDecoder(opts);
  const frames: EventStreamFrame[] = [];
  for (const c of chunks) dec.push(c, (f) => frames.push(f));
  const { truncated } = dec.end();
  return { frames, truncated, dec };
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
/** Plain-object view for comparisons (headers have no prototype). */
const plain = (frames: readonly EventStreamFrame[]) => frames.map((f) => ({ headers: { ...f.headers }, payload: text(f.payload) }));

describe('EventStreamDecoder on provider fixtures', () => {
  it('Bedrock ConverseStream: every frame, usage in the metadata event', () => {
    const { response } = loadFixture('bedrock_converse_stream');
    const r = decode(response.chunks);
    expect(r.truncated).toBe(false);
    expect(r.dec.crcErrors).toBe(0);
    const types = r.frames.map((f) => f.headers[':event-type']);
    expect(types[0]).toBe('messageStart');
    expect(types.at(-1)).toBe('metadata');
    expect(types).toContain('contentBlockDelta');
    for (const f of r.frames) {
      expect(f.headers[':message-type']).toBe('event');
      expect(f.headers[':content-type']).toBe('application/json');
    }
    const meta = JSON.parse(text(r.frames.at(-1)?.payload ?? new Uint8Array())) as { usage: unknown };
    expect(meta.usage).toEqual({ inputTokens: 19, outputTokens: 22, totalTokens: 41 });
    expect(plain(decode(oneByteChunks(response.bytes)).frames)).toEqual(plain(r.frames));
  });

  it('Bedrock invoke-with-response-stream: chunk frames carry base64 Anthropic events', () => {
    const { response } = loadFixture('bedrock_invoke_with_response_stream_anthropic');
    const r = decode(response.chunks);
    expect(r.truncated).toBe(false);
    expect(r.frames).toHaveLength(response.chunks.length);
    const inner = r.frames.map((f) => {
      expect(f.headers[':event-type']).toBe('chunk');
      const outer = JSON.parse(text(f.payload)) as { bytes: string };
      return JSON.parse(Buffer.from(outer.bytes, 'base64').toString('utf8')) as { type: string };
    });
    expect(inner[0]?.type).toBe('message_start');
    expect(inner.at(-1)?.type).toBe('message_stop');
  });

  it('a fixture cut anywhere inside a frame is truncated and yields only whole frames', () => {
    const { response } = loadFixture('bedrock_converse_stream');
    const all = decode([response.bytes]).frames.length;
    for (let at = 1; at < response.bytes.length; at += 13) {
      const r = decode(splitAt(response.bytes.subarray(0, at), [at >> 1]));
      expect(r.frames.length).toBeLessThan(all);
      expect(r.truncated || r.frames.length === 0).toBe(true);
    }
  });
});

describe('EventStreamDecoder framing', () => {
  it('skips every non-string header type correctly', () => {
    const headers: Header[] = [
      ['t', 0, new Uint8Array()],
      ['f', 1, new Uint8Array()],
      ['byte', 2, new Uint8Array([7])],
      ['short', 3, new Uint8Array(2)],
      ['int', 4, new Uint8Array(4)],
      ['long', 5, new Uint8Array(8)],
      ['bytes', 6, new Uint8Array([1, 2, 3])],
      stringHeader(':event-type', 'x'),
      ['ts', 8, new Uint8Array(8)],
      ['uuid', 9, new Uint8Array(16).fill(0x37)],
      stringHeader('after', 'ü'),
    ];
    const r = decode([encodeFrame(headers, utf8('{}'))]);
    expect(plain(r.frames)).toEqual([{ headers: { ':event-type': 'x', after: 'ü' }, payload: '{}' }]);
  });

  it('a header named __proto__ stays a plain entry', () => {
    const r = decode([encodeFrame([stringHeader('__proto__', 'v')], utf8('p'))]);
    expect(Object.keys(r.frames[0]?.headers ?? {})).toEqual(['__proto__']);
    expect(r.frames[0]?.headers['__proto__']).toBe('v');
  });

  it('an unknown header type drops that frame only', () => {
    const bad = encodeFrame([['x', 10, new Uint8Array(4)]], utf8('bad'));
    const good = encodeFrame([stringHeader('a', 'b')], utf8('good'));
    const r = decode([concat([bad, good])]);
    expect(plain(r.frames)).toEqual([{ headers: { a: 'b' }, payload: 'good' }]);
    expect(r.dec.droppedFrames).toBe(1);
    expect(r.dec.corrupt).toBe(false);
  });

  it('a bad message CRC skips that frame and counts it; decoding continues', () => {
    const f1 = encodeFrame([stringHeader('n', '1')], utf8('one'));
    const f2 = encodeFrame([stringHeader('n', '2')], utf8('two'));
    flip(f1, f1.length - 6); // a payload byte
    const r = decode([concat([f1, f2])]);
    expect(plain(r.frames)).toEqual([{ headers: { n: '2' }, payload: 'two' }]);
    expect(r.dec.crcErrors).toBe(1);
    expect(r.dec.droppedFrames).toBe(1);
  });

  it('a bad prelude CRC stops decoding: the stream is corrupt', () => {
    const f1 = encodeFrame([], utf8('one'));
    const f2 = encodeFrame([], utf8('two'));
    flip(f2, 9); // the prelude CRC
    const r = decode([concat([f1, f2, encodeFrame([], utf8('three'))])]);
    expect(plain(r.frames).map((f) => f.payload)).toEqual(['one']);
    expect(r.dec.corrupt).toBe(true);
    expect(r.dec.crcErrors).toBe(1);
    expect(r.truncated).toBe(true);
  });

  it('impossible lengths with a valid prelude CRC are corrupt and allocate nothing', () => {
    for (const [total, headersLen] of [
      [8, 0],
      [100, 90],
    ] as const) {
      const prelude = concat([u32(total), u32(headersLen)]);
      const r = decode([concat([prelude, u32(crc32(prelude)), new Uint8Array(200)])]);
      expect(r.dec.corrupt).toBe(true);
      expect(r.dec.bufferedBytes).toBe(0);
    }
  });

  it('frames over maxFrameBytes are stepped over unbuffered, then decoding resumes', () => {
    const big = encodeFrame([stringHeader('n', 'big')], new Uint8Array(5000));
    const small = encodeFrame([stringHeader('n', 'small')], utf8('ok'));
    const dec = new EventStreamDecoder({ maxFrameBytes: 1024 });
    const frames: EventStreamFrame[] = [];
    for (const c of splitAt(concat([big, small, big, small]), [100, 2000, 4000, 5100, 7000, 9000])) {
      dec.push(c, (f) => frames.push(f));
      expect(dec.bufferedBytes).toBeLessThanOrEqual(1024);
    }
    expect(plain(frames).map((f) => f.payload)).toEqual(['ok', 'ok']);
    expect(dec.droppedFrames).toBe(2);
    expect(dec.end().truncated).toBe(false);
  });

  it('a 4 GiB length vouched for by its CRC is skipped without allocating it', () => {
    const prelude = concat([u32(0xffffffff), u32(0)]);
    const dec = new EventStreamDecoder();
    dec.push(concat([prelude, u32(crc32(prelude))]), () => {});
    for (let i = 0; i < 100; i++) dec.push(new Uint8Array(64 * 1024), () => {});
    expect(dec.bufferedBytes).toBe(0);
    expect(dec.droppedFrames).toBe(1);
    expect(dec.end().truncated).toBe(true);
  });
});

const headerArb: fc.Arbitrary<Header> = fc.oneof(
  fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 30 })).map(([n, v]) => stringHeader(n, v)),
  fc.tuple(fc.string({ minLength: 1, maxLength: 5 }), fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 9)).map(([n, t]): Header => {
    const size: Record<number, number> = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };
    return [n, t, new Uint8Array(size[t] ?? 0).fill(0xab)];
  }),
  fc.tuple(fc.string({ minLength: 1, maxLength: 5 }), fc.uint8Array({ maxLength: 20 })).map(([n, v]): Header => [n, 6, v]),
);
const frameArb = fc.record({ headers: fc.array(headerArb, { maxLength: 5 }), payload: fc.uint8Array({ maxLength: 200 }) });
const streamArb = fc.array(frameArb, { minLength: 1, maxLength: 8 }).map((frames) => {
  const encoded = frames.map((f) => encodeFrame(f.headers, f.payload));
  return { frames, encoded, bytes: concat(encoded) };
});

/** String headers as sorted entries (last duplicate wins); entries, as "__proto__" may be a name. */
function expectedHeaders(headers: readonly Header[]): [string, string][] {
  const out = new Map<string, string>();
  for (const [n, t, v] of headers) if (t === 7) out.set(Buffer.from(utf8(n)).toString('utf8'), Buffer.from(v).toString('utf8'));
  return sortedEntries(out);
}

function sortedEntries(m: Map<string, string> | Record<string, string>): [string, string][] {
  return [...(m instanceof Map ? m.entries() : Object.entries(m))].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

describe('EventStreamDecoder properties', () => {
  it('any chunking gives the encoded frames', () => {
    fc.assert(
      fc.property(streamArb, chunking, (s, split) => {
        const r = decode(split(s.bytes));
        expect(r.truncated).toBe(false);
        expect(r.frames.map((f) => ({ headers: sortedEntries(f.headers), payload: f.payload }))).toEqual(
          s.frames.map((f) => ({ headers: expectedHeaders(f.headers), payload: new Uint8Array(f.payload) })),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('frames repeating, or changing, a few header blocks: each keeps its own headers', () => {
    // Same-length blocks that differ in one byte, and repeats: consecutive frames often share headers.
    const blocks: Header[][] = [[stringHeader(':event-type', 'ab')], [stringHeader(':event-type', 'ba')], [stringHeader(':event-type', 'ab'), stringHeader('x', 'y')], []];
    const frames = fc.array(fc.record({ headers: fc.constantFrom(...blocks), payload: fc.uint8Array({ maxLength: 8 }) }), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(frames, chunking, (fs, split) => {
        const r = decode(split(concat(fs.map((f) => encodeFrame(f.headers, f.payload)))));
        expect(r.frames.map((f) => sortedEntries(f.headers))).toEqual(fs.map((f) => expectedHeaders(f.headers)));
      }),
      { numRuns: 300 },
    );
  });

  it('a corrupted byte is always detected: its frame is never delivered altered', () => {
    fc.assert(
      fc.property(streamArb, fc.nat(), fc.integer({ min: 1, max: 255 }), chunking, (s, at, xor, split) => {
        const bytes = new Uint8Array(s.bytes);
        const pos = at % bytes.length;
        bytes[pos] = (bytes[pos] as number) ^ xor;
        let start = 0;
        let hit = 0;
        while (start + (s.encoded[hit] as Uint8Array).length <= pos) start += (s.encoded[hit++] as Uint8Array).length;
        const r = decode(split(bytes));
        expect(r.dec.crcErrors).toBe(1);
        const payloads = r.frames.map((f) => f.payload);
        const original = s.frames.map((f) => new Uint8Array(f.payload));
        if (pos - start < 12) {
          // Prelude: the frames before it, then nothing.
          expect(r.dec.corrupt).toBe(true);
          expect(payloads).toEqual(original.slice(0, hit));
        } else {
          expect(r.dec.corrupt).toBe(false);
          expect(payloads).toEqual([...original.slice(0, hit), ...original.slice(hit + 1)]);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('truncation and random bytes never throw, and stay bounded', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          streamArb.map((s) => s.bytes),
          fc.uint8Array({ maxLength: 400 }),
        ),
        fc.nat(),
        chunking,
        (bytes, cut, split) => {
          const dec = new EventStreamDecoder({ maxFrameBytes: 256 });
          for (const c of split(bytes.subarray(0, cut % (bytes.length + 1)))) {
            dec.push(c, () => {});
            expect(dec.bufferedBytes).toBeLessThanOrEqual(256);
          }
          dec.end();
        },
      ),
      { numRuns: 300 },
    );
  });
});
