/** Incremental Server-Sent Events decoder (WHATWG event-stream rules), bounded in memory. */
import { SseEventAssembler, SseLineSplitter, type LineSink, type SseEvent } from './sse-core.js';

export type { SseEvent } from './sse-core.js';

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;
/** Room for the field name and colon on top of the largest allowed value. */
const LINE_SLACK = 64;

export class SseDecoder {
  private readonly splitter: SseLineSplitter;
  private readonly assembler: SseEventAssembler;
  private onEvent: (ev: SseEvent) => void = () => {};
  private readonly sink: LineSink = {
    line: (line, overflowed) => {
      const ev = this.assembler.line(line, overflowed);
      if (ev) this.onEvent(ev);
    },
    skip: () => {},
  };

  /** maxEventBytes: larger events are dropped (and counted), never buffered. */
  constructor(opts: { maxEventBytes?: number } = {}) {
    const max = opts.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
    this.splitter = new SseLineSplitter(max + LINE_SLACK);
    this.assembler = new SseEventAssembler(max);
  }

  /** Events larger than maxEventBytes that were dropped. */
  get droppedEvents(): number {
    return this.assembler.droppedEvents;
  }

  /** Some bytes were not valid UTF-8 (they were decoded as U+FFFD). */
  get invalidUtf8(): boolean {
    return this.assembler.invalidUtf8;
  }

  /** Bytes of the unfinished line currently held. */
  get bufferedBytes(): number {
    return this.splitter.bufferedBytes;
  }

  /** Decodes a chunk; each event completed by it is passed to onEvent, in order. */
  push(chunk: Uint8Array, onEvent: (ev: SseEvent) => void): void {
    this.onEvent = onEvent;
    this.splitter.push(chunk, this.sink);
  }

  /**
   * Ends the stream. An event without its closing blank line is never dispatched (WHATWG), so
   * onEvent is accepted for symmetry with push() but not called. truncated: the stream ended inside
   * an event (a partial line, or field lines without the closing blank line).
   */
  end(_onEvent?: (ev: SseEvent) => void): { truncated: boolean } {
    return { truncated: this.splitter.inLine || this.assembler.inEvent };
  }
}
