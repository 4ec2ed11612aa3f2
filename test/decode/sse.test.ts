import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseDecoder, type SseEvent } from '../../src/traffic/decode/sse.js';
import { chunking, concat, loadFixture, oneByteChunks, splitAt, utf8 } from './helpers.js';
import { sseStream, type DispatchedEvent } from './sse-model.js';

function decode(chunks: readonly Uint8Array[], opts?: { maxEventBytes?: number }) {
  const dec = new SseDecoder(opts);
  const events: SseEvent[] = [];
  for (const c of chunks) dec.push(c, (ev) => events.push(ev));
  const { truncated } = dec.end();
  return { events, truncated, dropped: dec.droppedEvents, invalidUtf8: dec.invalidUtf8, dec };
}

const decodeText = (s: string) => decode([utf8(s)]);

describe('SseDecoder on provider fixtures', () => {
  const counts: [string, number][] = [
    ['anthropic_messages_stream', 12],
    ['azure_openai_deployment_chat_stream_include_usage', 7],
    ['cohere_chat_v2_stream', 8],
    ['gemini_stream_generate_content_sse', 3],
    ['groq_chat_completions_stream_x_groq_usage', 10],
    ['mistral_chat_completions_stream', 6],
    ['openai_chat_completions_stream_include_usage', 9],
    ['openai_chat_completions_stream_no_usage', 6],
    ['openai_responses_stream', 12],
    ['vertex_stream_generate_content_sse', 3],
    ['vllm_chat_completions_stream_include_usage', 8],
  ];
  it.each(counts)('%s: %i events, complete, same for 1-byte chunks', (name, count) => {
    const { response } = loadFixture(name);
    const r = decode(response.chunks);
    expect(r.events).toHaveLength(count);
    expect(r.truncated).toBe(false);
    expect(r.invalidUtf8).toBe(false);
    for (const ev of r.events) if (ev.data !== '[DONE]') expect(() => JSON.parse(ev.data)).not.toThrow();
    expect(decode(oneByteChunks(response.bytes)).events).toEqual(r.events);
  });

  it('OpenAI include_usage: the usage chunk precedes [DONE]', () => {
    const { events } = decode(loadFixture('openai_chat_completions_stream_include_usage').response.chunks);
    expect(events.at(-1)?.data).toBe('[DONE]');
    const usageChunk = JSON.parse(events.at(-2)?.data ?? '') as { choices: unknown[]; usage: Record<string, number> };
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toMatchObject({ prompt_tokens: 24, completion_tokens: 6, total_tokens: 30 });
  });

  it('Gemini CRLF stream: data carries no CR, last chunk has the usage', () => {
    const { events } = decode(loadFixture('gemini_stream_generate_content_sse').response.chunks);
    for (const ev of events) expect(ev.data).not.toMatch(/\r/);
    const last = JSON.parse(events.at(-1)?.data ?? '') as { usageMetadata: Record<string, number> };
    expect(last.usageMetadata.totalTokenCount).toBe(56);
  });

  it('Anthropic and Responses named events', () => {
    const anthropic = decode(loadFixture('anthropic_messages_stream').response.chunks).events;
    expect(anthropic[0]?.event).toBe('message_start');
    expect(anthropic.at(-1)?.event).toBe('message_stop');
    const delta = anthropic.find((e) => e.event === 'message_delta');
    expect((JSON.parse(delta?.data ?? '') as { usage: { output_tokens: number } }).usage.output_tokens).toBe(58);
    const responses = decode(loadFixture('openai_responses_stream').response.chunks).events;
    const done = responses.find((e) => e.event === 'response.completed');
    expect((JSON.parse(done?.data ?? '') as { response: { usage: { total_tokens: number } } }).response.usage.total_tokens).toBe(78);
  });

  it('multi-byte UTF-8 split across chunks decodes intact', () => {
    const { response } = loadFixture('vllm_chat_completions_stream_include_usage');
    const r = decode(oneByteChunks(response.bytes));
    expect(r.events.some((e) => e.data.includes('á'))).toBe(true);
    expect(r.invalidUtf8).toBe(false);
  });

  it('bad_sse_stream_cut_mid_event: complete events only, truncated, no usage', () => {
    const r = decode(loadFixture('bad_sse_stream_cut_mid_event').response.chunks);
    expect(r.truncated).toBe(true);
    expect(r.events).toHaveLength(5);
    for (const ev of r.events) expect((JSON.parse(ev.data) as { usage: unknown }).usage).toBeNull();
  });
});

describe('SseDecoder line and field rules', () => {
  it('accepts LF, CRLF and CR line ends, also a CRLF split across chunks', () => {
    const expected = [{ event: undefined, data: 'a' }, { event: undefined, data: 'b' }, { event: undefined, data: 'c' }];
    expect(decodeText('data: a\n\ndata: b\r\n\r\ndata: c\r\r').events).toEqual(expected);
    const r = decode([utf8('data: a\r'), utf8('\n\r'), utf8('\ndata: b\r\n\r'), utf8('\ndata: c\r\r')]);
    expect(r.events).toEqual(expected);
    expect(r.truncated).toBe(false);
  });

  it('CR then LF in the next chunk is one line end, not a blank line', () => {
    // If the LF were a second line end, "data: a" would be dispatched alone.
    const r = decode([utf8('data: a\r'), utf8('\ndata: b\n\n')]);
    expect(r.events).toEqual([{ event: undefined, data: 'a\nb' }]);
  });

  it('comments, optional space, multi-line data, event names and unknown fields', () => {
    const r = decodeText(': hello\nevent: ping\ndata:x\ndata:  y\nid: 7\nretry: 10\nfoo: bar\ndata\n\ndata: z\n\n');
    expect(r.events).toEqual([
      { event: 'ping', data: 'x\n y\n' },
      { event: undefined, data: 'z' },
    ]);
  });

  it('an event without data lines is not dispatched; an empty event name is the default type', () => {
    expect(decodeText('event: a\n\nevent:\ndata: 1\n\n').events).toEqual([{ event: undefined, data: '1' }]);
  });

  it('skips one leading BOM, also split across chunks, and only at the start', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    const body = concat([bom, utf8('data: a\n\n'), bom, utf8('data: b\n\n')]);
    const whole = decode([body]).events;
    expect(whole[0]).toEqual({ event: undefined, data: 'a' });
    // The second BOM starts a line: the field name is then "\uFEFFdata", which is unknown.
    expect(whole).toHaveLength(1);
    expect(decode(oneByteChunks(body)).events).toEqual(whole);
    // A BOM prefix that is not a BOM stays part of the first line.
    const notBom = decode([new Uint8Array([0xef]), utf8('data: a\n\n')]);
    expect(notBom.events).toEqual([]);
    expect(notBom.invalidUtf8).toBe(true);
  });

  it('flags invalid UTF-8 and decodes it lossily', () => {
    const r = decode([concat([utf8('data: a'), new Uint8Array([0xc3]), utf8('\n\n')])]);
    expect(r.events).toEqual([{ event: undefined, data: 'a\uFFFD' }]);
    expect(r.invalidUtf8).toBe(true);
  });

  it('a U+FFFD sent as valid UTF-8 is not flagged; invalid bytes in any field or comment are', () => {
    expect(decodeText('data: a\uFFFD\n\n').invalidUtf8).toBe(false);
    for (const prefix of ['data: ', 'event: ', ': ', 'id: ']) {
      const r = decode([concat([utf8(prefix), new Uint8Array([0xff]), utf8('\ndata: x\n\n')])]);
      expect(r.invalidUtf8).toBe(true);
    }
  });

  it('truncation: partial line, or fields without the blank line; a finished comment is not', () => {
    expect(decodeText('data: a\n\ndata: b').truncated).toBe(true);
    expect(decodeText('data: a\n\ndata: b\n').truncated).toBe(true);
    expect(decodeText('data: a\n\n: keep-alive\n').truncated).toBe(false);
    expect(decodeText('').truncated).toBe(false);
    expect(decodeText('data: a\n\ndata: b\n').events).toHaveLength(1);
  });

  it('drops and counts events over maxEventBytes, then carries on', () => {
    const big = 'x'.repeat(200);
    const r = decodeText(`data: ${big}\n\ndata: ${big.slice(0, 50)}\ndata: ${big.slice(0, 60)}\n\ndata: ok\n\n`);
    const small = decode([utf8(`data: ${big}\n\ndata: ${big.slice(0, 50)}\ndata: ${big.slice(0, 60)}\n\ndata: ok\n\n`)], {
      maxEventBytes: 100,
    });
    expect(r.events).toHaveLength(3);
    expect(small.events).toEqual([{ event: undefined, data: 'ok' }]);
    expect(small.dropped).toBe(2);
  });

  it('a 10 MB line without a newline never grows the buffer past the cap', () => {
    const dec = new SseDecoder({ maxEventBytes: 1024 * 1024 });
    const piece = new Uint8Array(64 * 1024).fill(0x61);
    dec.push(utf8('data: '), () => {});
    let maxHeld = 0;
    for (let i = 0; i < 160; i++) {
      dec.push(piece, () => {});
      maxHeld = Math.max(maxHeld, dec.bufferedBytes);
    }
    expect(maxHeld).toBeLessThanOrEqual(1024 * 1024 + 64);
    const events: SseEvent[] = [];
    dec.push(utf8('\n\ndata: after\n\n'), (ev) => events.push(ev));
    expect(events).toEqual([{ event: undefined, data: 'after' }]);
    expect(dec.droppedEvents).toBe(1);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('10^5 one-byte chunks', () => {
    let text = '';
    let n = 0;
    while (text.length < 100_000) text += `data: {"i":${n++}}\n\n`;
    const bytes = utf8(text).subarray(0, 100_000);
    const dec = new SseDecoder();
    let count = 0;
    let lastI = -1;
    for (let i = 0; i < bytes.length; i++) {
      dec.push(bytes.subarray(i, i + 1), (ev) => {
        count++;
        lastI = (JSON.parse(ev.data) as { i: number }).i;
      });
    }
    const complete = text.slice(0, 100_000).split('\n\n').length - 1;
    expect(count).toBe(complete);
    expect(lastI).toBe(complete - 1);
  });
});

describe('SseDecoder properties', () => {
  it('any chunking of a valid stream gives the modelled events', () => {
    fc.assert(
      fc.property(sseStream, chunking, (s, split) => {
        const whole = decode([s.bytes]);
        expect(whole.events).toEqual(s.events);
        expect(whole.truncated).toBe(false);
        expect(decode(split(s.bytes)).events).toEqual(s.events);
      }),
      { numRuns: 300 },
    );
  });

  it('truncation and corruption never throw and stay bounded', () => {
    fc.assert(
      fc.property(
        sseStream,
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        chunking,
        (s, cut, flips, split) => {
          const bytes = new Uint8Array(s.bytes.subarray(0, cut % (s.bytes.length + 1)));
          for (const [at, v] of flips) if (bytes.length > 0) bytes[at % bytes.length] = v;
          const dec = new SseDecoder({ maxEventBytes: 64 });
          for (const c of split(bytes)) {
            dec.push(c, (ev) => expect(ev.data.length).toBeLessThanOrEqual(64));
            expect(dec.bufferedBytes).toBeLessThanOrEqual(64 + 64);
          }
          dec.end();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a stream cut inside its last event reports truncation and only the earlier events', () => {
    fc.assert(
      fc.property(sseStream, fc.nat(), chunking, (s, cut, split) => {
        const last = s.dispatched.at(-1);
        fc.pre(last !== undefined);
        const { fieldStart, blankStart } = last as DispatchedEvent;
        // Anywhere from inside the first field line up to (not including) the closing blank line.
        const at = fieldStart + 1 + (cut % (blankStart - fieldStart));
        const r = decode(split(s.bytes.subarray(0, at)));
        expect(r.truncated).toBe(true);
        expect(r.events).toEqual(s.events.slice(0, -1));
      }),
      { numRuns: 200 },
    );
  });
});

describe('SseDecoder split inside a line', () => {
  it('splitting a fixture anywhere gives the same events', () => {
    const { response } = loadFixture('anthropic_messages_stream');
    const ref = decode([response.bytes]).events;
    for (let at = 0; at <= response.bytes.length; at += 7) {
      expect(decode(splitAt(response.bytes, [at])).events).toEqual(ref);
    }
  });
});

describe('SseDecoder event types', () => {
  it('repeated, alternating and same-length types: every event gets its own, for any chunking', () => {
    const type = fc.constantFrom('a', 'b', 'ab', 'ba', '', 'ü', 'message_start');
    fc.assert(
      fc.property(fc.array(type, { minLength: 1, maxLength: 12 }), chunking, (types, split) => {
        const stream = utf8(types.map((t, i) => `event: ${t}\ndata: ${i}\n\n`).join(''));
        expect(decode(split(stream)).events).toEqual(types.map((t, i) => ({ event: t === '' ? undefined : t, data: String(i) })));
      }),
      { numRuns: 300 },
    );
  });
});
