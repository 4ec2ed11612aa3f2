/**
 * One interface over the four response framings: decoded bytes in, events (or the whole JSON body)
 * out to the handler's accumulator, and at the end the problems found (over a cap, truncated,
 * invalid). The framers only wrap the decoders in decode/; per-chunk work is theirs alone.
 */
import { isUtf8 } from 'node:buffer';
import type { LimitsConfig } from '../config/types.js';
import { EventStreamDecoder, type EventStreamFrame } from './decode/eventstream.js';
import { NdjsonDecoder } from './decode/ndjson.js';
import { SseDecoder, type SseEvent } from './decode/sse.js';
import { concat, INVALID, parseJsonBody } from './json-body.js';
import { frameText } from './providers/common.js';
import type { Fail, Framing, ResponseAccumulator } from './types.js';

/** Non-streaming response bodies up to this size are parsed whole; larger ones are scanned. */
export const RESPONSE_FULL_PARSE_LIMIT = 256 * 1024;

export interface Framer {
  /** A stream framing: each push may complete events that carry output text. */
  readonly stream: boolean;
  /** Feeds body bytes (content-encoding already removed); a cap exceeded is reported through `fail`. */
  push(bytes: Uint8Array): void;
  /**
   * The body is over. `complete`: the response ended (not aborted); `stopped`: a budget cut the
   * stream. Reports what the end reveals (truncation, dropped events, invalid UTF-8 or JSON).
   */
  end(complete: boolean, stopped: boolean): void;
}

/** The framer for `framing`, feeding `acc`; `responseKeys` are what a large JSON body is scanned for. */
export function createFramer(
  framing: Framing,
  acc: ResponseAccumulator,
  limits: LimitsConfig,
  responseKeys: readonly string[],
  fail: Fail,
): Framer {
  switch (framing) {
    case 'sse':
      return new SseFramer(acc, limits.max_stream_event_bytes, fail);
    case 'eventstream':
      return new EventStreamFramer(acc, limits.max_stream_frame_bytes, fail);
    case 'ndjson':
      return new NdjsonFramer(acc, limits.max_stream_event_bytes, fail);
    case 'json':
      return new JsonFramer(acc, limits.max_response_body_bytes, responseKeys, fail);
  }
}

class SseFramer implements Framer {
  readonly stream = true;
  private readonly decoder: SseDecoder;
  // The decoder's callback, made once per exchange rather than once per chunk.
  private readonly onEvent: (ev: SseEvent) => void;

  constructor(acc: ResponseAccumulator, maxEventBytes: number, private readonly fail: Fail) {
    this.decoder = new SseDecoder({ maxEventBytes });
    this.onEvent = (ev) => acc.onStreamText(ev.data, ev.event);
  }

  push(bytes: Uint8Array): void {
    this.decoder.push(bytes, this.onEvent);
  }

  end(complete: boolean, stopped: boolean): void {
    const { truncated } = this.decoder.end();
    if (this.decoder.invalidUtf8) this.fail('invalid_utf8');
    // An event over the decoder's cap was passed through unread: part of the body was too large.
    if (this.decoder.droppedEvents > 0) this.fail('body_too_large');
    if (truncated && complete && !stopped) this.fail('stream_truncated');
  }
}

class EventStreamFramer implements Framer {
  readonly stream = true;
  private readonly decoder: EventStreamDecoder;
  private readonly onFrame: (f: EventStreamFrame) => void;

  constructor(acc: ResponseAccumulator, maxFrameBytes: number, private readonly fail: Fail) {
    this.decoder = new EventStreamDecoder({ maxFrameBytes });
    this.onFrame = (f) => acc.onStreamText(frameText(f.payload), f.headers[':event-type']);
  }

  push(bytes: Uint8Array): void {
    this.decoder.push(bytes, this.onFrame);
  }

  end(complete: boolean, stopped: boolean): void {
    const { truncated } = this.decoder.end();
    if (this.decoder.droppedFrames > 0) this.fail('body_too_large');
    if (truncated && complete && !stopped) this.fail('stream_truncated');
  }
}

class NdjsonFramer implements Framer {
  readonly stream = true;
  private readonly decoder: NdjsonDecoder;
  private readonly onLine: (text: string) => void;

  constructor(acc: ResponseAccumulator, maxLineBytes: number, private readonly fail: Fail) {
    this.decoder = new NdjsonDecoder({ maxLineBytes });
    this.onLine = (text) => acc.onStreamText(text, undefined);
  }

  push(bytes: Uint8Array): void {
    this.decoder.push(bytes, this.onLine);
  }

  end(complete: boolean, stopped: boolean): void {
    const { truncated } = this.decoder.end();
    if (this.decoder.invalidUtf8) this.fail('invalid_utf8');
    if (this.decoder.droppedLines > 0) this.fail('body_too_large');
    if (truncated && complete && !stopped) this.fail('stream_truncated');
  }
}

/** A whole JSON body: held up to the body cap, parsed at the end (scanned for keys when large). */
class JsonFramer implements Framer {
  readonly stream = false;
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private overflow = false;

  constructor(
    private readonly acc: ResponseAccumulator,
    private readonly maxBytes: number,
    private readonly keys: readonly string[],
    private readonly fail: Fail,
  ) {}

  push(bytes: Uint8Array): void {
    if (this.overflow) return;
    this.bytes += bytes.length;
    if (this.bytes > this.maxBytes) {
      this.overflow = true;
      this.chunks = [];
      this.fail('body_too_large');
      return;
    }
    if (bytes.length > 0) this.chunks.push(bytes);
  }

  end(complete: boolean): void {
    if (!complete || this.overflow) return;
    const body = concat(this.chunks, this.bytes);
    this.chunks = [];
    if (body.length === 0) {
      this.fail('empty_body');
      return;
    }
    if (!isUtf8(body)) this.fail('invalid_utf8');
    // Large bodies (embeddings, long completions): only the keys that carry usage/model are parsed.
    const parsed = parseJsonBody(body, this.keys, RESPONSE_FULL_PARSE_LIMIT);
    if (parsed === INVALID) this.fail('invalid_json');
    else this.acc.onJson(parsed);
  }
}
