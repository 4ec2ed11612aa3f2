import { eagerResponse } from './support/eager-response.js';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import { EventStreamDecoder } from '../src/traffic/decode/eventstream.js';
import { NdjsonDecoder } from '../src/traffic/decode/ndjson.js';
import { SseDecoder } from '../src/traffic/decode/sse.js';
import { HANDLERS, MEDIA_PART_TOKENS } from '../src/traffic/providers/index.js';
import { MAX_DEFERRED_CHARS } from '../src/traffic/providers/base.js';
import { recognize } from '../src/traffic/recognize.js';
import { EMPTY_USAGE } from '../src/domain.js';
import { type ApiHandler, type RequestFacts, type ResponseFacts, type Route, type StreamEvent } from '../src/traffic/types.js';
import { headerValue, loadFixtures, type Fixture } from './support/fixtures.js';
import { retained } from './support/heap.js';

const DISCOVERY = defaultConfig().discovery;
const FIXTURES = loadFixtures();

function fixture(name: string): Fixture {
  const fx = FIXTURES.find((f) => f.name === name);
  if (fx === undefined) throw new Error(`no fixture ${name}`);
  return fx;
}

function routeOf(fx: Fixture): Route {
  const h = new Map(fx.request.headers);
  const route = recognize(
    { method: h.get(':method') ?? '', authority: h.get(':authority') ?? '', path: h.get(':path') ?? '', headers: h },
    DISCOVERY,
  );
  if (route === null) throw new Error(`${fx.name} not recognised`);
  return route;
}

function requestFactsOf(fx: Fixture): RequestFacts | null {
  try {
    return routeOf(fx).handler.parseRequest(JSON.parse(Buffer.concat(fx.request.body_chunks).toString('utf8')));
  } catch {
    return null;
  }
}

/** Replays a 2xx response through the handler the way the exchange pipeline does. */
function replayResponse(fx: Fixture): ResponseFacts {
  const route = routeOf(fx);
  const facts = requestFactsOf(fx);
  const stream = route.pathStream ?? facts?.stream ?? route.streamDefault;
  const framing = route.handler.framing(stream, headerValue(fx.response, 'content-type'));
  const acc = eagerResponse(route.handler);
  const gzip = headerValue(fx.response, 'content-encoding') === 'gzip';
  // Keep the fixture's chunk boundaries unless the body must be gunzipped first.
  const chunks = gzip ? [gunzipSync(Buffer.concat(fx.response.body_chunks))] : fx.response.body_chunks;
  const feed = (ev: StreamEvent): void => acc.onEvent(ev);
  switch (framing) {
    case 'json':
      acc.onJson(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      break;
    case 'sse': {
      const d = new SseDecoder();
      for (const c of chunks) d.push(c, (e) => feed({ kind: 'sse', event: e.event, data: e.data }));
      break;
    }
    case 'eventstream': {
      const d = new EventStreamDecoder();
      for (const c of chunks) d.push(c, (f) => feed({ kind: 'frame', headers: f.headers, payload: f.payload }));
      break;
    }
    case 'ndjson': {
      const d = new NdjsonDecoder();
      for (const c of chunks) d.push(c, (text) => feed({ kind: 'line', text }));
      break;
    }
  }
  return acc.result();
}

const is2xx = (fx: Fixture): boolean => fx.expected.status >= 200 && fx.expected.status < 300;

describe('handlers: every 2xx fixture', () => {
  for (const fx of FIXTURES.filter((f) => f.expected.provider !== 'unknown' && is2xx(f))) {
    it(fx.name, () => {
      const result = replayResponse(fx);
      expect(result.responseModel).toBe(fx.expected.response_model);
      expect(result.usage ?? { ...EMPTY_USAGE }).toEqual(fx.expected.usage);
      // Generated text is kept for estimation (embeddings generate none).
      expect(result.outputText.length > 0).toBe(fx.expected.api !== 'embeddings');
      expect(result.outputTextTruncated).toBe(false);
    });
  }
});

describe('handlers: request facts of every fixture', () => {
  for (const fx of FIXTURES.filter((f) => f.expected.provider !== 'unknown')) {
    it(fx.name, () => {
      const route = routeOf(fx);
      const facts = requestFactsOf(fx);
      expect(route.pathModel ?? facts?.model ?? null).toBe(fx.expected.model);
      expect(route.pathStream ?? facts?.stream ?? route.streamDefault).toBe(fx.expected.stream);
      if (facts !== null) {
        // Every parseable request has prompt text to estimate, and none of it is base64 media.
        expect(facts.promptText.join('').length).toBeGreaterThan(0);
        expect(facts.promptText.some((t) => t.includes('base64,'))).toBe(false);
      }
    });
  }
});

describe('request facts', () => {
  it('reads the output limit in each API family', () => {
    const limits: Record<string, number | null> = {
      anthropic_messages_stream: 1024,
      openai_chat_completions_reasoning_cached: 4000,
      bedrock_converse_cache_read: 512,
      bedrock_invoke_anthropic: 300,
      vertex_generate_content: 120,
      openai_compatible_unknown_host: 60,
      openai_chat_completions_basic: null,
    };
    for (const [name, max] of Object.entries(limits)) expect(requestFactsOf(fixture(name))?.maxOutputTokens, name).toBe(max);
    expect(HANDLERS.responses.parseRequest({ max_output_tokens: 77 }).maxOutputTokens).toBe(77);
    expect(HANDLERS.ollama_chat.parseRequest({ options: { num_predict: 64 } }).maxOutputTokens).toBe(64);
    expect(HANDLERS.ollama_chat.parseRequest({ options: { num_predict: -1 } }).maxOutputTokens).toBeNull();
    expect(HANDLERS.generate_content.parseRequest({ generation_config: { max_output_tokens: 9 } }).maxOutputTokens).toBe(9);
  });

  it('reports include_usage only when the client asked for it', () => {
    expect(requestFactsOf(fixture('openai_chat_completions_stream_include_usage'))?.includeUsageRequested).toBe(true);
    expect(requestFactsOf(fixture('openai_chat_completions_stream_no_usage'))?.includeUsageRequested).toBe(false);
    expect(HANDLERS.chat_completions.parseRequest({ stream_options: { include_usage: 'true' } }).includeUsageRequested).toBe(false);
  });

  it('counts an image as a fixed allowance instead of its base64 text', () => {
    const facts = requestFactsOf(fixture('bad_large_request_5mb'))!;
    expect(facts.extraTokens).toBe(MEDIA_PART_TOKENS);
    expect(facts.promptText).toEqual(['What defects are visible on this circuit board photo?']);
    const anthropic = HANDLERS.messages.parseRequest({
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', data: 'AAAA' } }, { type: 'text', text: 'hi' }] }],
    });
    expect(anthropic).toMatchObject({ promptText: ['hi'], extraTokens: MEDIA_PART_TOKENS });
    const gemini = HANDLERS.generate_content.parseRequest({
      contents: [{ parts: [{ inlineData: { mimeType: 'image/png', data: 'AAAA' } }, { text: 'caption' }] }],
    });
    expect(gemini).toMatchObject({ promptText: ['caption'], extraTokens: MEDIA_PART_TOKENS });
    const ollama = HANDLERS.ollama_chat.parseRequest({ messages: [{ content: 'what?', images: ['AAAA', 'BBBB'] }] });
    expect(ollama).toMatchObject({ promptText: ['what?'], extraTokens: 2 * MEDIA_PART_TOKENS });
  });

  it('collects system prompts, tool schemas and tool results', () => {
    const facts = HANDLERS.messages.parseRequest({
      system: 'be brief',
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
      messages: [
        { role: 'assistant', content: [{ type: 'tool_use', name: 'get_weather', input: { city: 'Oslo' } }] },
        { role: 'user', content: [{ type: 'tool_result', content: [{ type: 'text', text: 'rain' }] }] },
      ],
    });
    const all = facts.promptText.join('\n');
    for (const piece of ['be brief', 'input_schema', '{"city":"Oslo"}', 'rain']) expect(all).toContain(piece);
    const converse = HANDLERS.converse.parseRequest(JSON.parse(Buffer.concat(fixture('bedrock_converse_cache_read').request.body_chunks).toString()));
    expect(converse.promptText[0]).toContain('You write crisp engineering status updates.');
    const responses = HANDLERS.responses.parseRequest({
      instructions: 'sys',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'q' }, { type: 'input_image', image_url: 'data:...' }] }],
    });
    expect(responses).toMatchObject({ promptText: ['sys', 'q'], extraTokens: MEDIA_PART_TOKENS });
  });

  it('counts embeddings input strings, and token-id inputs as given', () => {
    expect(requestFactsOf(fixture('openai_embeddings_array_input_base64'))?.promptText).toEqual([
      'red running shoes',
      'waterproof trail jacket',
      'insulated steel bottle',
    ]);
    expect(HANDLERS.embeddings.parseRequest({ input: [[1, 2, 3], [4, 5]] })).toMatchObject({ promptText: [], extraTokens: 5 });
  });
});

describe('framing', () => {
  it('follows the stream flag unless the content-type clearly says otherwise', () => {
    expect(HANDLERS.chat_completions.framing(false, 'application/json')).toBe('json');
    expect(HANDLERS.chat_completions.framing(true, 'text/event-stream; charset=utf-8')).toBe('sse');
    expect(HANDLERS.chat_completions.framing(true, 'application/json')).toBe('json');
    expect(HANDLERS.chat_completions.framing(true, undefined)).toBe('sse');
    expect(HANDLERS.converse_stream.framing(true, 'application/vnd.amazon.eventstream')).toBe('eventstream');
    expect(HANDLERS.invoke_with_response_stream.framing(true, 'text/plain')).toBe('eventstream');
    expect(HANDLERS.ollama_chat.framing(true, 'application/x-ndjson')).toBe('ndjson');
    expect(HANDLERS.ollama_chat.framing(true, undefined)).toBe('ndjson');
    expect(HANDLERS.ollama_chat.framing(false, 'application/json; charset=utf-8')).toBe('json');
    expect(HANDLERS.messages.framing(false, 'text/event-stream')).toBe('sse');
  });
});

function sse(data: unknown, event?: string): StreamEvent {
  return { kind: 'sse', event, data: typeof data === 'string' ? data : JSON.stringify(data) };
}

function run(handler: ApiHandler, events: StreamEvent[]): ResponseFacts {
  const acc = eagerResponse(handler);
  for (const e of events) acc.onEvent(e);
  return acc.result();
}

describe('stream semantics', () => {
  it('collects the streamed text', () => {
    expect(replayResponse(fixture('openai_chat_completions_stream_no_usage')).outputText).toBe('Summit Striders');
    expect(replayResponse(fixture('ollama_chat_stream_ndjson')).outputText).toBe('One, two, three, four, five.');
    expect(replayResponse(fixture('bedrock_invoke_with_response_stream_anthropic')).outputText).toBe(
      'Start the subject line with an imperative verb and keep it under about fifty characters.',
    );
    expect(replayResponse(fixture('bedrock_converse_stream')).outputText).toContain('coffee cools, still red');
  });

  it('counts Groq usage once when both x_groq.usage and a usage chunk arrive', () => {
    const usage = { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 };
    const r = run(HANDLERS.chat_completions, [
      sse({ model: 'llama', choices: [{ delta: { content: 'hi' }, finish_reason: 'stop' }], x_groq: { usage } }),
      sse({ model: 'llama', choices: [], usage }),
      sse('[DONE]'),
    ]);
    expect(r.usage).toMatchObject({ input_tokens: 5, output_tokens: 2, total_tokens: 7 });
  });

  it('overwrites Anthropic message_start usage field by field with message_delta', () => {
    const r = run(HANDLERS.messages, [
      sse({ type: 'message_start', message: { model: 'claude-x', usage: { input_tokens: 10, cache_read_input_tokens: 4, output_tokens: 1 } } }),
      sse({ type: 'message_delta', usage: { output_tokens: 30, output_tokens_details: { thinking_tokens: 12 } } }),
    ]);
    expect(r.responseModel).toBe('claude-x');
    expect(r.usage).toEqual({
      input_tokens: 14,
      output_tokens: 30,
      total_tokens: null,
      cached_input_tokens: 4,
      cache_write_tokens: null,
      reasoning_tokens: 12,
    });
  });

  it('reads Responses usage from response.incomplete and response.failed', () => {
    for (const type of ['response.incomplete', 'response.failed']) {
      const r = run(HANDLERS.responses, [
        sse({ type: 'response.created', response: { model: 'gpt-x', usage: null } }),
        sse({ type: 'response.output_text.delta', delta: 'par' }),
        sse({ type, response: { model: 'gpt-x', usage: { input_tokens: 3, output_tokens: 9, total_tokens: 12 } } }, type),
      ]);
      expect(r).toMatchObject({ responseModel: 'gpt-x', outputText: 'par' });
      expect(r.usage).toMatchObject({ input_tokens: 3, output_tokens: 9, total_tokens: 12, reasoning_tokens: null });
    }
  });

  it('falls back to Cohere billed_units per field', () => {
    const acc = HANDLERS.cohere_chat.newResponse();
    acc.onJson({ usage: { billed_units: { input_tokens: 4, output_tokens: 6 }, tokens: { output_tokens: 8 } } });
    expect(acc.result().usage).toMatchObject({ input_tokens: 4, output_tokens: 8 });
  });

  it('reads a Gemini stream sent as one JSON array (no alt=sse), last usage winning', () => {
    const acc = HANDLERS.stream_generate_content.newResponse();
    acc.onJson([
      { candidates: [{ content: { parts: [{ text: 'a' }] } }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 1 }, modelVersion: 'g-1' },
      { candidates: [{ content: { parts: [{ text: 'b' }] } }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 } },
    ]);
    expect(acc.result()).toMatchObject({ responseModel: 'g-1', outputText: 'ab' });
    expect(acc.result().usage).toMatchObject({ input_tokens: 3, output_tokens: 2, total_tokens: 5, reasoning_tokens: null });
  });

  it('uses Bedrock invocation metrics for non-Anthropic invoke streams', () => {
    const inner = { generation: 'hello', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 11, outputTokenCount: 2 } };
    const payload = new TextEncoder().encode(JSON.stringify({ bytes: Buffer.from(JSON.stringify(inner)).toString('base64') }));
    const r = run(HANDLERS.invoke_with_response_stream, [{ kind: 'frame', headers: { ':event-type': 'chunk' }, payload }]);
    expect(r.outputText).toBe('hello');
    expect(r.usage).toMatchObject({ input_tokens: 11, output_tokens: 2, total_tokens: null });
  });

  it('ignores Ollama counts before the done:true line', () => {
    const line = (o: unknown): StreamEvent => ({ kind: 'line', text: JSON.stringify(o) });
    const partial = run(HANDLERS.ollama_chat, [line({ model: 'm', message: { content: 'x' }, done: false, eval_count: 1 })]);
    expect(partial.usage).toBeNull();
  });

  it('keeps reported zeros and ignores counts that are not numbers', () => {
    const acc = HANDLERS.chat_completions.newResponse();
    acc.onJson({ model: '', usage: { prompt_tokens: 0, completion_tokens: '5', total_tokens: -1, prompt_tokens_details: null } });
    expect(acc.result()).toMatchObject({ responseModel: null, usage: { ...EMPTY_USAGE, input_tokens: 0 } });
  });

  it('bounds the output text to 1 MiB of UTF-8 without splitting a character', () => {
    const acc = eagerResponse(HANDLERS.chat_completions);
    const piece = 'é'.repeat(100_000); // 200,000 bytes
    for (let i = 0; i < 6; i++) acc.onEvent(sse({ choices: [{ delta: { content: piece } }] }));
    const r = acc.result();
    expect(r.outputTextTruncated).toBe(true);
    expect(Buffer.byteLength(r.outputText)).toBe(1024 * 1024);
    expect(r.outputText.endsWith('é')).toBe(true);
  });
});

describe('hostile input never throws', () => {
  const handlers = Object.values(HANDLERS);
  const hostile: unknown[] = [
    null,
    undefined,
    42,
    'text',
    [],
    [null, 1, 'x'],
    { model: ['a'], stream: 'yes', messages: 'not an array', usage: [], choices: {}, contents: 5 },
    { messages: [null, 1, { content: { text: null } }, { content: [null, [], { type: 'image' }] }] },
    { usage: { prompt_tokens: {}, input_tokens: [], promptTokenCount: null }, message: { usage: 'x' } },
    { type: 'message_start', message: null },
    { type: 'content_block_delta', delta: [] },
    { bytes: 12 },
    { bytes: '!!!not base64!!!' },
    { input: [[[1]], { type: 'function_call', arguments: { deep: [] } }], tools: 'none' },
  ];
  let deep: unknown = 'leaf';
  for (let i = 0; i < 100_000; i++) deep = { content: [deep], args: deep };
  hostile.push({ messages: [{ content: deep, tool_calls: [{ function: { arguments: deep } }] }], tools: deep, input: deep });

  const events = (v: unknown): StreamEvent[] => {
    let text: string;
    try {
      text = JSON.stringify(v) ?? 'undefined';
    } catch {
      text = '{';
    }
    return [
      { kind: 'sse', event: 'message_start', data: text },
      { kind: 'sse', event: undefined, data: '{"unterminated' },
      { kind: 'line', text },
      { kind: 'frame', headers: { ':event-type': 'chunk' }, payload: new TextEncoder().encode(text) },
      { kind: 'frame', headers: {}, payload: new Uint8Array([0xff, 0xfe, 0x00]) },
    ];
  };

  it('handles fixed hostile shapes in every handler', () => {
    for (const h of handlers) {
      for (const v of hostile) {
        const facts = h.parseRequest(v);
        expect(Array.isArray(facts.promptText)).toBe(true);
        const acc = eagerResponse(h);
        acc.onJson(v);
        for (const e of events(v)) acc.onEvent(e);
        const r = acc.result();
        expect(typeof r.outputText).toBe('string');
      }
    }
  });

  it('handles arbitrary JSON in every handler', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        for (const h of handlers) {
          h.parseRequest(v);
          const acc = eagerResponse(h);
          acc.onJson(v);
          for (const e of events(v)) acc.onEvent(e);
          const u = acc.result().usage;
          if (u !== null) for (const n of Object.values(u)) if (n !== null) expect(Number.isInteger(n) && n >= 0).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** A stream event as the exchange hands it to onStreamText (frames as their payload's text). */
interface TextEvent {
  text: string;
  name: string | undefined;
}

const asStreamEvent = (e: TextEvent): StreamEvent => ({ kind: 'sse', event: e.name, data: e.text });

/** The events of a streamed 2xx fixture, decoded as the exchange decodes them. */
function textEventsOf(fx: Fixture): TextEvent[] {
  const route = routeOf(fx);
  const facts = requestFactsOf(fx);
  const stream = route.pathStream ?? facts?.stream ?? route.streamDefault;
  const out: TextEvent[] = [];
  const chunks = fx.response.body_chunks;
  switch (route.handler.framing(stream, headerValue(fx.response, 'content-type'))) {
    case 'sse': {
      const d = new SseDecoder();
      for (const c of chunks) d.push(c, (e) => out.push({ text: e.data, name: e.event }));
      break;
    }
    case 'eventstream': {
      const d = new EventStreamDecoder();
      for (const c of chunks) d.push(c, (f) => out.push({ text: new TextDecoder().decode(f.payload), name: f.headers[':event-type'] }));
      break;
    }
    case 'ndjson': {
      const d = new NdjsonDecoder();
      for (const c of chunks) d.push(c, (text) => out.push({ text, name: undefined }));
      break;
    }
    case 'json':
      break;
  }
  return out;
}

/**
 * Feeds events through onStreamText (which may defer reading them) and through onEvent (which
 * reads each at once), asking both for outputBytes() where `polls` says: every answer and the final
 * facts must be the same.
 */
function expectLazyMatchesEager(handler: ApiHandler, events: readonly TextEvent[], polls: readonly boolean[], maxTextBytes?: number): void {
  const lazy = handler.newResponse(maxTextBytes);
  const eager = eagerResponse(handler, maxTextBytes);
  events.forEach((e, i) => {
    lazy.onStreamText(e.text, e.name);
    eager.onEvent(asStreamEvent(e));
    if (polls[i % Math.max(polls.length, 1)]) expect(lazy.outputBytes()).toBe(eager.outputBytes());
  });
  // Usage and model first: they must not depend on the deferred events being read.
  const l = lazy.result();
  const e = eager.result();
  expect(l.responseModel).toBe(e.responseModel);
  expect(l.usage).toEqual(e.usage);
  expect(l.outputText).toBe(e.outputText);
  expect(l.outputTextTruncated).toBe(e.outputTextTruncated);
  expect(lazy.outputBytes()).toBe(eager.outputBytes());
}

describe('stream events read lazily', () => {
  const streamed = FIXTURES.filter((f) => f.expected.provider !== 'unknown' && is2xx(f) && textEventsOf(f).length > 0);

  it('covers the streamed fixtures of every framing', () => {
    expect(streamed.length).toBeGreaterThanOrEqual(12);
  });

  it('every streamed fixture: same usage, model, text and output size at any point, whatever the text cap', () => {
    fc.assert(
      fc.property(fc.constantFrom(...streamed), fc.array(fc.boolean(), { maxLength: 8 }), fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }), (fx, polls, cap) => {
        expectLazyMatchesEager(routeOf(fx).handler, textEventsOf(fx), polls, cap);
      }),
      { numRuns: 300 },
    );
  });

  const chunk = (content: string, extra: object = {}): TextEvent => ({ text: JSON.stringify({ model: 'gpt-4o', choices: [{ delta: { content } }], ...extra }), name: undefined });

  it('text read with the usage of a later event keeps its place behind the deferred text', () => {
    const events = [chunk('aaa'), chunk('bbb'), chunk('ccc', { usage: { prompt_tokens: 3, completion_tokens: 4 } }), chunk('ddd')];
    const acc = HANDLERS.chat_completions.newResponse(7);
    for (const e of events) acc.onStreamText(e.text, e.name);
    const r = acc.result();
    expect(r.usage).toMatchObject({ input_tokens: 3, output_tokens: 4 });
    expect(r.outputText).toBe('aaabbbc');
    expect(r.outputTextTruncated).toBe(true);
    expectLazyMatchesEager(HANDLERS.chat_completions, events, [false], 7);
  });

  it('a stream past the deferral bound, usage at its end: same facts, text in order, whatever the cap', () => {
    const events: TextEvent[] = [];
    for (let i = 0; events.length * 100 < 3 * MAX_DEFERRED_CHARS; i++) events.push(chunk(`<${i}>`.padEnd(40, '.')));
    events.push(chunk('end', { usage: { prompt_tokens: 1, completion_tokens: 2 } }), { text: 'x'.repeat(MAX_DEFERRED_CHARS + 1), name: undefined });
    for (const cap of [undefined, 100_000, 1_000]) expectLazyMatchesEager(HANDLERS.chat_completions, events, [false], cap);
    const acc = HANDLERS.chat_completions.newResponse();
    for (const e of events) acc.onStreamText(e.text, e.name);
    expect(acc.result().outputText.startsWith('<0>...')).toBe(true);
    expect(acc.result().outputText.endsWith('end')).toBe(true);
  });

  it('usage under a key spelt with escapes is still read', () => {
    const acc = HANDLERS.chat_completions.newResponse();
    acc.onStreamText(chunk('hi').text, undefined);
    acc.onStreamText('{"choices":[],"\\u0075sage":{"prompt_tokens":3,"completion_tokens":4}}', undefined);
    expect(acc.result().usage).toMatchObject({ input_tokens: 3, output_tokens: 4 });
  });

  it('the first non-empty model wins even when earlier events had none', () => {
    const acc = HANDLERS.messages.newResponse();
    acc.onStreamText('{"type":"content_block_delta","delta":{"text":"x"}}', 'content_block_delta');
    acc.onStreamText('{"type":"message_start","message":{"model":"claude-a","usage":{"input_tokens":2}}}', 'message_start');
    acc.onStreamText('{"type":"message_start","message":{"model":"claude-b"}}', 'message_start');
    expect(acc.result().responseModel).toBe('claude-a');
  });

  it('arbitrary event sequences: lazy and eager agree for every handler', () => {
    const text = fc.oneof(fc.constant(''), fc.string({ maxLength: 6 }), fc.constant('ü€😀'));
    const usage = fc.record({ prompt_tokens: fc.nat(99), completion_tokens: fc.nat(99), input_tokens: fc.nat(99), output_tokens: fc.nat(99), outputTokens: fc.nat(99) }, { requiredKeys: [] });
    const value = fc.oneof(
      fc.record({ model: fc.option(fc.constantFrom('', 'm1', 'm2')), choices: fc.array(fc.record({ delta: fc.record({ content: text }) }), { maxLength: 2 }), usage: fc.option(usage) }, { requiredKeys: [] }),
      fc.record({ type: fc.constantFrom('message_start', 'message_delta', 'content_block_delta', 'content_block_start'), message: fc.record({ model: fc.constantFrom('', 'c1', 'c2'), usage }, { requiredKeys: [] }), delta: fc.record({ text }), usage }, { requiredKeys: ['type'] }),
      fc.record({ delta: fc.record({ text }), usage: fc.option(usage), contentBlockDelta: fc.record({ delta: fc.record({ text }) }) }, { requiredKeys: [] }),
      fc.jsonValue({ maxDepth: 3 }),
    );
    // Some events escape every non-ASCII character and some keys, as Python's json.dumps does.
    const encoded = fc.tuple(value, fc.boolean()).map(([v, escape]) => {
      const json = JSON.stringify(v) ?? 'null';
      return escape ? json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).replace(/"usage"/g, '"\\u0075sage"') : json;
    });
    const event = fc.record({
      text: fc.oneof({ weight: 6, arbitrary: encoded }, { weight: 1, arbitrary: fc.constantFrom('[DONE]', '', ' {"x"', 'not json') }),
      name: fc.option(fc.constantFrom('message_start', 'content_block_delta', 'contentBlockDelta', 'metadata'), { nil: undefined }),
    });
    const handlers = Object.values(HANDLERS);
    fc.assert(
      fc.property(fc.constantFrom(...handlers), fc.array(event, { maxLength: 12 }), fc.array(fc.boolean(), { maxLength: 5 }), fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }), (h, events, polls, cap) => {
        expectLazyMatchesEager(h, events, polls, cap);
      }),
      { numRuns: 500 },
    );
  });
});

describe('hostile model names', () => {
  const huge = `gpt-4o-${'x'.repeat(1_000_000)}`;

  it('keep at most 256 characters of a request model, for every API', () => {
    let withModel = 0;
    for (const handler of Object.values(HANDLERS)) {
      const facts = handler.parseRequest({ model: huge, messages: [], contents: [], input: 'hi' });
      if (facts.model === null) continue; // APIs that name the model in the path only
      withModel++;
      expect(facts.model).toBe(huge.slice(0, 256));
    }
    expect(withModel).toBeGreaterThan(5);
  });

  it('keep at most 256 characters of a response model', () => {
    const acc = HANDLERS.chat_completions!.newResponse();
    acc.onJson({ model: huge, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1 } });
    expect(acc.result().responseModel).toBe(huge.slice(0, 256));
  });

  it('keep nothing of the rest of the value alive', () => {
    const before = retained();
    // Records and metric labels keep model names: 50 distinct megabyte values would be 50 MB.
    const kept = Array.from({ length: 50 }, (_, i) => HANDLERS.chat_completions!.parseRequest({ model: `${i}${huge}`, messages: [] }).model);
    expect(kept.every((m) => m?.length === 256)).toBe(true);
    expect(retained() - before).toBeLessThan(10e6);
  });
});
