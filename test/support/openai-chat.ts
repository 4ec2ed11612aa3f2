/**
 * An OpenAI chat completion exchange for the Envoy emulator, with a recognisable prompt and answer
 * (to prove they go nowhere they must not), a chosen status and an optional W3C traceparent.
 */
import type { ExchangeInput } from '../emulator/envoy.js';

export const PROMPT = 'prompt-text-that-must-never-leave-7f3a9c';
export const ANSWER = 'answer-text-that-must-never-leave-c9a3f7';

export interface ChatOptions {
  model?: string;
  status?: number;
  traceparent?: string;
  inputTokens?: number;
  outputTokens?: number;
}

export function openAiChat(o: ChatOptions = {}): ExchangeInput {
  const model = o.model ?? 'gpt-4o-mini';
  const status = o.status ?? 200;
  const body =
    status < 400
      ? {
          id: 'chatcmpl-1',
          object: 'chat.completion',
          model: `${model}-2024-07-18`,
          choices: [{ index: 0, message: { role: 'assistant', content: ANSWER }, finish_reason: 'stop' }],
          usage: { prompt_tokens: o.inputTokens ?? 12, completion_tokens: o.outputTokens ?? 7, total_tokens: (o.inputTokens ?? 12) + (o.outputTokens ?? 7) },
        }
      : { error: { message: 'upstream refused', type: 'server_error' } };
  return {
    request: {
      headers: [
        [':method', 'POST'],
        [':authority', 'api.openai.com:443'],
        [':path', '/v1/chat/completions'],
        [':scheme', 'https'],
        ['content-type', 'application/json'],
        ['x-consumer-id', 'team-a'],
        ...(o.traceparent === undefined ? [] : ([['traceparent', o.traceparent]] as [string, string][])),
      ],
      body_chunks: [JSON.stringify({ model, messages: [{ role: 'user', content: PROMPT }] })],
    },
    upstream: { headers: [[':status', String(status)], ['content-type', 'application/json']], body_chunks: [JSON.stringify(body)] },
  };
}
