/** The accumulator skeleton every handler shares: model, bounded text, guarded entry points. */
import type { Usage } from '../../domain.js';
import type { RequestFacts, ResponseAccumulator, ResponseFacts, StreamEvent } from '../types.js';
import { DEFAULT_MAX_TEXT_BYTES, eventJson, OutputText, PromptCollector, requestFacts, textJson } from './common.js';
import { modelName } from './json.js';

/**
 * Raw stream events held unparsed, at most this many characters per stream (a 100-event chat stream
 * is about 16,000); past it the oldest are read, as many as the new event needs room.
 */
export const MAX_DEFERRED_CHARS = 64 * 1024;

/** Output text read from an event while older events are still deferred: it waits its turn. */
class HeldPieces extends OutputText {
  readonly held: string[] = [];
  heldChars = 0;

  override add(piece: unknown): void {
    if (typeof piece !== 'string' || piece.length === 0) return;
    this.held.push(piece);
    this.heldChars += piece.length;
  }
}

export abstract class BaseAccumulator implements ResponseAccumulator {
  /** Where readers put generated text; swapped for a HeldPieces while events are deferred. */
  protected output: OutputText;
  protected responseModel: string | null = null;
  protected usage: Usage | null = null;
  /**
   * Stream events not parsed yet, in order: raw text, or the held text pieces of an event that was
   * read for its usage. Most events carry only generated text, which nothing needs until the output
   * is measured (a budget's output cap, the first output's time) or the stream ends without usage.
   */
  private deferred: (string | string[])[] = [];
  private deferredNames: (string | undefined)[] = [];
  private deferredChars = 0;

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

  /**
   * Reads one decoded event at once. Not part of ResponseAccumulator (the Exchange streams text
   * through onStreamText): it is the reference the tests hold onStreamText's deferred reading to.
   */
  onEvent(event: StreamEvent): void {
    this.catchUp();
    try {
      const decoded = eventJson(event);
      if (decoded !== undefined) this.readChunk(decoded.value, decoded.name);
    } catch {
      // As above: one bad event must not end the exchange.
    }
  }

  onStreamText(text: string, name: string | undefined): void {
    // Past the bound the oldest deferred events are read, a few per event: never all in one chunk.
    const over = this.deferredChars + text.length - MAX_DEFERRED_CHARS;
    if (over > 0) this.readOldest(over);
    const needles = this.lazyNeedles();
    if (needles !== null && this.deferredChars + text.length <= MAX_DEFERRED_CHARS && !includesAny(text, needles)) {
      this.defer(text, name, text.length);
      return;
    }
    if (this.deferred.length === 0) {
      this.readText(text, name);
      return;
    }
    // Usage and model are read now; the event's text goes behind the deferred events' text.
    const real = this.output;
    const held = new HeldPieces();
    this.output = held;
    try {
      this.readText(text, name);
    } finally {
      this.output = real;
    }
    if (held.held.length > 0) this.defer(held.held, undefined, held.heldChars);
  }

  result(): ResponseFacts {
    // The text is read (and deferred events parsed) only if asked for: when usage is missing.
    const self = this;
    return {
      responseModel: this.currentModel(),
      usage: this.currentUsage(),
      get outputText(): string {
        self.catchUp();
        return self.output.text();
      },
      get outputTextTruncated(): boolean {
        self.catchUp();
        return self.output.isTruncated();
      },
    };
  }

  outputBytes(): number {
    this.catchUp();
    return this.output.size();
  }

  /**
   * Strings whose absence from an event's text proves that reading it can change only the output
   * text (it carries no usage, and no model while none is known); null: every event is read at once.
   * `\u` is always among them, since a key can be spelt with escapes.
   */
  protected lazyNeedles(): readonly string[] | null {
    return null;
  }

  private defer(item: string | string[], name: string | undefined, chars: number): void {
    this.deferred.push(item);
    this.deferredNames.push(name);
    this.deferredChars += chars;
  }

  /** Reads every deferred event, in order. */
  private catchUp(): void {
    if (this.deferred.length > 0) this.readOldest(Infinity);
  }

  /** Reads the oldest deferred events, in order, until at least `chars` characters are freed. */
  private readOldest(chars: number): void {
    const items = this.deferred;
    const names = this.deferredNames;
    let k = 0;
    let freed = 0;
    for (; k < items.length && freed < chars; k++) {
      const item = items[k]!;
      if (typeof item === 'string') {
        freed += item.length;
        this.readText(item, names[k]);
      } else {
        for (const piece of item) {
          freed += piece.length;
          this.output.add(piece);
        }
      }
    }
    if (k === items.length) {
      this.deferred = [];
      this.deferredNames = [];
      this.deferredChars = 0;
    } else {
      items.splice(0, k);
      names.splice(0, k);
      this.deferredChars -= freed;
    }
  }

  private readText(text: string, name: string | undefined): void {
    try {
      const value = textJson(text);
      if (value !== undefined) this.readChunk(value, name);
    } catch {
      // As above.
    }
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

/** lazyNeedles of a handler whose events carry usage under a `usage` key and perhaps a model. */
export const USAGE_NEEDLES: readonly string[] = ['usage', '\\u'];
export const USAGE_MODEL_NEEDLES: readonly string[] = ['usage', 'model', '\\u'];

function includesAny(text: string, needles: readonly string[]): boolean {
  for (let k = 0; k < needles.length; k++) if (text.includes(needles[k]!)) return true;
  return false;
}

/** Runs a request parser, returning empty facts instead of throwing on hostile input. */
export function guardRequest(parse: (body: unknown) => RequestFacts, body: unknown): RequestFacts {
  try {
    return parse(body);
  } catch {
    return requestFacts(new PromptCollector(), {});
  }
}
