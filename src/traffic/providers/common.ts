/** Building blocks shared by the per-API handlers: framing, stream-event JSON, bounded text, facts. */
import type { Usage } from '../../domain.js';
import type { Framing, RequestFacts, StreamEvent } from '../types.js';
import { modelName, parseJson } from './json.js';

/** Output text kept per response for estimation when usage is missing (the config default). */
export const DEFAULT_MAX_TEXT_BYTES = 1024 * 1024;

/**
 * Tokens allowed for one non-text prompt part (image, audio, file, document), which is never
 * tokenised as text. 1600 covers the largest single-image costs the providers document: Anthropic
 * ~1,600 for a 1.15-megapixel image, OpenAI high detail <= 1,445 (8 tiles), Gemini 258 per tile.
 * Multi-page documents and long audio cost more: the figure is an allowance, not a bound.
 */
export const MEDIA_PART_TOKENS = 1600;

/**
 * Framing of a response body: the content-type wins when it clearly names a framing (e.g. a
 * streaming request answered with an application/json error); otherwise the stream flag decides.
 */
export function framingFor(stream: boolean, contentType: string | undefined, streamFraming: Framing): Framing {
  const ct = contentType === undefined ? '' : contentType.toLowerCase();
  if (ct.includes('text/event-stream')) return 'sse';
  if (ct.includes('application/vnd.amazon.eventstream')) return 'eventstream';
  if (ct.includes('ndjson') || ct.includes('application/jsonl') || ct.includes('application/json-seq')) {
    return 'ndjson';
  }
  if (ct.includes('application/json') || ct.includes('+json')) return 'json';
  return stream ? streamFraming : 'json';
}

const utf8 = new TextDecoder('utf-8');

/** The text of an event-stream frame's payload. */
export function frameText(payload: Uint8Array): string {
  return utf8.decode(payload);
}

/** A decoded stream event's JSON value and its name (SSE `event:` or event-stream `:event-type`). */
export interface EventJson {
  value: unknown;
  name: string | undefined;
}

/**
 * The JSON carried by any kind of stream event, so every handler tolerates any framing.
 * Returns undefined for `[DONE]`, blank lines and unparseable data.
 */
export function eventJson(event: StreamEvent): EventJson | undefined {
  let value: unknown;
  let name: string | undefined;
  switch (event.kind) {
    case 'sse':
      value = textJson(event.data);
      name = event.event;
      break;
    case 'line':
      value = textJson(event.text);
      name = undefined;
      break;
    case 'frame':
      value = textJson(frameText(event.payload));
      name = event.headers[':event-type'];
      break;
  }
  return value === undefined ? undefined : { value, name };
}

/** An event's text as JSON; undefined for `[DONE]`, blank and unparseable text. */
export function textJson(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed.length === 0 || trimmed === '[DONE]') return undefined;
  return parseJson(trimmed);
}

const encoder = new TextEncoder();

/** Generated text, bounded in UTF-8 bytes; the first bytes are kept, the rest only flagged. */
export class OutputText {
  private readonly pieces: string[] = [];
  private bytes = 0;
  private truncated = false;
  private joined: string | undefined;

  constructor(private readonly maxBytes: number = DEFAULT_MAX_TEXT_BYTES) {}

  add(piece: unknown): void {
    if (typeof piece !== 'string' || piece.length === 0 || this.truncated) return;
    this.joined = undefined;
    const room = this.maxBytes - this.bytes;
    const size = Buffer.byteLength(piece, 'utf8');
    if (size <= room) {
      this.pieces.push(piece);
      this.bytes += size;
      return;
    }
    this.truncated = true;
    if (room <= 0) return;
    // encodeInto stops before a character that does not fit, so the kept prefix is whole text.
    let { read } = encoder.encodeInto(piece.slice(0, room), new Uint8Array(room));
    const last = piece.charCodeAt(read - 1);
    if (last >= 0xd800 && last <= 0xdbff) read -= 1; // never keep half a surrogate pair
    if (read > 0) {
      const kept = piece.slice(0, read);
      this.pieces.push(kept);
      this.bytes += Buffer.byteLength(kept, 'utf8');
    }
  }

  text(): string {
    this.joined ??= this.pieces.join('');
    return this.joined;
  }

  isTruncated(): boolean {
    return this.truncated;
  }

  /** Bytes kept so far (at most the cap). */
  size(): number {
    return this.bytes;
  }
}

/** Collects the prompt pieces of a request body for estimation (no images or binary data). */
export class PromptCollector {
  readonly promptText: string[] = [];
  extraTokens = 0;

  text(value: unknown): void {
    if (typeof value === 'string' && value.length > 0) this.promptText.push(value);
  }

  /** Structured prompt content (tool schemas, tool-call arguments) counted as its JSON text. */
  json(value: unknown): void {
    if (value === undefined || value === null) return;
    if (typeof value === 'string') {
      this.text(value);
      return;
    }
    let encoded: string | undefined;
    try {
      encoded = JSON.stringify(value);
    } catch {
      return; // nesting deep enough to exhaust the stack: not a real prompt
    }
    if (encoded !== undefined && encoded !== '{}' && encoded !== '[]') this.promptText.push(encoded);
  }

  media(parts = 1): void {
    this.extraTokens += MEDIA_PART_TOKENS * parts;
  }

  tokens(n: number): void {
    this.extraTokens += n;
  }
}

export interface RequestFactsInit {
  model?: unknown;
  stream?: unknown;
  maxOutputTokens?: number | null;
  includeUsageRequested?: boolean;
}

export function requestFacts(prompt: PromptCollector, init: RequestFactsInit): RequestFacts {
  return {
    model: modelName(init.model),
    stream: typeof init.stream === 'boolean' ? init.stream : undefined,
    maxOutputTokens: init.maxOutputTokens ?? null,
    promptText: prompt.promptText,
    extraTokens: prompt.extraTokens,
    includeUsageRequested: init.includeUsageRequested ?? false,
  };
}

/** The first of several candidate values that is a valid count. */
export function firstCount(...values: (number | null)[]): number | null {
  for (const v of values) if (v !== null) return v;
  return null;
}

/** A Usage from normalised fields; null when the provider reported none of them. */
export function makeUsage(fields: Partial<Usage>): Usage | null {
  const u: Usage = {
    input_tokens: fields.input_tokens ?? null,
    output_tokens: fields.output_tokens ?? null,
    total_tokens: fields.total_tokens ?? null,
    cached_input_tokens: fields.cached_input_tokens ?? null,
    cache_write_tokens: fields.cache_write_tokens ?? null,
    reasoning_tokens: fields.reasoning_tokens ?? null,
  };
  for (const v of Object.values(u)) if (v !== null) return u;
  return null;
}
