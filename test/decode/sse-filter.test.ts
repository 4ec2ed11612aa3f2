import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseDecoder, type SseEvent } from '../../src/traffic/decode/sse.js';
import { SseEventFilter } from '../../src/traffic/decode/sse-filter.js';
import { chunking, concat, loadFixture, oneByteChunks, utf8 } from './helpers.js';
import { sseStream } from './sse-model.js';

function run(filter: SseEventFilter, chunks: readonly Uint8Array[]): Uint8Array {
  const out = chunks.map((c) => filter.push(c));
  out.push(filter.end());
  return concat(out);
}

const dropMarked = (ev: SseEvent) => ev.data.includes('DROP');
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

/** The OpenAI usage chunk (choices: []) that tokenwarden would have injected. */
function isUsageChunk(ev: SseEvent): boolean {
  if (ev.data === '[DONE]') return false;
  const j = JSON.parse(ev.data) as { choices?: unknown[]; usage?: unknown };
  return Array.isArray(j.choices) && j.choices.length === 0 && j.usage != null;
}

describe('SseEventFilter', () => {
  it('removes exactly the usage chunk from an OpenAI stream, for its real and 1-byte chunking', () => {
    const { response } = loadFixture('openai_chat_completions_stream_include_usage');
    const body = text(response.bytes);
    const usageStart = body.lastIndexOf('data: {', body.indexOf('data: [DONE]') - 3);
    const expected = body.slice(0, usageStart) + body.slice(body.indexOf('data: [DONE]'));
    for (const chunks of [response.chunks, oneByteChunks(response.bytes)]) {
      const filter = new SseEventFilter(isUsageChunk);
      expect(text(run(filter, chunks))).toBe(expected);
      expect(filter.droppedEvents).toBe(1);
    }
  });

  it('forwards complete kept events at once and holds only the event in progress', () => {
    const filter = new SseEventFilter(dropMarked);
    expect(text(filter.push(utf8(': hi\n\ndata: a\n\ndata: b')))).toBe(': hi\n\ndata: a\n\n');
    expect(filter.heldBytes).toBe('data: b'.length);
    expect(text(filter.push(utf8('\n\ndata: DROP\n')))).toBe('data: b\n\n');
    expect(text(filter.push(utf8('\ndata: c\n\n')))).toBe('data: c\n\n');
    expect(text(filter.end())).toBe('');
  });

  it('drops the LF of a CRLF whose CR ended the previous chunk with its event', () => {
    const filter = new SseEventFilter(dropMarked);
    const out = run(filter, [utf8('data: DROP\r\n\r'), utf8('\ndata: k\r\n\r\n')]);
    expect(text(out)).toBe('data: k\r\n\r\n');
  });

  it('end() flushes an unfinished event unfiltered', () => {
    const filter = new SseEventFilter(dropMarked);
    expect(text(filter.push(utf8('data: DROP\n')))).toBe('');
    expect(text(filter.end())).toBe('data: DROP\n');
  });

  it('gives up filtering (passes everything through) when the held bytes exceed the cap', () => {
    const filter = new SseEventFilter(dropMarked, { maxHeldBytes: 100 });
    const big = `data: ${'x'.repeat(150)}`;
    expect(text(filter.push(utf8('data: DROP\n\n')))).toBe('');
    expect(text(filter.push(utf8(big)))).toBe(big);
    expect(filter.gaveUp).toBe(true);
    expect(filter.heldBytes).toBe(0);
    expect(text(filter.push(utf8('\n\ndata: DROP\n\n')))).toBe('\n\ndata: DROP\n\n');
  });

  it('holds a bounded amount however long the unfinished event', () => {
    const filter = new SseEventFilter(dropMarked, { maxHeldBytes: 1024 * 1024 });
    const piece = new Uint8Array(64 * 1024).fill(0x61);
    let forwarded = filter.push(utf8('data: ')).length;
    for (let i = 0; i < 160; i++) {
      forwarded += filter.push(piece).length;
      expect(filter.heldBytes).toBeLessThanOrEqual(1024 * 1024 + piece.length);
    }
    expect(forwarded).toBe(6 + 160 * piece.length);
  });

  it('a long event fed one byte at a time: held bytes stay bounded, then it passes through intact', () => {
    const max = 256 * 1024;
    const filter = new SseEventFilter(dropMarked, { maxHeldBytes: max });
    const body = utf8(`data: DROP ${'y'.repeat(300_000)}\n\ndata: DROP\n\n`);
    const out: Uint8Array[] = [];
    let maxHeld = 0;
    for (const c of oneByteChunks(body)) {
      out.push(filter.push(c));
      maxHeld = Math.max(maxHeld, filter.heldBytes);
    }
    out.push(filter.end());
    expect(maxHeld).toBeLessThanOrEqual(max);
    expect(filter.gaveUp).toBe(true);
    expect(Buffer.from(concat(out)).equals(body)).toBe(true);
  });

  it('property: output = input minus the dropped events, byte for byte, for any chunking', () => {
    fc.assert(
      fc.property(sseStream, chunking, (s, split) => {
        const keep: Uint8Array[] = [];
        let from = 0;
        let droppedCount = 0;
        for (const d of s.dispatched) {
          if (!dropMarked(d.event)) continue;
          keep.push(s.bytes.subarray(from, d.fieldStart));
          from = d.end;
          droppedCount++;
        }
        keep.push(s.bytes.subarray(from));
        const filter = new SseEventFilter(dropMarked);
        expect(run(filter, split(s.bytes))).toEqual(concat(keep));
        expect(filter.droppedEvents).toBe(droppedCount);
        // A client decoding the output sees every kept event.
        const seen: SseEvent[] = [];
        const dec = new SseDecoder();
        dec.push(concat(keep), (ev) => seen.push(ev));
        expect(seen).toEqual(s.events.filter((ev) => !dropMarked(ev)));
      }),
      { numRuns: 400 },
    );
  });

  it('property: with nothing dropped, any bytes (also garbage) pass through unchanged', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), chunking, (bytes, split) => {
        expect(run(new SseEventFilter(() => false, { maxHeldBytes: 64 }), split(bytes))).toEqual(new Uint8Array(bytes));
      }),
      { numRuns: 300 },
    );
  });
});
