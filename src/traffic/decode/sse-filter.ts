/**
 * Removes selected events from an SSE byte stream without re-serialising it: kept events,
 * comments and blank lines are forwarded byte for byte, and only the event in progress is held.
 */
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
  /** Bytes of the event in progress (from its first field line on). */
  private held: Uint8Array[] = [];
  private heldLen = 0;
  /** Bytes of the line in progress, not yet attributed. */
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  private last: Disposition = 'forward';
  private passThrough = false;
  private dropped = 0;
  // Per-push state used by the sink.
  private chunk: Uint8Array = EMPTY;
  private pos = 0;
  private out: Uint8Array[] = [];

  private readonly sink: LineSink = {
    line: (line, overflowed, end) => this.onLine(line, overflowed, end),
    skip: (end) => this.route(this.take(end), this.last),
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
    return this.heldLen + this.pendingLen;
  }

  /** Returns the bytes to forward for this chunk (possibly empty). */
  push(chunk: Uint8Array): Uint8Array {
    if (this.passThrough) return chunk;
    this.chunk = chunk;
    this.pos = 0;
    this.out = [];
    this.splitter.push(chunk, this.sink);
    if (this.pos < chunk.length) {
      // Copied: the caller may reuse its chunk after push() returns.
      const rest = copyOf(chunk.subarray(this.pos));
      this.pending.push(rest);
      this.pendingLen += rest.length;
    }
    const out = this.out;
    this.chunk = EMPTY;
    this.out = [];
    if (this.heldBytes > this.maxHeldBytes) {
      out.push(...this.held, ...this.pending);
      this.clearHeld();
      this.pending = [];
      this.pendingLen = 0;
      this.passThrough = true;
    }
    return concat(out);
  }

  /** Flushes whatever is held, unfiltered. */
  end(): Uint8Array {
    const out = concat([...this.held, ...this.pending]);
    this.clearHeld();
    this.pending = [];
    this.pendingLen = 0;
    return out;
  }

  /** The pending bytes plus this chunk's bytes up to `end`. */
  private take(end: number): Uint8Array[] {
    const parts = this.pending;
    if (end > this.pos) parts.push(this.chunk.subarray(this.pos, end));
    this.pos = end;
    this.pending = [];
    this.pendingLen = 0;
    return parts;
  }

  private route(parts: Uint8Array[], to: Disposition): void {
    if (to === 'forward') this.out.push(...parts);
    else if (to === 'hold') {
      // Held across pushes: copied, as the caller may reuse its chunk.
      for (const p of parts) {
        this.held.push(copyOf(p));
        this.heldLen += p.length;
      }
    }
  }

  private onLine(line: Uint8Array, overflowed: boolean, end: number): void {
    const parts = this.take(end);
    const wasInEvent = this.assembler.inEvent;
    const ev = this.assembler.line(line, overflowed);
    if (ev === undefined) {
      this.last = this.assembler.inEvent ? 'hold' : 'forward';
      this.route(parts, this.last);
      return;
    }
    if (!wasInEvent) {
      this.last = 'forward';
      this.route(parts, 'forward');
      return;
    }
    if (ev !== null && this.drop(ev)) {
      this.dropped++;
      this.last = 'drop';
    } else {
      this.out.push(...this.held, ...parts);
      this.last = 'forward';
    }
    this.clearHeld();
  }

  private clearHeld(): void {
    this.held = [];
    this.heldLen = 0;
  }
}

/** A copy (Buffer#slice would return a view). */
function copyOf(bytes: Uint8Array): Uint8Array {
  const c = new Uint8Array(bytes.length);
  c.set(bytes);
  return c;
}

function concat(parts: Uint8Array[]): Uint8Array {
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
