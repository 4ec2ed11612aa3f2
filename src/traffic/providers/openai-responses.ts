/** OpenAI Responses API (/v1/responses), plain JSON or named SSE events. */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent } from './content.js';
import { asArray, asObject, count, field, path, str } from './json.js';
import { OPENAI_ERRORS } from './errors.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  prompt.text(str(b.instructions));
  if (typeof b.input === 'string') prompt.text(b.input);
  for (const item of asArray(b.input)) readInputItem(item, prompt);
  prompt.json(b.tools);
  prompt.json(path(b, 'text', 'format', 'schema'));
  return requestFacts(prompt, {
    model: b.model,
    stream: b.stream,
    maxOutputTokens: count(b.max_output_tokens),
  });
}

function readInputItem(item: unknown, prompt: PromptCollector): void {
  const i = asObject(item);
  if (i === undefined) {
    readContent(item, prompt);
    return;
  }
  switch (i.type) {
    case 'function_call':
    case 'custom_tool_call':
      prompt.text(str(i.name));
      prompt.json(i.arguments ?? i.input);
      return;
    case 'function_call_output':
    case 'custom_tool_call_output':
      readContent(i.output, prompt);
      return;
    case 'reasoning':
      for (const s of asArray(i.summary)) prompt.text(str(field(s, 'text')));
      return;
  }
  if ('content' in i) readContent(i.content, prompt);
  else readContent(i, prompt);
}

export function responsesUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  return makeUsage({
    input_tokens: count(o.input_tokens),
    output_tokens: count(o.output_tokens),
    total_tokens: count(o.total_tokens),
    cached_input_tokens: count(path(o, 'input_tokens_details', 'cached_tokens')),
    cache_write_tokens: count(path(o, 'input_tokens_details', 'cache_write_tokens')),
    reasoning_tokens: count(path(o, 'output_tokens_details', 'reasoning_tokens')),
  });
}

/** Events whose `response` object carries the final usage. */
const FINAL_EVENTS = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/** Events whose `delta` is generated text (or tool-call arguments, which are output tokens too). */
const TEXT_DELTAS = new Set([
  'response.output_text.delta',
  'response.refusal.delta',
  'response.function_call_arguments.delta',
  'response.custom_tool_call_input.delta',
]);

class ResponsesAccumulator extends BaseAccumulator {
  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.noteModel(b.model);
    this.usage = responsesUsage(b.usage);
    for (const item of asArray(b.output)) {
      this.output.add(str(field(item, 'arguments')));
      for (const part of asArray(field(item, 'content'))) {
        this.output.add(str(field(part, 'text')));
        this.output.add(str(field(part, 'refusal')));
      }
    }
  }

  protected readChunk(value: unknown, name: string | undefined): void {
    const event = asObject(value);
    if (event === undefined) return;
    const type = str(event.type) ?? name ?? '';
    if (TEXT_DELTAS.has(type)) {
      this.output.add(str(event.delta));
      return;
    }
    const response = asObject(event.response);
    if (response === undefined) return;
    this.noteModel(response.model);
    if (FINAL_EVENTS.has(type)) {
      const usage = responsesUsage(response.usage);
      if (usage !== null) this.usage = usage;
    }
  }
}

export const responsesHandler: ApiHandler = {
  api: 'responses',
  framing: (stream, contentType) => framingFor(stream, contentType, 'sse'),
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new ResponsesAccumulator(maxTextBytes),
  responseKeys: ['model', 'usage'],
  errors: OPENAI_ERRORS,
};
