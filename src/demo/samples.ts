/**
 * Synthetic sample traffic for `tokenwarden demo`: one HTTP exchange per provider shape tokenwarden
 * reads (JSON, SSE, AWS-style JSON, NDJSON) plus one request that is not LLM traffic. Written by
 * hand for the demo: the keys are fake, the prompts are short, the usage numbers are plausible.
 */

export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export interface DemoSample {
  /** Short label printed in the summary. */
  name: string;
  request: { headers: HeaderList; body?: string };
  /** The response the provider "sends"; each chunk is one STREAMED response_body message. */
  response: { headers: HeaderList; chunks: readonly string[] };
}

const json = (value: unknown): string => JSON.stringify(value);
const sse = (events: readonly unknown[]): string => events.map((e) => `data: ${json(e)}\n\n`).join('');
const anthropicEvent = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${json({ type, ...data })}\n\n`;

/** Splits text into pieces at the given offsets: streams arrive cut at arbitrary places. */
function cut(text: string, ...at: number[]): string[] {
  const pieces: string[] = [];
  let from = 0;
  for (const to of at) {
    pieces.push(text.slice(from, to));
    from = to;
  }
  pieces.push(text.slice(from));
  return pieces;
}

const post = (authority: string, path: string, extra: HeaderList): HeaderList => [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', authority],
  [':path', path],
  ['content-type', 'application/json'],
  ...extra,
];

const okJson: HeaderList = [
  [':status', '200'],
  ['content-type', 'application/json'],
];

const openaiChat: DemoSample = {
  name: 'openai-chat',
  request: {
    headers: post('api.openai.com', '/v1/chat/completions', [
      ['authorization', 'Bearer sk-demo-not-a-real-key'],
      ['x-consumer-id', 'checkout-service'],
    ]),
    body: json({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'You summarise customer orders for the support team.' },
        { role: 'user', content: 'Summarise order 88213: 3 items, one back-ordered, express shipping.' },
      ],
      max_tokens: 300,
    }),
  },
  response: {
    headers: okJson,
    chunks: [
      json({
        id: 'chatcmpl-demo-1',
        object: 'chat.completion',
        created: 1760000000,
        model: 'gpt-4o-mini-2024-07-18',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'Order 88213 has three items; one is back-ordered. Express shipping applies to the rest.' },
            finish_reason: 'stop',
          },
        ],
        usage: {
          prompt_tokens: 1245,
          completion_tokens: 187,
          total_tokens: 1432,
          prompt_tokens_details: { cached_tokens: 1024 },
          completion_tokens_details: { reasoning_tokens: 0 },
        },
      }),
    ],
  },
};

const chunk = (delta: Record<string, unknown>, finish: string | null = null): unknown => ({
  id: 'chatcmpl-demo-2',
  object: 'chat.completion.chunk',
  created: 1760000001,
  model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, delta, finish_reason: finish }],
});

// The client does not ask for usage: tokenwarden adds stream_options.include_usage to the request,
// so the provider ends the stream with a usage chunk, which tokenwarden hides from the client.
const openaiStreamBody = sse([
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: 'Your refund' }),
  chunk({ content: ' was issued today' }),
  chunk({ content: ' and arrives in 3-5 days.' }),
  chunk({}, 'stop'),
  {
    id: 'chatcmpl-demo-2',
    object: 'chat.completion.chunk',
    created: 1760000001,
    model: 'gpt-4o-2024-08-06',
    choices: [],
    usage: { prompt_tokens: 356, completion_tokens: 42, total_tokens: 398 },
  },
]).concat('data: [DONE]\n\n');

const openaiChatStream: DemoSample = {
  name: 'openai-chat-stream',
  request: {
    headers: post('api.openai.com', '/v1/chat/completions', [
      ['authorization', 'Bearer sk-demo-not-a-real-key'],
      ['accept', 'text/event-stream'],
      ['x-consumer-id', 'support-bot'],
    ]),
    body: json({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: 'When will my refund for order 77102 arrive?' }],
    }),
  },
  response: {
    headers: [
      [':status', '200'],
      ['content-type', 'text/event-stream; charset=utf-8'],
    ],
    chunks: cut(openaiStreamBody, 180, 420, 700),
  },
};

const anthropicStreamBody = [
  anthropicEvent('message_start', {
    message: {
      id: 'msg_demo_3',
      type: 'message',
      role: 'assistant',
      model: 'claude-3-5-haiku-20241022',
      content: [],
      stop_reason: null,
      usage: { input_tokens: 892, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    },
  }),
  anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'The ticket is about a failed' } }),
  anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: ' card payment; suggest a retry.' } }),
  anthropicEvent('content_block_stop', { index: 0 }),
  anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 128 } }),
  anthropicEvent('message_stop', {}),
].join('');

const anthropicStream: DemoSample = {
  name: 'anthropic-stream',
  request: {
    headers: post('api.anthropic.com', '/v1/messages', [
      ['x-api-key', 'sk-ant-demo-not-a-real-key'],
      ['anthropic-version', '2023-06-01'],
      ['accept', 'text/event-stream'],
      ['x-consumer-id', 'support-bot'],
    ]),
    body: json({
      model: 'claude-3-5-haiku-20241022',
      max_tokens: 512,
      stream: true,
      messages: [{ role: 'user', content: 'Classify this ticket: "my card was declined twice".' }],
    }),
  },
  response: {
    headers: [
      [':status', '200'],
      ['content-type', 'text/event-stream'],
    ],
    chunks: cut(anthropicStreamBody, 250, 600),
  },
};

// No x-consumer-id: the consumer is an HMAC fingerprint of the (fake) API key.
const gemini: DemoSample = {
  name: 'gemini',
  request: {
    headers: post('generativelanguage.googleapis.com', '/v1beta/models/gemini-2.0-flash:generateContent', [
      ['x-goog-api-key', 'AIza-demo-not-a-real-key'],
    ]),
    body: json({
      contents: [{ role: 'user', parts: [{ text: 'List three risks in the attached quarterly plan.' }] }],
      generationConfig: { maxOutputTokens: 400 },
    }),
  },
  response: {
    headers: [
      [':status', '200'],
      ['content-type', 'application/json; charset=UTF-8'],
    ],
    chunks: [
      json({
        candidates: [
          {
            content: { role: 'model', parts: [{ text: '1. Hiring lags plan. 2. Vendor renewal in Q3. 3. Currency exposure.' }] },
            finishReason: 'STOP',
          },
        ],
        usageMetadata: { promptTokenCount: 2048, candidatesTokenCount: 311, totalTokenCount: 2359 },
        modelVersion: 'gemini-2.0-flash',
      }),
    ],
  },
};

const bedrockConverse: DemoSample = {
  name: 'bedrock-converse',
  request: {
    headers: post('bedrock-runtime.us-east-1.amazonaws.com', '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse', [
      ['authorization', 'AWS4-HMAC-SHA256 Credential=AKIDEMONOTAREALKEY/20250101/us-east-1/bedrock/aws4_request'],
      ['x-consumer-id', 'finance-reports'],
    ]),
    body: json({
      messages: [{ role: 'user', content: [{ text: 'Draft a two-line note on the March invoice variance.' }] }],
      inferenceConfig: { maxTokens: 300 },
    }),
  },
  response: {
    headers: okJson,
    chunks: [
      json({
        output: { message: { role: 'assistant', content: [{ text: 'March invoices ran 4% over forecast, driven by cloud spend.' }] } },
        stopReason: 'end_turn',
        usage: { inputTokens: 1520, outputTokens: 240, totalTokens: 1760 },
        metrics: { latencyMs: 1830 },
      }),
    ],
  },
};

const ollamaLine = (content: string, done: boolean, extra: Record<string, unknown> = {}): string =>
  `${json({ model: 'llama3.2:3b', created_at: '2025-01-01T12:00:00Z', message: { role: 'assistant', content }, done, ...extra })}\n`;

const ollamaStreamBody = [
  ollamaLine('Nightly', false),
  ollamaLine(' load finished:', false),
  ollamaLine(' 2 tables skipped.', false),
  ollamaLine('', true, { done_reason: 'stop', total_duration: 2100000000, prompt_eval_count: 64, eval_count: 212 }),
].join('');

const ollamaStream: DemoSample = {
  name: 'ollama-stream',
  request: {
    headers: [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':authority', 'ollama.ml.svc.cluster.local:11434'],
      [':path', '/api/chat'],
      ['content-type', 'application/json'],
      ['x-consumer-id', 'data-pipeline'],
    ],
    body: json({ model: 'llama3.2:3b', messages: [{ role: 'user', content: 'Summarise the nightly load log.' }] }),
  },
  response: {
    headers: [
      [':status', '200'],
      ['content-type', 'application/x-ndjson'],
    ],
    chunks: cut(ollamaStreamBody, 150, 330),
  },
};

const notLlm: DemoSample = {
  name: 'inventory-api',
  request: {
    headers: [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'inventory.shop.svc.cluster.local'],
      [':path', '/api/v1/items?limit=20'],
      ['accept', 'application/json'],
      ['x-consumer-id', 'checkout-service'],
    ],
  },
  response: { headers: okJson, chunks: [json({ items: [], next: null })] },
};

export const DEMO_SAMPLES: readonly DemoSample[] = [
  openaiChat,
  openaiChatStream,
  anthropicStream,
  gemini,
  bedrockConverse,
  ollamaStream,
  notLlm,
];
