/**
 * Every response decoder under hostile volume and shape: 50 MB bodies generated lazily in 64 KiB
 * chunks, 10^5 tiny chunks, arbitrary bytes (invalid UTF-8, stray CR/LF, corrupted CRCs) split at
 * random points. Checked: nothing throws, memory held by a decoder stays under its cap (its own
 * byte counters, and the heap measured after a forced GC mid-stream), and the result of any
 * chunking equals the result of the unsplit input. (Per-decoder rules are in test/decode/*.)
 */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseDecoder, type SseEvent } from '../../src/traffic/decode/sse.js';
import { SseEventFilter } from '../../src/traffic/decode/sse-filter.js';
import { EventStreamDecoder, type EventStreamFrame } from '../../src/traffic/decode/eventstream.js';
import { NdjsonDecoder } from '../../src/traffic/decode/ndjson.js';
import { createContentDecoder } from '../../src/traffic/decode/content-encoding.js';
import { chunking, concat, oneByteChunks, splitAt, utf8 } from '../decode/helpers.js';
import { retained } from '../support/heap.js';

const MB = 1024 * 1024;
const TOTAL = 50 * MB;
const CHUNK = 64 * 1024;

/**
 * Feeds `total` bytes made by repeating `unit` (rotated so chunk edges fall anywhere in it) in
 * CHUNK-sized pieces; measures retained memory once, half way. Returns the growth over the baseline.
 */
function feed(unit: Uint8Array, total: number, push: (chunk: Uint8Array) => void): number {
  const tile = new Uint8Array(Math.ceil((CHUNK + unit.length) / unit.length) * unit.length + unit.length);
  for (let o = 0; o < tile.length; o += unit.length) tile.set(unit.subarray(0, Math.min(unit.length, tile.length - o)), o);
  const base = retained();
  let growth = 0;
  let sent = 0;
  while (sent < total) {
    const n = Math.min(CHUNK, total - sent);
    const at = sent % unit.length;
    // A fresh copy per chunk, as gRPC delivers: a decoder that kept chunks would show up below.
    push(tile.slice(at, at + n));
    sent += n;
    if (growth === 0 && sent >= total / 2) growth = retained() - base;
  }
  return growth;
}

/** The largest cap is 1 MiB; a decoder that kept the body would retain 25 MB by half way. */
const RETAINED_LIMIT = 4 * MB;

// -------------------------------------------------------------------------------------------------
// AWS event stream frame encoding (as in test/decode/eventstream.test.ts)

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function encodeFrame(eventType: string, payload: Uint8Array): Uint8Array {
  const name = utf8(':event-type');
  const value = utf8(eventType);
  const h = concat([new Uint8Array([name.length]), name, new Uint8Array([7, value.length >> 8, value.length & 0xff]), value]);
  const prelude = concat([u32(12 + h.length + payload.length + 4), u32(h.length)]);
  const head = concat([prelude, u32(crc32(prelude)), h, payload]);
  return concat([head, u32(crc32(head))]);
}

// -------------------------------------------------------------------------------------------------

describe('50 MB bodies, fed lazily in 64 KiB chunks', () => {
  it('SSE: every event decoded, nothing retained', () => {
    const unit = utf8(`data: {"choices":[{"delta":{"content":"${'w'.repeat(80)}"}}]}\n\n`);
    const dec = new SseDecoder();
    let events = 0;
    let maxBuffered = 0;
    const growth = feed(unit, TOTAL, (c) => {
      dec.push(c, () => events++);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    });
    expect(events).toBe(Math.floor(TOTAL / unit.length));
    expect(maxBuffered).toBeLessThan(unit.length);
    expect(growth).toBeLessThan(RETAINED_LIMIT);
  });

  it('SSE: one 50 MB line without a line end stays under the 1 MiB cap and is dropped', () => {
    const dec = new SseDecoder();
    dec.push(utf8('data: '), () => {});
    let maxBuffered = 0;
    const growth = feed(utf8('x'.repeat(1000)), TOTAL, (c) => {
      dec.push(c, () => {});
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    });
    const after: SseEvent[] = [];
    dec.push(utf8('\n\ndata: next\n\n'), (ev) => after.push(ev));
    expect(maxBuffered).toBeLessThanOrEqual(MB + 64);
    expect(growth).toBeLessThan(RETAINED_LIMIT);
    expect(after).toEqual([{ event: undefined, data: 'next' }]);
    expect(dec.droppedEvents).toBe(1);
  });

  it('SSE filter: drops the marked events of a 50 MB stream, holding at most one event', () => {
    const keep = utf8(`data: {"k":"${'a'.repeat(100)}"}\n\n`);
    const drop = utf8('data: {"DROP":1}\n\n');
    const unit = concat([keep, keep, drop]);
    const filter = new SseEventFilter((ev) => ev.data.includes('DROP'));
    let out = 0;
    let maxHeld = 0;
    const growth = feed(unit, TOTAL - (TOTAL % unit.length), (c) => {
      out += filter.push(c).length;
      maxHeld = Math.max(maxHeld, filter.heldBytes);
    });
    out += filter.end().length;
    const units = Math.floor(TOTAL / unit.length);
    expect(filter.droppedEvents).toBe(units);
    expect(out).toBe(units * 2 * keep.length);
    expect(maxHeld).toBeLessThan(unit.length);
    expect(growth).toBeLessThan(RETAINED_LIMIT);
  });

  it('SSE filter: a 50 MB event gives up filtering at the cap and passes every byte through', () => {
    const filter = new SseEventFilter(() => true, { maxHeldBytes: MB });
    let out = filter.push(utf8('data: ')).length;
    let maxHeld = 0;
    const growth = feed(utf8('y'.repeat(999)), TOTAL, (c) => {
      out += filter.push(c).length;
      maxHeld = Math.max(maxHeld, filter.heldBytes);
    });
    out += filter.end().length;
    expect(filter.gaveUp).toBe(true);
    expect(out).toBe(6 + TOTAL);
    expect(maxHeld).toBeLessThanOrEqual(MB);
    expect(growth).toBeLessThan(RETAINED_LIMIT);
  });

  it('event stream: 50 MB of frames decoded; a 50 MB frame stepped over unbuffered', () => {
    const frame = encodeFrame('contentBlockDelta', utf8(`{"delta":{"text":"${'t'.repeat(200)}"}}`));
    const dec = new EventStreamDecoder();
    let frames = 0;
    let maxBuffered = 0;
    const total = TOTAL - (TOTAL % frame.length);
    const growth = feed(frame, total, (c) => {
      dec.push(c, () => frames++);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    });
    expect(frames).toBe(total / frame.length);
    expect(dec.end().truncated).toBe(false);
    expect(maxBuffered).toBeLessThanOrEqual(frame.length);
    expect(growth).toBeLessThan(RETAINED_LIMIT);

    // One frame whose (CRC-vouched) length is 50 MB, over the 16 MiB default cap.
    const big = new EventStreamDecoder();
    const prelude = concat([u32(TOTAL + 16), u32(0)]);
    big.push(concat([prelude, u32(crc32(prelude))]), () => {});
    let bigMax = 0;
    const bigGrowth = feed(utf8('z'.repeat(1000)), TOTAL + 4, (c) => {
      big.push(c, () => {});
      bigMax = Math.max(bigMax, big.bufferedBytes);
    });
    const after: EventStreamFrame[] = [];
    big.push(frame, (f) => after.push(f));
    expect(bigMax).toBe(0);
    expect(bigGrowth).toBeLessThan(RETAINED_LIMIT);
    expect(big.droppedFrames).toBe(1);
    expect(after.map((f) => f.headers[':event-type'])).toEqual(['contentBlockDelta']);
  });

  it('NDJSON: 50 MB of lines, and a 50 MB line capped at 1 MiB', () => {
    const unit = utf8(`{"message":{"content":"${'n'.repeat(120)}"},"done":false}\n`);
    const dec = new NdjsonDecoder();
    let lines = 0;
    let maxBuffered = 0;
    const growth = feed(unit, TOTAL, (c) => {
      dec.push(c, () => lines++);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    });
    expect(lines).toBe(Math.floor(TOTAL / unit.length));
    expect(maxBuffered).toBeLessThan(unit.length);
    expect(growth).toBeLessThan(RETAINED_LIMIT);

    const long = new NdjsonDecoder();
    let longMax = 0;
    const longGrowth = feed(utf8('q'.repeat(1000)), TOTAL, (c) => {
      long.push(c, () => {});
      longMax = Math.max(longMax, long.bufferedBytes);
    });
    const after: string[] = [];
    long.push(utf8('\n{"done":true}\n'), (t) => after.push(t));
    expect(longMax).toBeLessThanOrEqual(MB);
    expect(longGrowth).toBeLessThan(RETAINED_LIMIT);
    expect(after).toEqual(['{"done":true}']);
    expect(long.droppedLines).toBe(1);
  });

  it('gzip and br: a 50 MB SSE stream decompressed chunk by chunk into the SSE decoder', async () => {
    const unit = utf8(`data: {"choices":[{"delta":{"content":"${'g'.repeat(60)}"}}]}\n\n`);
    const units = Math.floor(TOTAL / unit.length);
    for (const [encoding, compressor] of [
      ['gzip', () => zlib.createGzip({ level: 1 })],
      ['br', () => zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } })],
    ] as const) {
      const compressed = await compressLazily(unit, units, compressor());
      const sse = new SseDecoder();
      let events = 0;
      let maxBuffered = 0;
      const dec = createContentDecoder(encoding, (d) => {
        sse.push(d, () => events++);
        maxBuffered = Math.max(maxBuffered, sse.bufferedBytes);
      });
      const base = retained();
      for (const c of splitAt(compressed, Array.from({ length: 200 }, (_, i) => i * 997))) dec?.push(c);
      expect((await dec?.end())?.error).toBeNull();
      expect(events).toBe(units);
      expect(maxBuffered).toBeLessThan(unit.length);
      expect(retained() - base).toBeLessThan(RETAINED_LIMIT);
    }
  });
});

/** Compresses `count` copies of `unit` through a zlib stream, 64 KiB at a time. */
async function compressLazily(unit: Uint8Array, count: number, z: zlib.Gzip | zlib.BrotliCompress): Promise<Uint8Array> {
  const out: Buffer[] = [];
  z.on('data', (d: Buffer) => out.push(d));
  const done = new Promise((resolve) => z.on('end', resolve));
  const perChunk = Math.max(1, Math.floor(CHUNK / unit.length));
  const block = Buffer.concat(Array.from({ length: perChunk }, () => unit));
  for (let i = 0; i < count; i += perChunk) {
    const n = Math.min(perChunk, count - i);
    const piece = n === perChunk ? block : block.subarray(0, n * unit.length);
    if (!z.write(piece)) await new Promise((r) => z.once('drain', r));
  }
  z.end();
  await done;
  return Buffer.concat(out);
}

describe('10^5 tiny chunks', () => {
  const N = 100_000;

  it('event stream: 10^5 one-byte chunks give the same frames as one chunk', () => {
    const frames: Uint8Array[] = [];
    let size = 0;
    for (let i = 0; size < N; i++) {
      const f = encodeFrame('chunk', utf8(`{"i":${i}}`));
      frames.push(f);
      size += f.length;
    }
    const bytes = concat(frames).subarray(0, N);
    const whole = new EventStreamDecoder();
    const expected: string[] = [];
    whole.push(bytes, (f) => expected.push(Buffer.from(f.payload).toString()));
    const dec = new EventStreamDecoder();
    const got: string[] = [];
    for (const c of oneByteChunks(bytes)) dec.push(c, (f) => got.push(Buffer.from(f.payload).toString()));
    expect(got).toEqual(expected);
    expect(got.length).toBeGreaterThan(N / 50);
    expect(dec.end()).toEqual(whole.end());
  });

  it('NDJSON: 10^5 one-byte chunks give the same lines as one chunk', () => {
    let text = '';
    for (let i = 0; text.length < N; i++) text += `{"i":${i}}\n`;
    const bytes = utf8(text).subarray(0, N);
    const expected: string[] = [];
    new NdjsonDecoder().push(bytes, (t) => expected.push(t));
    const dec = new NdjsonDecoder();
    const got: string[] = [];
    for (const c of oneByteChunks(bytes)) dec.push(c, (t) => got.push(t));
    expect(got).toEqual(expected);
    expect(got.length).toBeGreaterThan(N / 12);
  });

  it('SSE filter: 10^5 one-byte chunks, output equals the one-chunk output', () => {
    let text = '';
    for (let i = 0; text.length < N; i++) text += i % 3 === 2 ? 'data: DROP\r\n\r\n' : `data: {"i":${i}}\n\n`;
    const bytes = utf8(text).subarray(0, N);
    const whole = new SseEventFilter((ev) => ev.data === 'DROP');
    const expected = concat([whole.push(bytes), whole.end()]);
    const filter = new SseEventFilter((ev) => ev.data === 'DROP');
    const parts = oneByteChunks(bytes).map((c) => filter.push(c));
    parts.push(filter.end());
    expect(concat(parts)).toEqual(expected);
    expect(filter.droppedEvents).toBe(whole.droppedEvents);
    expect(filter.droppedEvents).toBeGreaterThan(N / 60);
  });

  it('gzip, deflate and br: 10^5 one-byte pushes decode to the original', async () => {
    // Base64 of pseudo-random bytes barely compresses, so every encoding gives over 10^5 bytes.
    const noise = randomBytes(120_000);
    const plain = utf8(noise.toString('base64').replace(/.{76}/g, 'data: $&\n\n'));
    for (const [encoding, compress] of [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
      ['br', zlib.brotliCompressSync],
    ] as const) {
      const compressed = new Uint8Array(compress(plain));
      expect(compressed.length).toBeGreaterThanOrEqual(N);
      const out: Uint8Array[] = [];
      const started = performance.now();
      const dec = createContentDecoder(encoding, (d) => out.push(new Uint8Array(d)));
      for (const c of oneByteChunks(compressed)) dec?.push(c);
      expect((await dec?.end())?.error).toBeNull();
      // ~0.5 s; written to zlib one by one, the chunks took ~4 s (a thread-pool round trip each).
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(concat(out)).toEqual(plain);
    }
  });
});

// -------------------------------------------------------------------------------------------------
// Chunking invariance on arbitrary bytes: the decoders' whole observable outcome (events, counters,
// flags) must not depend on where the input was split, also for garbage and invalid UTF-8.

/** Byte soup rich in what the decoders look at: line ends, colons, field names, broken UTF-8. */
const soup = fc
  .array(
    fc.oneof(
      fc.constantFrom('\n', '\r', '\r\n', '\n\n', ':', ' ', 'data:', 'data: ', 'event: ', 'id: 1', '{"a":1}', '\uFEFF', 'é', '😀').map(utf8),
      fc.constantFrom([0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xff], [0xfe], [0x80], [0xed, 0xa0, 0x80], [0xef, 0xbb], [0xc0, 0xaf]).map((b) => new Uint8Array(b)),
      fc.uint8Array({ maxLength: 8 }),
    ),
    { maxLength: 60 },
  )
  .map(concat);

function sseOutcome(chunks: readonly Uint8Array[], maxEventBytes: number) {
  const dec = new SseDecoder({ maxEventBytes });
  const events: SseEvent[] = [];
  for (const c of chunks) {
    dec.push(c, (ev) => events.push(ev));
    expect(dec.bufferedBytes).toBeLessThanOrEqual(maxEventBytes + 64);
  }
  return { events, end: dec.end(), dropped: dec.droppedEvents, invalidUtf8: dec.invalidUtf8 };
}

function ndjsonOutcome(chunks: readonly Uint8Array[], maxLineBytes: number) {
  const dec = new NdjsonDecoder({ maxLineBytes });
  const lines: string[] = [];
  for (const c of chunks) {
    dec.push(c, (t) => lines.push(t));
    expect(dec.bufferedBytes).toBeLessThanOrEqual(maxLineBytes);
  }
  return { lines, end: dec.end(), dropped: dec.droppedLines, invalidUtf8: dec.invalidUtf8 };
}

describe('chunking invariance on hostile bytes', () => {
  it('SSE decoder: any split of any bytes gives the unsplit outcome', () => {
    fc.assert(
      fc.property(soup, chunking, fc.constantFrom(16, 1024), (bytes, split, cap) => {
        expect(sseOutcome(split(bytes), cap)).toEqual(sseOutcome([bytes], cap));
      }),
      { numRuns: 500 },
    );
  });

  it('SSE filter: any split of any bytes gives the unsplit output, and dropping nothing is the identity', () => {
    const run = (chunks: readonly Uint8Array[], cap: number) => {
      const f = new SseEventFilter((ev) => ev.data.includes('a'), { maxHeldBytes: cap });
      const out = chunks.map((c) => {
        const o = f.push(c);
        expect(f.heldBytes).toBeLessThanOrEqual(cap);
        return o;
      });
      out.push(f.end());
      return { out: concat(out), dropped: f.droppedEvents, gaveUp: f.gaveUp };
    };
    fc.assert(
      fc.property(soup, chunking, fc.constantFrom(32, 4096), (bytes, split, cap) => {
        const whole = run([bytes], cap);
        const parts = run(split(bytes), cap);
        // Giving up depends on how much was held when a chunk ended; before that, output must agree.
        if (!whole.gaveUp && !parts.gaveUp) expect(parts).toEqual(whole);
        const identity = new SseEventFilter(() => false, { maxHeldBytes: cap });
        const same = split(bytes).map((c) => identity.push(c));
        same.push(identity.end());
        expect(concat(same)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('NDJSON: any split of any bytes gives the unsplit outcome', () => {
    fc.assert(
      fc.property(soup, chunking, fc.constantFrom(8, 1024), (bytes, split, cap) => {
        expect(ndjsonOutcome(split(bytes), cap)).toEqual(ndjsonOutcome([bytes], cap));
      }),
      { numRuns: 500 },
    );
  });

  it('event stream: corrupted CRCs, lengths and invalid UTF-8 headers, any split, same outcome', () => {
    const frameArb = fc
      .record({
        type: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('\uFFFD', 'é')),
        badUtf8: fc.boolean(),
        payload: fc.uint8Array({ maxLength: 80 }),
      })
      .map((f) => {
        const frame = encodeFrame(f.type, f.payload);
        // Header value bytes made invalid UTF-8 with a correct CRC: decoded lossily, never thrown.
        if (f.badUtf8 && f.type.length > 0) {
          frame[12 + 1 + ':event-type'.length + 3] = 0xff;
          const crcAt = frame.length - 4;
          frame.set(u32(crc32(frame.subarray(0, crcAt))), crcAt);
        }
        return frame;
      });
    const corrupted = fc
      .tuple(fc.array(frameArb, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }), fc.nat())
      .map(([frames, flips, cut]) => {
        const bytes = new Uint8Array(concat(frames));
        for (const [at, x] of flips) bytes[at % bytes.length] = (bytes[at % bytes.length] as number) ^ x;
        return bytes.subarray(0, bytes.length - (cut % 4 === 0 ? cut % (bytes.length + 1) : 0));
      });
    const outcome = (chunks: readonly Uint8Array[]) => {
      const dec = new EventStreamDecoder({ maxFrameBytes: 128 });
      const frames: { headers: [string, string][]; payload: number[] }[] = [];
      for (const c of chunks) {
        dec.push(c, (f) => frames.push({ headers: Object.entries(f.headers), payload: [...f.payload] }));
        expect(dec.bufferedBytes).toBeLessThanOrEqual(128);
      }
      return { frames, end: dec.end(), crc: dec.crcErrors, dropped: dec.droppedFrames, corrupt: dec.corrupt };
    };
    fc.assert(
      fc.property(fc.oneof(corrupted, fc.uint8Array({ maxLength: 200 })), chunking, (bytes, split) => {
        expect(outcome(split(bytes))).toEqual(outcome([bytes]));
      }),
      { numRuns: 500 },
    );
  });

  it('gzip, deflate and br: truncated or corrupted input, any split: no throw, output a prefix of the original', async () => {
    const plain = utf8(`data: ${'payload '.repeat(3000)}\n\n`);
    const encoders = { gzip: zlib.gzipSync, deflate: zlib.deflateSync, br: zlib.brotliCompressSync };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('gzip', 'deflate', 'br'),
        fc.nat(),
        fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
        chunking,
        async (encoding, cut, flip, split) => {
          const full = new Uint8Array(encoders[encoding](plain));
          const bytes = full.slice(0, cut % (full.length + 1));
          if (flip && bytes.length > 0) bytes[flip[0] % bytes.length] = (bytes[flip[0] % bytes.length] as number) ^ flip[1];
          const out: Uint8Array[] = [];
          const dec = createContentDecoder(encoding, (d) => out.push(new Uint8Array(d)));
          for (const c of split(bytes)) dec?.push(c);
          const { error } = (await dec?.end()) ?? { error: 'missing' };
          const got = concat(out);
          if (!flip && bytes.length === full.length) {
            expect(error).toBeNull();
            expect(got).toEqual(plain);
          } else if (!flip) {
            // Truncated but untouched: whatever came out is the start of the original.
            expect(error === null ? bytes.length === 0 : error).toBe(bytes.length === 0 ? true : 'corrupt_encoding');
            expect(got).toEqual(plain.subarray(0, got.length));
          } else {
            expect([null, 'corrupt_encoding']).toContain(error);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
