import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NdjsonDecoder } from '../../src/traffic/decode/ndjson.js';
import { chunking, concat, loadFixture, oneByteChunks, utf8 } from './helpers.js';

function decode(chunks: readonly Uint8Array[], opts?: { maxLineBytes?: number }) {
  const dec = new NdjsonDecoder(opts);
  const lines: string[] = [];
  for (const c of chunks) dec.push(c, (t) => lines.push(t));
  const { truncated } = dec.end();
  return { lines, truncated, dec };
}

describe('NdjsonDecoder', () => {
  it('Ollama stream fixture: every line, the last one with the counts', () => {
    const { response } = loadFixture('ollama_chat_stream_ndjson');
    const r = decode(response.chunks);
    expect(r.truncated).toBe(false);
    const objs = r.lines.map((l) => JSON.parse(l) as { done: boolean; prompt_eval_count?: number; eval_count?: number });
    expect(objs.length).toBe(Buffer.from(response.bytes).toString().split('\n').length - 1);
    expect(objs.filter((o) => o.done)).toHaveLength(1);
    expect(objs.at(-1)).toMatchObject({ done: true, prompt_eval_count: 27, eval_count: 11 });
    expect(decode(oneByteChunks(response.bytes)).lines).toEqual(r.lines);
  });

  it('CRLF ends, blank lines skipped, a lone CR is not a line end', () => {
    const r = decode([utf8('{"a":1}\r'), utf8('\n\n  \r\n{"b":\r2}\n')]);
    expect(r.lines).toEqual(['{"a":1}', '{"b":\r2}']);
    expect(r.truncated).toBe(false);
  });

  it('a partial non-blank last line is truncated and not emitted; trailing whitespace is not', () => {
    expect(decode([utf8('{"a":1}\n{"b"')])).toMatchObject({ lines: ['{"a":1}'], truncated: true });
    expect(decode([utf8('{"a":1}\n  \r')])).toMatchObject({ lines: ['{"a":1}'], truncated: false });
    expect(decode([])).toMatchObject({ lines: [], truncated: false });
  });

  it('multi-byte UTF-8 split across chunks; invalid UTF-8 flagged and replaced', () => {
    const bytes = utf8('{"t":"日本 😀"}\n');
    expect(decode(oneByteChunks(bytes))).toMatchObject({ lines: ['{"t":"日本 😀"}'] });
    expect(decode(oneByteChunks(bytes)).dec.invalidUtf8).toBe(false);
    const bad = decode([concat([utf8('{"t":"'), new Uint8Array([0xff]), utf8('"}\n')])]);
    expect(bad.lines).toEqual(['{"t":"\uFFFD"}']);
    expect(bad.dec.invalidUtf8).toBe(true);
  });

  it('lines over the cap are dropped and counted; a 10 MB line never grows the buffer past it', () => {
    const dec = new NdjsonDecoder({ maxLineBytes: 1024 * 1024 });
    const lines: string[] = [];
    const piece = new Uint8Array(64 * 1024).fill(0x61);
    for (let i = 0; i < 160; i++) {
      dec.push(piece, (t) => lines.push(t));
      expect(dec.bufferedBytes).toBeLessThanOrEqual(1024 * 1024);
    }
    dec.push(utf8('\n{"ok":1}\n'), (t) => lines.push(t));
    expect(lines).toEqual(['{"ok":1}']);
    expect(dec.droppedLines).toBe(1);
    expect(dec.end().truncated).toBe(false);
    expect(decode([utf8('x'.repeat(20))], { maxLineBytes: 10 }).truncated).toBe(true);
    expect(decode([utf8(`${'x'.repeat(20)}\n{}\n`)], { maxLineBytes: 10 })).toMatchObject({ lines: ['{}'] });
  });

  const lineArb = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.constantFrom('', '   ', '\t'),
  );
  const streamArb = fc.tuple(fc.array(fc.tuple(lineArb, fc.boolean()), { maxLength: 12 })).map(([ls]) => {
    const text = ls.map(([l, crlf]) => l + (crlf ? '\r\n' : '\n')).join('');
    return { bytes: utf8(text), lines: ls.map(([l]) => l).filter((l) => l.trim() !== '') };
  });

  it('property: any chunking gives the same lines as the model', () => {
    fc.assert(
      fc.property(streamArb, chunking, (s, split) => {
        const r = decode(split(s.bytes));
        expect(r.lines).toEqual(s.lines);
        expect(r.truncated).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('property: truncation and corruption never throw and stay bounded', () => {
    fc.assert(
      fc.property(
        streamArb,
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        chunking,
        (s, cut, flips, split) => {
          const bytes = new Uint8Array(s.bytes.subarray(0, cut % (s.bytes.length + 1)));
          for (const [at, v] of flips) if (bytes.length > 0) bytes[at % bytes.length] = v;
          const dec = new NdjsonDecoder({ maxLineBytes: 32 });
          for (const c of split(bytes)) {
            dec.push(c, (t) => expect(Buffer.byteLength(t)).toBeLessThanOrEqual(32 * 3));
            expect(dec.bufferedBytes).toBeLessThanOrEqual(32);
          }
          dec.end();
        },
      ),
      { numRuns: 300 },
    );
  });
});
