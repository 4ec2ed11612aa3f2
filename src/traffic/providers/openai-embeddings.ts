/** OpenAI-shaped embeddings (/v1/embeddings, Azure deployments, compatible servers). */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { asObject, count } from './json.js';
import { OPENAI_ERRORS } from './errors.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  readInput(b.input, prompt, true);
  return requestFacts(prompt, { model: b.model, stream: b.stream });
}

/** `input` is a string, strings, token ids, or lists of token ids (counted as given). */
function readInput(input: unknown, prompt: PromptCollector, top: boolean): void {
  if (typeof input === 'string') {
    prompt.text(input);
    return;
  }
  if (!Array.isArray(input)) return;
  let tokenIds = 0;
  for (const item of input) {
    if (typeof item === 'number') tokenIds += 1;
    else if (top) readInput(item, prompt, false);
  }
  prompt.tokens(tokenIds);
}

export function embeddingsUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  return makeUsage({ input_tokens: count(o.prompt_tokens), total_tokens: count(o.total_tokens) });
}

class EmbeddingsAccumulator extends BaseAccumulator {
  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.noteModel(b.model);
    this.usage = embeddingsUsage(b.usage);
  }

  protected readChunk(value: unknown): void {
    this.readBody(value);
  }
}

export const embeddingsHandler: ApiHandler = {
  api: 'embeddings',
  framing: (stream, contentType) => framingFor(stream, contentType, 'json'),
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new EmbeddingsAccumulator(maxTextBytes),
  responseKeys: ['model', 'usage', 'object'],
  errors: OPENAI_ERRORS,
};
