/**
 * AWS Bedrock InvokeModel and InvokeModelWithResponseStream. Bodies are the model family's own
 * format; Anthropic's is read fully, other families through Bedrock's invocation metrics.
 */
import type { Usage } from '../../domain.js';
import type { ApiHandler } from '../types.js';
import { parseAnthropicRequest, AnthropicReader } from './anthropic.js';
import { BaseAccumulator, guardRequest } from './base.js';
import { framingFor, makeUsage } from './common.js';
import { asArray, asObject, count, field, parseJson, str, sumReported } from './json.js';
import { BEDROCK_ERRORS } from './errors.js';

class InvokeAccumulator extends BaseAccumulator {
  private readonly reader = new AnthropicReader((t) => this.output.add(t));
  private fallback: Usage | null = null;

  protected readBody(value: unknown): void {
    this.reader.body(value);
    this.readOtherFamilies(value);
  }

  /** Stream frames carry `{"bytes": base64(inner event JSON)}`. */
  protected readChunk(value: unknown, name: string | undefined): void {
    const encoded = str(field(value, 'bytes'));
    const inner = encoded === undefined ? value : parseJson(Buffer.from(encoded, 'base64').toString('utf8'));
    this.reader.event(inner, encoded === undefined ? name : undefined);
    this.readOtherFamilies(inner);
  }

  /** Bedrock's invocation metrics (last stream chunk) and Llama/Titan counts, when not Anthropic. */
  private readOtherFamilies(value: unknown): void {
    const o = asObject(value);
    if (o === undefined) return;
    const metrics = asObject(o['amazon-bedrock-invocationMetrics']);
    const usage =
      metrics !== undefined
        ? makeUsage({ input_tokens: count(metrics.inputTokenCount), output_tokens: count(metrics.outputTokenCount) })
        : makeUsage({
            input_tokens: count(o.prompt_token_count) ?? count(o.inputTextTokenCount),
            output_tokens: count(o.generation_token_count) ?? titanOutputTokens(o.results),
          });
    if (usage !== null) this.fallback = usage;
    this.output.add(o.generation);
    this.output.add(o.outputText);
    this.output.add(o.completion);
  }

  protected override currentModel(): string | null {
    return this.reader.model;
  }

  protected override currentUsage(): Usage | null {
    return this.reader.usage.usage() ?? this.fallback;
  }
}

function titanOutputTokens(results: unknown): number | null {
  let total: number | null = null;
  for (const r of asArray(results)) total = sumReported(total, count(field(r, 'tokenCount')));
  return total;
}

const invokeFraming = (stream: boolean, contentType: string | undefined) =>
  framingFor(stream, contentType, 'eventstream');

/** Anthropic's keys, and where Llama, Titan and the invocation metrics put their counts. */
const INVOKE_RESPONSE_KEYS = [
  'model',
  'usage',
  'type',
  'amazon-bedrock-invocationMetrics',
  'prompt_token_count',
  'generation_token_count',
  'inputTextTokenCount',
  'results',
];

export const invokeHandler: ApiHandler = {
  api: 'invoke',
  framing: invokeFraming,
  parseRequest: (body) => guardRequest(parseAnthropicRequest, body),
  newResponse: (maxTextBytes?: number) => new InvokeAccumulator(maxTextBytes),
  responseKeys: INVOKE_RESPONSE_KEYS,
  errors: BEDROCK_ERRORS,
};

export const invokeStreamHandler: ApiHandler = {
  api: 'invoke_with_response_stream',
  framing: invokeFraming,
  parseRequest: (body) => guardRequest(parseAnthropicRequest, body),
  newResponse: (maxTextBytes?: number) => new InvokeAccumulator(maxTextBytes),
  responseKeys: INVOKE_RESPONSE_KEYS,
  errors: BEDROCK_ERRORS,
};
