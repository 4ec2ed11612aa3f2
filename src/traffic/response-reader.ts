/**
 * The response side of an exchange: content decoding, then the framer, then the handler's
 * accumulator, under the caps of `limits`; problems go to the exchange's first error. Also hides the
 * event an include_usage injection caused from the bytes the client receives.
 */
import type { LimitsConfig } from '../config/types.js';
import { createContentDecoder, type ContentDecoder } from './decode/content-encoding.js';
import { SseEventFilter } from './decode/sse-filter.js';
import { createFramer, type Framer } from './framer.js';
import { RESPONSE_KEYS } from './providers/index.js';
import type { ApiHandler, Fail, Framing, ResponseAccumulator, ResponseFacts } from './types.js';

export interface ResponseReaderOptions {
  handler: ApiHandler;
  stream: boolean;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  limits: LimitsConfig;
  /** Generated text kept for estimation (metering.max_stream_text_bytes). */
  maxTextBytes: number;
  /** include_usage was injected into the request: its usage event is removed from the stream. */
  usageInjected: boolean;
  /** Monotonic milliseconds, for the first output's time. */
  clock: () => number;
  fail: Fail;
}

export class ResponseReader {
  readonly framing: Framing;
  /** Clock time of the first streamed chunk that carried output text; null until seen (and for JSON). */
  firstOutputAt: number | null = null;
  private readonly acc: ResponseAccumulator;
  private readonly framer: Framer;
  /** The framer's `stream`, kept here: read on every chunk. */
  private readonly streamed: boolean;
  private readonly content: ContentDecoder | null;
  private readonly filter: SseEventFilter | null = null;
  private readonly clock: () => number;
  private readonly fail: Fail;

  constructor(o: ResponseReaderOptions) {
    this.clock = o.clock;
    this.fail = o.fail;
    this.framing = o.handler.framing(o.stream, o.contentType);
    this.acc = o.handler.newResponse(o.maxTextBytes);
    this.framer = createFramer(this.framing, this.acc, o.limits, RESPONSE_KEYS, o.fail);
    this.streamed = this.framer.stream;
    // A JSON body is held whole, so its decoded size is capped by the body limit; stream decoders hold
    // one event at a time, so only the inflating work of a compressed stream needs a (larger) cap.
    const maxOutputBytes = this.framing === 'json' ? o.limits.max_response_body_bytes + 1 : o.limits.max_decoded_stream_bytes;
    this.content = createContentDecoder(o.contentEncoding, this.feed, { maxOutputBytes });
    // The injection asked for accept-encoding: identity; an encoded stream is passed on unfiltered.
    const injection = o.handler.usageInjection;
    if (this.framing === 'sse' && o.usageInjected && injection !== undefined && this.content === null) {
      this.filter = new SseEventFilter(injection.isInjectedEvent);
    }
  }

  /**
   * Feeds a response body chunk. Returns the bytes to forward instead of the chunk when the
   * injected usage event has to be hidden from the client, else null (forward unchanged).
   */
  push(chunk: Uint8Array, endOfStream: boolean): Uint8Array | null {
    if (this.content) this.content.push(chunk);
    else {
      // The feed, inlined: this is the per-chunk path of every unencoded stream.
      this.framer.push(chunk);
      if (this.streamed && this.firstOutputAt === null) this.noteFirstOutput();
    }
    const filter = this.filter;
    if (!filter) return null;
    const out = filter.push(chunk);
    if (!endOfStream) return out;
    const tail = filter.end();
    return tail.length === 0 ? out : Buffer.concat([out, tail]);
  }

  /** Decoded bytes to the framer (made once per exchange: the content decoder's callback). */
  private readonly feed = (bytes: Uint8Array): void => {
    this.framer.push(bytes);
    if (this.streamed && this.firstOutputAt === null) this.noteFirstOutput();
  };

  /** The first streamed chunk that carried output text starts the time to first chunk. */
  private noteFirstOutput(): void {
    if (this.acc.outputBytes() > 0) this.firstOutputAt = this.clock();
  }

  /**
   * The body is over: waits for the content decoder, then ends the framing when the body was read
   * (`parse`: a 2xx with a body). `complete`: the response ended; `stopped`: a budget cut the stream.
   */
  async end(parse: boolean, complete: boolean, stopped: boolean): Promise<void> {
    if (this.content) {
      const { error } = await this.content.end();
      if (error) this.fail(error === 'too_large' ? 'body_too_large' : 'corrupt_encoding');
    }
    if (parse) this.framer.end(complete, stopped);
  }

  /** UTF-8 bytes of generated text seen so far. */
  outputBytes(): number {
    return this.acc.outputBytes();
  }

  result(): ResponseFacts {
    return this.acc.result();
  }
}
