/**
 * Anthropic Messages (/v1/messages). The same request body and response events travel inside
 * Bedrock InvokeModel, so the parsing here is shared with bedrock-invoke.ts.
 */
import type { Usage } from '../../domain.js';
import type { ApiHandler, RequestFacts } from '../types.js';
import { BaseAccumulator, guardRequest, USAGE_MODEL_NEEDLES, USAGE_NEEDLES } from './base.js';
import { firstCount, framingFor, makeUsage, PromptCollector, requestFacts } from './common.js';
import { readContent } from './content.js';
import { asArray, asObject, count, field, path, str, sumReported } from './json.js';
import { ANTHROPIC_ERRORS } from './errors.js';

export function parseAnthropicRequest(body: unknown): RequestFacts {
  const b = asObject(body);
  const prompt = new PromptCollector();
  if (b === undefined) return requestFacts(prompt, {});
  readContent(b.system, prompt);
  for (const message of asArray(b.messages)) readContent(field(message, 'content'), prompt);
  prompt.json(b.tools);
  // Other model families on Bedrock InvokeModel send a bare prompt instead of messages.
  prompt.text(str(b.prompt));
  prompt.text(str(b.inputText));
  return requestFacts(prompt, {
    model: b.model,
    stream: b.stream,
    maxOutputTokens: firstCount(
      count(b.max_tokens),
      count(b.max_gen_len),
      count(path(b, 'inferenceConfig', 'max_new_tokens')),
      count(path(b, 'textGenerationConfig', 'maxTokenCount')),
    ),
  });
}

/**
 * Anthropic usage as reported so far. Streams send message_start usage, then cumulative
 * message_delta usage that overwrites field by field.
 */
export class AnthropicUsage {
  private input: number | null = null;
  private cacheWrite: number | null = null;
  private cacheRead: number | null = null;
  private output: number | null = null;
  private thinking: number | null = null;

  merge(u: unknown): void {
    const o = asObject(u);
    if (o === undefined) return;
    this.input = count(o.input_tokens) ?? this.input;
    this.cacheWrite = count(o.cache_creation_input_tokens) ?? this.cacheWrite;
    this.cacheRead = count(o.cache_read_input_tokens) ?? this.cacheRead;
    this.output = count(o.output_tokens) ?? this.output;
    this.thinking = count(path(o, 'output_tokens_details', 'thinking_tokens')) ?? this.thinking;
  }

  usage(): Usage | null {
    return makeUsage({
      input_tokens: sumReported(this.input, this.cacheWrite, this.cacheRead),
      output_tokens: this.output,
      cached_input_tokens: this.cacheRead,
      cache_write_tokens: this.cacheWrite,
      reasoning_tokens: this.thinking,
    });
  }
}

/** Reads Anthropic message bodies and stream events; owned by an accumulator. */
export class AnthropicReader {
  readonly usage = new AnthropicUsage();
  model: string | null = null;

  constructor(private readonly addText: (text: unknown) => void) {}

  body(value: unknown): void {
    const b = asObject(value);
    if (b === undefined) return;
    this.noteModel(b.model);
    this.usage.merge(b.usage);
    for (const block of asArray(b.content)) this.block(block);
  }

  event(value: unknown, name: string | undefined): void {
    const e = asObject(value);
    if (e === undefined) return;
    switch (str(e.type) ?? name) {
      case 'message_start': {
        const message = asObject(e.message);
        this.noteModel(message?.model);
        this.usage.merge(message?.usage);
        return;
      }
      case 'message_delta':
        this.usage.merge(e.usage);
        return;
      case 'content_block_start':
        this.block(e.content_block);
        return;
      case 'content_block_delta': {
        const delta = asObject(e.delta);
        this.addText(delta?.text);
        this.addText(delta?.thinking);
        this.addText(delta?.partial_json);
        return;
      }
    }
  }

  private block(block: unknown): void {
    const b = asObject(block);
    if (b === undefined) return;
    this.addText(b.text);
    this.addText(b.thinking);
    if (b.type === 'tool_use' && asObject(b.input) !== undefined && Object.keys(b.input as object).length > 0) {
      this.addText(JSON.stringify(b.input));
    }
  }

  private noteModel(value: unknown): void {
    if (this.model === null && typeof value === 'string' && value.length > 0) this.model = value;
  }
}

class MessagesAccumulator extends BaseAccumulator {
  private readonly reader = new AnthropicReader((t) => this.output.add(t));

  protected readBody(value: unknown): void {
    this.reader.body(value);
  }

  protected readChunk(value: unknown, name: string | undefined): void {
    this.reader.event(value, name);
  }

  /** message_start carries the model and usage, message_delta usage; the other events only text. */
  protected override lazyNeedles(): readonly string[] {
    return this.reader.model === null ? USAGE_MODEL_NEEDLES : USAGE_NEEDLES;
  }

  protected override currentModel(): string | null {
    return this.reader.model;
  }

  protected override currentUsage(): Usage | null {
    return this.reader.usage.usage();
  }
}

/** Messages bodies carry model and usage; `type` tells a message from an error. */
const ANTHROPIC_RESPONSE_KEYS = ['model', 'usage', 'type'];

export const messagesHandler: ApiHandler = {
  api: 'messages',
  framing: (stream, contentType) => framingFor(stream, contentType, 'sse'),
  parseRequest: (body) => guardRequest(parseAnthropicRequest, body),
  newResponse: (maxTextBytes?: number) => new MessagesAccumulator(maxTextBytes),
  responseKeys: ANTHROPIC_RESPONSE_KEYS,
  errors: ANTHROPIC_ERRORS,
};
