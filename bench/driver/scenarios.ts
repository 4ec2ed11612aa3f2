/**
 * The benchmark scenarios: one simulated HTTP exchange each, as Envoy's ext_proc filter presents it
 * to the server (headers with `raw_value`, the BUFFERED request body in one message, the STREAMED
 * response body one message per upstream chunk). Pure data: the driver and the ghz configs both
 * derive their messages from here, so the two always send the same bytes.
 */
import { crc32 } from 'node:zlib';
import type { WireProcessingRequest } from '../../src/extproc/protocol.js';

export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export interface Scenario {
  name: string;
  description: string;
  /** Envoy's observability mode: every message is mirrored, no answer is awaited or expected. */
  observability: boolean;
  /**
   * The exchange is one round trip: it ends at the request headers' answer. That is what Envoy does
   * with non-LLM traffic once tokenwarden's mode_override switched the rest off; the no-op baseline
   * is held to the same single round trip so the ratio compares like with like.
   */
  headersOnly: boolean;
  requestHeaders: HeaderList;
  requestBody: Buffer | null;
  responseHeaders: HeaderList;
  responseChunks: readonly Buffer[];
  /**
   * Distinct `x-consumer-id` values the exchanges cycle through (exchange i is consumer i mod N);
   * 1 keeps the one header of `requestHeaders`. Only the request headers message differs.
   */
  consumers: number;
  /** What tokenwarden runs with; the no-op server ignores it (its traffic is the same). */
  setup: ServerSetup;
}

/**
 * budget: one enforce budget that applies to the scenario's traffic with limits nothing reaches, so
 * every exchange makes one ledger decision and none is refused. store: where the inventory and the
 * budget ledger live.
 */
export interface ServerSetup {
  budget: boolean;
  store: 'memory' | 'redis';
}

const PLAIN: ServerSetup = { budget: false, store: 'memory' };

/**
 * tokenwarden's `budgets:` section for a scenario with `setup.budget`: enforce mode, selecting the
 * OpenAI traffic, with limits no bench run reaches (a refusal would skip the upstream half of the
 * exchange and flatter the figures). A token limit makes admission estimate the prompt, as it must.
 */
export const BENCH_BUDGETS_YAML = [
  'budgets:',
  '  - id: bench-enforce',
  '    mode: enforce',
  '    select: { providers: [openai] }',
  '    limits:',
  '      - { total_tokens: 1000000000000, per: day }',
  '      - { requests: 1000000000, per: day }',
].join('\n');

const json = (value: unknown): string => JSON.stringify(value);

const CONSUMER_HEADER = 'x-consumer-id';

const post = (authority: string, path: string, body: Buffer, extra: HeaderList): HeaderList => [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', authority],
  [':path', path],
  ['content-type', 'application/json'],
  ['content-length', String(body.length)],
  ['x-request-id', 'bench-0001'],
  [CONSUMER_HEADER, 'bench-consumer'],
  ...extra,
];

const status200 = (contentType: string): HeaderList => [
  [':status', '200'],
  ['content-type', contentType],
];

/** Ordinary English-like text (spaces every few letters): the tokenizer's normal case, not its worst. */
function prose(bytes: number): string {
  const sentence = 'The quarterly report lists every order, its shipping state and the notes our support team added. ';
  return sentence.repeat(Math.ceil(bytes / sentence.length)).slice(0, bytes);
}

function openaiChatRequest(promptBytes: number, stream: boolean): Buffer {
  return Buffer.from(
    json({
      messages: [
        { role: 'system', content: 'You summarise customer orders for the support team.' },
        { role: 'user', content: prose(promptBytes) },
      ],
      model: 'gpt-4o-mini',
      max_tokens: 400,
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    }),
  );
}

const openaiHeaders = (body: Buffer): HeaderList =>
  post('api.openai.com', '/v1/chat/completions', body, [['authorization', 'Bearer sk-bench-not-a-real-key']]);

function openaiChatResponse(): Buffer {
  return Buffer.from(
    json({
      id: 'chatcmpl-bench',
      object: 'chat.completion',
      created: 1760000000,
      model: 'gpt-4o-mini-2024-07-18',
      choices: [{ index: 0, message: { role: 'assistant', content: prose(600) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 520, completion_tokens: 130, total_tokens: 650 },
    }),
  );
}

/** `deltas` content chunks, then the include_usage chunk and [DONE]: one SSE event per body message. */
function openaiStreamChunks(deltas: number): Buffer[] {
  const chunk = (delta: object, extra: object = {}): string =>
    `data: ${json({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1760000000, model: 'gpt-4o-mini-2024-07-18', choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
  const out = [chunk({ role: 'assistant', content: '' })];
  for (let i = 1; i < deltas - 1; i++) out.push(chunk({ content: ` word${i}` }));
  out.push(
    `data: ${json({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1760000000, model: 'gpt-4o-mini-2024-07-18', choices: [], usage: { prompt_tokens: 40, completion_tokens: deltas, total_tokens: 40 + deltas } })}\n\n` +
      'data: [DONE]\n\n',
  );
  return out.map((s) => Buffer.from(s));
}

function anthropicStreamChunks(deltas: number): Buffer[] {
  const event = (type: string, data: object): string => `event: ${type}\ndata: ${json({ type, ...data })}\n\n`;
  const out = [
    event('message_start', {
      message: { id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-haiku-4-5-20251001', content: [], stop_reason: null, usage: { input_tokens: 412, output_tokens: 1 } },
    }),
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ];
  for (let i = 0; i < deltas; i++) out.push(event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: ` word${i}` } }));
  out.push(event('content_block_stop', { index: 0 }));
  out.push(event('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: deltas } }));
  out.push(event('message_stop', {}));
  return out.map((s) => Buffer.from(s));
}

/** One AWS event-stream frame (prelude, CRCs, string headers), as Bedrock's converse-stream sends it. */
export function eventStreamFrame(eventType: string, payload: object): Buffer {
  const headers = Buffer.concat(
    (
      [
        [':event-type', eventType],
        [':content-type', 'application/json'],
        [':message-type', 'event'],
      ] as const
    ).map(([name, value]) => {
      const n = Buffer.from(name);
      const v = Buffer.from(value);
      const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
      h[0] = n.length;
      n.copy(h, 1);
      h[1 + n.length] = 7; // string
      h.writeUInt16BE(v.length, 2 + n.length);
      v.copy(h, 4 + n.length);
      return h;
    }),
  );
  const body = Buffer.from(json(payload));
  const total = 12 + headers.length + body.length + 4;
  const prelude = Buffer.alloc(8);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(headers.length, 4);
  const head = Buffer.concat([prelude, u32(crc32(prelude)), headers, body]);
  return Buffer.concat([head, u32(crc32(head))]);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

function bedrockStreamChunks(deltas: number): Buffer[] {
  const out = [eventStreamFrame('messageStart', { role: 'assistant' })];
  for (let i = 0; i < deltas; i++) out.push(eventStreamFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: ` word${i}` } }));
  out.push(eventStreamFrame('contentBlockStop', { contentBlockIndex: 0 }));
  out.push(eventStreamFrame('messageStop', { stopReason: 'end_turn' }));
  out.push(eventStreamFrame('metadata', { metrics: { latencyMs: 812 }, usage: { inputTokens: 19, outputTokens: deltas, totalTokens: 19 + deltas } }));
  return out;
}

function build(): Scenario[] {
  const chat = openaiChatRequest(2048, false);
  const chatStream = openaiChatRequest(256, true);
  const prompt1mb = openaiChatRequest(1024 * 1024, false);
  const anthropic = Buffer.from(
    json({ max_tokens: 1024, messages: [{ role: 'user', content: prose(512) }], model: 'claude-haiku-4-5', stream: true }),
  );
  const bedrock = Buffer.from(json({ messages: [{ role: 'user', content: [{ text: prose(256) }] }], inferenceConfig: { maxTokens: 200 } }));
  const sse = status200('text/event-stream; charset=utf-8');
  const streamScenario = {
    observability: false,
    headersOnly: false,
    requestHeaders: openaiHeaders(chatStream),
    requestBody: chatStream,
    responseHeaders: sse,
    responseChunks: openaiStreamChunks(100),
    consumers: 1,
    setup: PLAIN,
  };
  const chatScenario: Scenario = {
    name: 'chat',
    description: 'OpenAI chat completion, non-streaming, 2 KB prompt, one JSON response chunk',
    observability: false,
    headersOnly: false,
    requestHeaders: openaiHeaders(chat),
    requestBody: chat,
    responseHeaders: status200('application/json'),
    responseChunks: [openaiChatResponse()],
    consumers: 1,
    setup: PLAIN,
  };
  return [
    {
      name: 'non-llm',
      description: 'GET to an internal JSON API: request headers only, one round trip',
      observability: false,
      headersOnly: true,
      requestHeaders: [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':authority', 'orders.internal.example'],
        [':path', '/api/v2/orders/88213?expand=items'],
        ['accept', 'application/json'],
        ['x-request-id', 'bench-0001'],
      ],
      requestBody: null,
      responseHeaders: status200('application/json'),
      responseChunks: [Buffer.from(json({ id: 88213, items: 3 }))],
      consumers: 1,
      setup: PLAIN,
    },
    chatScenario,
    { name: 'chat-stream', description: 'OpenAI chat completion streaming: 100 SSE chunks, usage in the last', ...streamScenario },
    {
      name: 'anthropic-stream',
      description: 'Anthropic messages streaming: 55 SSE events, usage in message_start and message_delta',
      observability: false,
      headersOnly: false,
      requestHeaders: post('api.anthropic.com', '/v1/messages', anthropic, [
        ['anthropic-version', '2023-06-01'],
        ['x-api-key', 'sk-ant-bench-not-a-real-key'],
      ]),
      requestBody: anthropic,
      responseHeaders: sse,
      responseChunks: anthropicStreamChunks(50),
      consumers: 1,
      setup: PLAIN,
    },
    {
      name: 'bedrock-stream',
      description: 'Bedrock converse-stream: 54 AWS event-stream frames, usage in the metadata event',
      observability: false,
      headersOnly: false,
      requestHeaders: post('bedrock-runtime.us-east-1.amazonaws.com', '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream', bedrock, [
        ['accept', 'application/vnd.amazon.eventstream'],
        ['authorization', 'AWS4-HMAC-SHA256 Credential=AKIABENCHEXAMPLE/20251017/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00'],
      ]),
      requestBody: bedrock,
      responseHeaders: status200('application/vnd.amazon.eventstream'),
      responseChunks: bedrockStreamChunks(50),
      consumers: 1,
      setup: PLAIN,
    },
    {
      name: 'prompt-1mb',
      description: 'OpenAI chat completion, non-streaming, 1 MB prompt in the BUFFERED request body',
      observability: false,
      headersOnly: false,
      requestHeaders: openaiHeaders(prompt1mb),
      requestBody: prompt1mb,
      responseHeaders: status200('application/json'),
      responseChunks: [openaiChatResponse()],
      consumers: 1,
      setup: PLAIN,
    },
    {
      name: 'observability',
      description: 'chat-stream mirrored in observability mode: everything sent at once, no answers awaited',
      ...streamScenario,
      observability: true,
    },
    { ...chatScenario, name: 'budget-memory', description: 'chat with an enforce budget that applies (never reached) on the memory store: one ledger decision per exchange', setup: { budget: true, store: 'memory' } },
    { ...chatScenario, name: 'budget-redis', description: 'budget-memory with the inventory and the budget ledger on Redis: one Redis round trip per decision', setup: { budget: true, store: 'redis' } },
    { ...chatScenario, name: 'churn-10k', description: 'chat where each exchange comes from another of 10,000 consumers (x-consumer-id): inventory churn', consumers: 10_000 },
  ];
}

export const SCENARIOS: readonly Scenario[] = build();

export function findScenario(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario "${name}"; known: ${SCENARIOS.map((x) => x.name).join(', ')}`);
  return s;
}

export type Phase = 'request_headers' | 'request_body' | 'response_headers' | 'response_body';
export const PHASES: readonly Phase[] = ['request_headers', 'request_body', 'response_headers', 'response_body'];

export interface Step {
  phase: Phase;
  message: WireProcessingRequest;
}

const headerMap = (list: HeaderList) => ({ headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });

/** The request headers of the scenario's exchange number `exchange` (its consumer set). */
export function exchangeRequestHeaders(s: Scenario, exchange: number): HeaderList {
  if (s.consumers <= 1) return s.requestHeaders;
  const consumer = `bench-consumer-${exchange % s.consumers}`;
  return s.requestHeaders.map(([name, value]) => [name, name === CONSUMER_HEADER ? consumer : value] as const);
}

/**
 * The messages Envoy sends for the scenario's exchange number `exchange`, in order (the first
 * carries observability_mode). Exchanges differ only in their consumer (see `Scenario.consumers`).
 */
export function scenarioSteps(s: Scenario, exchange = 0): Step[] {
  const steps: Step[] = [
    {
      phase: 'request_headers',
      message: { request_headers: { headers: headerMap(exchangeRequestHeaders(s, exchange)), end_of_stream: s.requestBody === null } },
    },
  ];
  if (s.observability) steps[0]!.message.observability_mode = true;
  if (s.headersOnly) return steps;
  if (s.requestBody !== null) steps.push({ phase: 'request_body', message: { request_body: { body: s.requestBody, end_of_stream: true } } });
  const chunks = s.responseChunks;
  steps.push({ phase: 'response_headers', message: { response_headers: { headers: headerMap(s.responseHeaders), end_of_stream: chunks.length === 0 } } });
  chunks.forEach((body, i) => steps.push({ phase: 'response_body', message: { response_body: { body, end_of_stream: i === chunks.length - 1 } } }));
  return steps;
}
