/** AWS Bedrock Converse (JSON) and ConverseStream (event-stream frames); the model is in the path. */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest, USAGE_NEEDLES } from './base.js';
import { framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent } from './content.js';
import { asArray, asObject, count, field, path, sumReported } from './json.js';
import { BEDROCK_ERRORS } from './errors.js';

function parseRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  readContent(b.system, prompt);
  for (const message of asArray(b.messages)) readContent(field(message, 'content'), prompt);
  prompt.json(path(b, 'toolConfig', 'tools'));
  return requestFacts(prompt, {
    maxOutputTokens: count(path(b, 'inferenceConfig', 'maxTokens')),
  });
}

export function converseUsage(u: unknown): Usage | null {
  const o = asObject(u);
  if (o === undefined) return null;
  const cacheRead = count(o.cacheReadInputTokens);
  const cacheWrite = count(o.cacheWriteInputTokens);
  return makeUsage({
    input_tokens: sumReported(count(o.inputTokens), cacheRead, cacheWrite),
    output_tokens: count(o.outputTokens),
    total_tokens: count(o.totalTokens),
    cached_input_tokens: cacheRead,
    cache_write_tokens: cacheWrite,
  });
}

class ConverseAccumulator extends BaseAccumulator {
  /** The model is in the path; only the metadata event's usage matters besides text. */
  protected override lazyNeedles(): readonly string[] {
    return USAGE_NEEDLES;
  }

  protected readBody(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.usage = converseUsage(b.usage);
    for (const block of asArray(path(b, 'output', 'message', 'content'))) {
      const o = asObject(block);
      this.output.add(o?.text);
      this.output.add(path(o, 'reasoningContent', 'reasoningText', 'text'));
    }
  }

  /** Events are recognised by their fields, so the `:event-type` header is only used to unwrap. */
  protected readChunk(value: unknown, name: string | undefined): void {
    let event = asObject(value);
    // Some relays wrap the payload in an object keyed by its event type.
    if (name !== undefined && event !== undefined && asObject(event[name]) !== undefined) {
      event = asObject(event[name]);
    }
    if (event === undefined) return;
    const usage = converseUsage(event.usage);
    if (usage !== null) this.usage = usage;
    const delta = asObject(event.delta);
    if (delta === undefined) return;
    this.output.add(delta.text);
    this.output.add(path(delta, 'reasoningContent', 'text'));
    this.output.add(path(delta, 'toolUse', 'input'));
  }
}

const converseFraming = (stream: boolean, contentType: string | undefined) =>
  framingFor(stream, contentType, 'eventstream');

export const converseHandler: ApiHandler = {
  api: 'converse',
  framing: converseFraming,
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new ConverseAccumulator(maxTextBytes),
  responseKeys: ['usage'],
  errors: BEDROCK_ERRORS,
};

export const converseStreamHandler: ApiHandler = {
  api: 'converse_stream',
  framing: converseFraming,
  parseRequest: (body) => guardRequest(parseRequest, body),
  newResponse: (maxTextBytes?: number) => new ConverseAccumulator(maxTextBytes),
  responseKeys: ['usage'],
  errors: BEDROCK_ERRORS,
};
