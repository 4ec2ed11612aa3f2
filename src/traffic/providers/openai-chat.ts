/**
 * OpenAI Chat Completions and every server that speaks it: Azure OpenAI, vLLM, Mistral, Groq,
 * Together and other compatible gateways, Ollama's /v1 endpoint, Cohere's compatibility API.
 */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest, USAGE_MODEL_NEEDLES, USAGE_NEEDLES } from './base.js';
import { firstCount, framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent, readToolCalls } from './content.js';
import { asArray, asObject, count, field, path, str } from './json.js';
import { OPENAI_ERRORS } from './errors.js';
import { INCLUDE_USAGE } from './include-usage.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  for (const message of asArray(b.messages)) {
    readContent(field(message, 'content'), prompt);
    readToolCalls(field(message, 'tool_calls'), prompt);
    prompt.json(path(message, 'function_call', 'arguments'));
  }
  prompt.json(b.tools);
  prompt.json(b.functions);
  prompt.json(path(b, 'response_format', 'json_schema'));
  return requestFacts(prompt, {
    model: b.model,
    stream: b.stream,
    maxOutputTokens: firstCount(count(b.max_completion_tokens), count(b.max_tokens)),
    includeUsageRequested: path(b, 'stream_options', 'include_usage') === true,
  });
}

/** The README normalisation row for OpenAI chat (DeepSeek's cache-hit field as a fallback). */
export function chatUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  return makeUsage({
    input_tokens: count(o.prompt_tokens),
    output_tokens: count(o.completion_tokens),
    total_tokens: count(o.total_tokens),
    cached_input_tokens: firstCount(
      count(path(o, 'prompt_tokens_details', 'cached_tokens')),
      count(o.prompt_cache_hit_tokens),
    ),
    cache_write_tokens: count(path(o, 'prompt_tokens_details', 'cache_write_tokens')),
    reasoning_tokens: count(path(o, 'completion_tokens_details', 'reasoning_tokens')),
  });
}

class ChatAccumulator extends BaseAccumulator {
  /** Chunks carry the model, usage (also as x_groq.usage) and text: the first two are never deferred. */
  protected override lazyNeedles(): readonly string[] {
    return this.responseModel === null ? USAGE_MODEL_NEEDLES : USAGE_NEEDLES;
  }

  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.noteModel(b.model);
    this.usage = chatUsage(b.usage);
    for (const choice of asArray(b.choices)) this.readMessage(field(choice, 'message'));
  }

  protected readChunk(value: unknown): void {
    const chunk = asObject(value);
    if (chunk === undefined) return;
    this.noteModel(chunk.model);
    // Groq repeats the usage chunk's numbers in x_groq.usage: the last report replaces, never adds.
    const usage = chatUsage(chunk.usage) ?? chatUsage(path(chunk, 'x_groq', 'usage'));
    if (usage !== null) this.usage = usage;
    for (const choice of asArray(chunk.choices)) this.readMessage(field(choice, 'delta'));
  }

  private readMessage(message: unknown): void {
    const m = asObject(message);
    if (m === undefined) return;
    this.output.add(m.reasoning_content);
    this.output.add(m.reasoning);
    this.output.add(m.content);
    this.output.add(m.refusal);
    for (const call of asArray(m.tool_calls)) this.output.add(str(path(call, 'function', 'arguments')));
  }
}

export const chatCompletionsHandler: ApiHandler = {
  api: 'chat_completions',
  framing: (stream, contentType) => framingFor(stream, contentType, 'sse'),
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new ChatAccumulator(maxTextBytes),
  responseKeys: ['model', 'usage', 'object'],
  usageInjection: INCLUDE_USAGE,
  errors: OPENAI_ERRORS,
};
