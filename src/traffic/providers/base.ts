/** The accumulator skeleton every handler shares: model, bounded text, guarded entry points. */
import type { Usage } from '../../domain.js';
import type { RequestFacts, ResponseAccumulator, ResponseFacts, StreamEvent } from '../types.js';
import { DEFAULT_MAX_TEXT_BYTES, eventJson, OutputText, PromptCollector, requestFacts, responseFacts } from './common.js';
import { modelName } from './json.js';

export abstract class BaseAccumulator implements ResponseAccumulator {
  protected readonly output: OutputText;
  protected responseModel: string | null = null;
  protected usage: Usage | null = null;

  constructor(maxTextBytes: number = DEFAULT_MAX_TEXT_BYTES) {
    this.output = new OutputText(maxTextBytes);
  }

  onJson(value: unknown): void {
    try {
      this.readBody(value);
    } catch {
      // Hostile shapes (e.g. nesting deep enough to exhaust the stack) are ignored, never thrown.
    }
  }

  onEvent(event: StreamEvent): void {
    try {
      const decoded = eventJson(event);
      if (decoded !== undefined) this.readChunk(decoded.value, decoded.name);
    } catch {
      // As above: one bad event must not end the exchange.
    }
  }

  result(): ResponseFacts {
    return responseFacts(this.currentModel(), this.currentUsage(), this.output);
  }

  outputBytes(): number {
    return this.output.size();
  }

  /** A whole (non-streamed) response body. */
  protected abstract readBody(value: unknown): void;
  /** One streamed event's JSON; `name` is the SSE event name or event-stream `:event-type`. */
  protected abstract readChunk(value: unknown, name: string | undefined): void;

  protected currentModel(): string | null {
    return this.responseModel;
  }

  protected currentUsage(): Usage | null {
    return this.usage;
  }

  /** Streams report the model on every chunk; the first non-empty one is kept. */
  protected noteModel(value: unknown): void {
    if (this.responseModel === null) this.responseModel = modelName(value);
  }
}

/** Runs a request parser, returning empty facts instead of throwing on hostile input. */
export function guardRequest(parse: (body: unknown) => RequestFacts, body: unknown): RequestFacts {
  try {
    return parse(body);
  } catch {
    return requestFacts(new PromptCollector(), {});
  }
}
