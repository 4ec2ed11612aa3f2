/** Ollama's native chat API (/api/chat): one JSON object, or NDJSON lines ending with `done:true`. */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent, readToolCalls } from './content.js';
import { asArray, asObject, count, field, path } from './json.js';
import { OLLAMA_ERRORS } from './errors.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  for (const message of asArray(b.messages)) {
    readContent(field(message, 'content'), prompt);
    readToolCalls(field(message, 'tool_calls'), prompt);
    prompt.media(asArray(field(message, 'images')).length);
  }
  prompt.json(b.tools);
  prompt.json(asObject(b.format));
  return requestFacts(prompt, {
    model: b.model,
    stream: b.stream,
    maxOutputTokens: count(path(b, 'options', 'num_predict')),
  });
}

export function ollamaUsage(o: Record<string, unknown>): Usage | null {
  return makeUsage({ input_tokens: count(o.prompt_eval_count), output_tokens: count(o.eval_count) });
}

class OllamaChatAccumulator extends BaseAccumulator {
  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.readLine(b);
    this.usage = ollamaUsage(b);
  }

  protected readChunk(value: unknown): void {
    const line = asObject(value);
    if (line === undefined) return;
    this.readLine(line);
    if (line.done === true) this.usage = ollamaUsage(line);
  }

  private readLine(line: Record<string, unknown>): void {
    this.noteModel(line.model);
    const message = asObject(line.message);
    if (message === undefined) return;
    this.output.add(message.thinking);
    this.output.add(message.content);
    for (const call of asArray(message.tool_calls)) {
      const args = path(call, 'function', 'arguments');
      if (asObject(args) !== undefined) this.output.add(JSON.stringify(args));
    }
  }
}

export const ollamaChatHandler: ApiHandler = {
  api: 'ollama_chat',
  framing: (stream, contentType) => framingFor(stream, contentType, 'ndjson'),
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new OllamaChatAccumulator(maxTextBytes),
  responseKeys: ['model', 'prompt_eval_count', 'eval_count', 'done'],
  errors: OLLAMA_ERRORS,
};
