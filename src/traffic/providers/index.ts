/** One handler per API kind. */
import type { ApiKind } from '../../domain.js';
import type { ApiHandler } from '../types.js';
import { messagesHandler } from './anthropic.js';
import { converseHandler, converseStreamHandler } from './bedrock-converse.js';
import { invokeHandler, invokeStreamHandler } from './bedrock-invoke.js';
import { cohereChatHandler } from './cohere.js';
import { generateContentHandler, streamGenerateContentHandler } from './gemini.js';
import { ollamaChatHandler } from './ollama.js';
import { chatCompletionsHandler } from './openai-chat.js';
import { embeddingsHandler } from './openai-embeddings.js';
import { responsesHandler } from './openai-responses.js';

export const HANDLERS: Readonly<Record<ApiKind, ApiHandler>> = Object.freeze({
  chat_completions: chatCompletionsHandler,
  responses: responsesHandler,
  embeddings: embeddingsHandler,
  messages: messagesHandler,
  converse: converseHandler,
  converse_stream: converseStreamHandler,
  invoke: invokeHandler,
  invoke_with_response_stream: invokeStreamHandler,
  generate_content: generateContentHandler,
  stream_generate_content: streamGenerateContentHandler,
  ollama_chat: ollamaChatHandler,
  cohere_chat: cohereChatHandler,
});

export function handlerFor(api: ApiKind): ApiHandler {
  return HANDLERS[api];
}

/**
 * Every top-level key some handler reads from a whole response body: what a body too large to parse
 * whole is scanned for (one list, so that a body answered in another API's shape is still read).
 */
export const RESPONSE_KEYS: readonly string[] = Object.freeze([...new Set(Object.values(HANDLERS).flatMap((h) => h.responseKeys))]);

export { DEFAULT_MAX_TEXT_BYTES, MEDIA_PART_TOKENS } from './common.js';
