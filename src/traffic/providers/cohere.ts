/** Cohere v2 chat (/v2/chat): JSON, or named SSE events with usage in `message-end`. */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { firstCount, framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent, readToolCalls } from './content.js';
import { asArray, asObject, count, field, path, str } from './json.js';
import { COHERE_ERRORS } from './errors.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  for (const message of asArray(b.messages)) {
    readContent(field(message, 'content'), prompt);
    readToolCalls(field(message, 'tool_calls'), prompt);
    prompt.text(str(field(message, 'tool_plan')));
  }
  prompt.json(b.documents);
  prompt.json(b.tools);
  return requestFacts(prompt, {
    model: b.model,
    stream: b.stream,
    maxOutputTokens: count(b.max_tokens),
  });
}

/** `usage.tokens` are the model-processed counts; `billed_units` is the fallback, per field. */
export function cohereUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  return makeUsage({
    input_tokens: firstCount(count(path(o, 'tokens', 'input_tokens')), count(path(o, 'billed_units', 'input_tokens'))),
    output_tokens: firstCount(
      count(path(o, 'tokens', 'output_tokens')),
      count(path(o, 'billed_units', 'output_tokens')),
    ),
  });
}

class CohereChatAccumulator extends BaseAccumulator {
  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.usage = cohereUsage(b.usage);
    const message = asObject(b.message);
    this.output.add(message?.tool_plan);
    for (const part of asArray(message?.content)) this.output.add(field(part, 'text'));
    for (const call of asArray(message?.tool_calls)) this.output.add(path(call, 'function', 'arguments'));
  }

  protected readChunk(value: unknown, name: string | undefined): void {
    const event = asObject(value);
    if (event === undefined) return;
    const message = asObject(path(event, 'delta', 'message'));
    switch (str(event.type) ?? name) {
      case 'content-delta':
        this.output.add(path(message, 'content', 'text'));
        return;
      case 'tool-plan-delta':
        this.output.add(message?.tool_plan);
        return;
      case 'tool-call-delta':
        this.output.add(path(message, 'tool_calls', 'function', 'arguments'));
        return;
      case 'message-end': {
        const usage = cohereUsage(path(event, 'delta', 'usage'));
        if (usage !== null) this.usage = usage;
        return;
      }
    }
  }
}

export const cohereChatHandler: ApiHandler = {
  api: 'cohere_chat',
  framing: (stream, contentType) => framingFor(stream, contentType, 'sse'),
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new CohereChatAccumulator(maxTextBytes),
  responseKeys: ['usage'],
  errors: COHERE_ERRORS,
};
