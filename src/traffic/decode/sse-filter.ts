/**
 * Removes selected events from an SSE byte stream without re-serialising it: kept events,
 * comments and blank lines are forwarded byte for byte, and only the event in progress is held.
 */
import { CappedBuffer } from './capped-buffer.js';
import { SseEventAssembler, SseLineSplitter, type LineSink, type SseEvent } from './sse-core.js';

export const DEFAULT_MAX_HELD_BYTES = 1024 * 1024;
const LINE_SLACK = 64;
const EMPTY = new Uint8Array(0);

/** Where the bytes of the last line went; the LF of a split CRLF follows them. */
type Disposition = 'forward' | 'hold' | 'drop';

export class SseEventFilter {
  private readonly splitter: SseLineSplitter;
  private readonly assembler: SseEventAssembler;
  private readonly maxHeldBytes: number;
  /**
   * Bytes not yet forwarded: the event in progress (from its first field line on), then the
   * unfinished line. Not capped itself: push() gives up once it outgrows maxHeldBytes.
   */
  private readonly held = new CappedBuffer(Number.MAX_SAFE_INTEGER);
  private last: Disposition = 'forward';
  private passThrough = false;
  private dropped = 0;
  // Per-push state used by the sink: the chunk, how far it is attributed, and the output so far.
  private chunk: Uint8Array = EMPTY;
  private pos = 0;
  private out: Uint8Array[] = [];

  private readonly sink: LineSink = {
    line: (line, overflowed, end) => this.onLine(line, overflowed, end),
    skip: (end) => this.settle(this.last, end),
  };

  /** drop: events for which it returns true are removed from the stream. */
  constructor(
    private readonly drop: (ev: SseEvent) => boolean,
    opts: { maxHeldBytes?: number } = {},
  ) {
    this.maxHeldBytes = opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    this.splitter = new SseLineSplitter(this.maxHeldBytes + LINE_SLACK);
    this.assembler = new SseEventAssembler(this.maxHeldBytes);
  }

  /** Events removed so far. */
  get droppedEvents(): number {
    return this.dropped;
  }

  /** The held bytes outgrew maxHeldBytes: filtering stopped and everything now passes through. */
  get gaveUp(): boolean {
    return this.passThrough;
  }

  get heldBytes(): number {
    return this.held.length;
  }

  /** Returns the bytes to forward for this chunk (possibly empty). */
  push(chunk: Uint8Array): Uint8Array {
    if (this.passThrough) return chunk;
    this.chunk = chunk;
    this.pos = 0;
    this.splitter.push(chunk, this.sink);
    // Copied: the caller may reuse its chunk after push() returns.
    this.held.append(chunk, this.pos, chunk.length);
    if (this.held.length > this.maxHeldBytes) {
      this.flushHeld();
      this.passThrough = true;
    }
    const out = concat(this.out);
    this.chunk = EMPTY;
    this.out = [];
    return out;
  }

  /** Flushes whatever is held, unfiltered. */
  end(): Uint8Array {
    this.flushHeld();
    const out = concat(this.out);
    this.out = [];
    return out;
  }

  private onLine(line: Uint8Array, overflowed: boolean, end: number): void {
    const wasInEvent = this.assembler.inEvent;
    const ev = this.assembler.line(line, overflowed);
    let to: Disposition;
    if (ev === undefined) to = this.assembler.inEvent ? 'hold' : 'forward';
    else if (!wasInEvent) to = 'forward';
    else if (ev !== null && this.drop(ev)) {
      this.dropped++;
      to = 'drop';
    } else to = 'forward';
    this.last = to;
    this.settle(to, end);
  }

  /** Sends the held bytes plus the chunk's bytes up to `end` where they belong. */
  private settle(to: Disposition, end: number): void {
    const start = this.pos;
    this.pos = end;
    if (to === 'hold') {
      this.held.append(this.chunk, start, end);
      return;
    }
    if (to === 'forward') {
      this.flushHeld();
      this.forward(this.chunk.subarray(start, end));
    } else this.held.clear();
  }

  private flushHeld(): void {
    if (this.held.length === 0) return;
    this.out.push(this.held.view().slice());
    this.held.clear();
  }

  /** Adds a view of the chunk to the output, merging it with an adjacent previous view. */
  private forward(part: Uint8Array): void {
    if (part.length === 0) return;
    const prev = this.out[this.out.length - 1];
    if (prev && prev.buffer === part.buffer && prev.byteOffset + prev.length === part.byteOffset) {
      this.out[this.out.length - 1] = new Uint8Array(part.buffer, prev.byteOffset, prev.length + part.length);
    } else this.out.push(part);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0] as Uint8Array;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
