/**
 * Google Gemini API and Vertex AI generateContent / streamGenerateContent. The model is in the
 * path. Streams are SSE with `?alt=sse`, otherwise one JSON array of chunks.
 */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { firstCount, framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent } from './content.js';
import { asArray, asObject, count, field, path, sumReported } from './json.js';
import { GOOGLE_ERRORS } from './errors.js';

/** REST accepts both the camelCase and the proto snake_case field names. */
function either(o: Record<string, unknown>, camel: string, snake: string): unknown {
  return o[camel] ?? o[snake];
}

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  const system = either(b, 'systemInstruction', 'system_instruction');
  readContent(typeof system === 'string' ? system : field(system, 'parts'), prompt);
  const contents = Array.isArray(b.contents) ? b.contents : [b.contents];
  for (const content of contents) readContent(field(content, 'parts'), prompt);
  prompt.json(b.tools);
  const config = asObject(either(b, 'generationConfig', 'generation_config'));
  return requestFacts(prompt, {
    model: b.model,
    maxOutputTokens:
      config === undefined
        ? null
        : firstCount(count(config.maxOutputTokens), count(config.max_output_tokens)),
  });
}

export function geminiUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  const thoughts = count(o.thoughtsTokenCount);
  return makeUsage({
    input_tokens: sumReported(count(o.promptTokenCount), count(o.toolUsePromptTokenCount)),
    output_tokens: sumReported(count(o.candidatesTokenCount), thoughts),
    total_tokens: count(o.totalTokenCount),
    cached_input_tokens: count(o.cachedContentTokenCount),
    reasoning_tokens: thoughts,
  });
}

class GenerateContentAccumulator extends BaseAccumulator {
  protected readBody(value: unknown): void {
    if (Array.isArray(value)) for (const chunk of value) this.readChunk(chunk);
    else this.readChunk(value);
  }

  /** Every chunk may carry running usage: the last one is final. */
  protected readChunk(value: unknown): void {
    const chunk = asObject(value);
    if (chunk === undefined) return;
    this.noteModel(chunk.modelVersion);
    const usage = geminiUsage(chunk.usageMetadata);
    if (usage !== null) this.usage = usage;
    for (const candidate of asArray(chunk.candidates)) {
      for (const part of asArray(path(candidate, 'content', 'parts'))) {
        const p = asObject(part);
        this.output.add(p?.text);
        const args = path(p, 'functionCall', 'args');
        if (asObject(args) !== undefined) this.output.add(JSON.stringify(args));
      }
    }
  }
}

const geminiFraming = (stream: boolean, contentType: string | undefined) =>
  framingFor(stream, contentType, 'sse');

export const generateContentHandler: ApiHandler = {
  api: 'generate_content',
  framing: geminiFraming,
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new GenerateContentAccumulator(maxTextBytes),
  responseKeys: ['modelVersion', 'usageMetadata'],
  errors: GOOGLE_ERRORS,
};

export const streamGenerateContentHandler: ApiHandler = {
  api: 'stream_generate_content',
  framing: geminiFraming,
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new GenerateContentAccumulator(maxTextBytes),
  responseKeys: ['modelVersion', 'usageMetadata'],
  errors: GOOGLE_ERRORS,
};
