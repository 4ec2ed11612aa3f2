/**
 * Building blocks of the WHATWG event-stream parser, shared by the SSE decoder and the SSE filter:
 * a line splitter that keeps byte offsets, and an assembler that turns lines into events.
 */
import { CappedBuffer } from './capped-buffer.js';
import { decodeUtf8, isValidUtf8 } from './utf8.js';

export interface SseEvent {
  /** The `event:` field; undefined for the default type ("message"). */
  event: string | undefined;
  /** The `data:` lines joined with LF. */
  data: string;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
const DATA = new Uint8Array([0x64, 0x61, 0x74, 0x61]);
const EVENT = new Uint8Array([0x65, 0x76, 0x65, 0x6e, 0x74]);
/** `event:` values up to this size are remembered for the next event (real ones are under 40 bytes). */
const MAX_REMEMBERED_TYPE_BYTES = 64;

export interface LineSink {
  /**
   * One complete line without its terminator. `line` is only valid during the call. `overflowed`:
   * the line was longer than the cap and only its first bytes are given. `end` is the offset in
   * the current chunk just past the terminator.
   */
  line(line: Uint8Array, overflowed: boolean, end: number): void;
  /**
   * The chunk's bytes up to `end` are not part of any line: the stream's leading BOM, or the LF of
   * a CRLF whose CR ended the previous chunk.
   */
  skip(end: number): void;
}

/** Splits a byte stream into lines ended by LF, CRLF or CR, across arbitrary chunk boundaries. */
export class SseLineSplitter {
  private readonly partial: CappedBuffer;
  private bomMatched = 0;
  private bomDone = false;
  private afterCr = false;

  constructor(private readonly maxLineBytes: number) {
    this.partial = new CappedBuffer(maxLineBytes);
  }

  /** Bytes of an unfinished line are pending. */
  get inLine(): boolean {
    return this.partial.length > 0 || this.partial.overflowed || (!this.bomDone && this.bomMatched > 0);
  }

  get bufferedBytes(): number {
    return this.partial.length + (this.bomDone ? 0 : this.bomMatched);
  }

  push(chunk: Uint8Array, sink: LineSink): void {
    const n = chunk.length;
    if (n === 0) return;
    let i = 0;
    if (!this.bomDone) {
      while (i < n && this.bomMatched < 3 && chunk[i] === BOM[this.bomMatched]) {
        i++;
        this.bomMatched++;
      }
      if (this.bomMatched === 3) {
        this.bomDone = true;
        sink.skip(i);
      } else if (i === n) {
        return; // a BOM prefix so far: undecided
      } else {
        this.bomDone = true;
        this.partial.append(BOM, 0, this.bomMatched);
      }
    }
    if (this.afterCr) {
      this.afterCr = false;
      if (i < n && chunk[i] === LF) sink.skip(++i);
    }
    // indexOf is native; remembering the next hit of each keeps the scan linear.
    let nextLf = -2;
    let nextCr = -2;
    while (i < n) {
      if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
      if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
      const j = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
      if (j === -1) {
        this.partial.append(chunk, i, n);
        return;
      }
      let end = j + 1;
      if (chunk[j] === CR) {
        if (end === n) this.afterCr = true;
        else if (chunk[end] === LF) end++;
      }
      this.emit(chunk, i, j, end, sink);
      i = end;
    }
  }

  private emit(chunk: Uint8Array, start: number, stop: number, end: number, sink: LineSink): void {
    const p = this.partial;
    if (p.length === 0 && !p.overflowed) {
      const over = stop - start > this.maxLineBytes;
      sink.line(chunk.subarray(start, over ? start + this.maxLineBytes : stop), over, end);
      return;
    }
    p.append(chunk, start, stop);
    sink.line(p.view(), p.overflowed, end);
    p.clear();
  }
}

function nameIs(line: Uint8Array, nameEnd: number, name: Uint8Array): boolean {
  if (nameEnd !== name.length) return false;
  for (let k = 0; k < nameEnd; k++) if (line[k] !== name[k]) return false;
  return true;
}

/** Applies the WHATWG field rules to lines and dispatches events at blank lines. */
export class SseEventAssembler {
  droppedEvents = 0;
  invalidUtf8 = false;
  private dataLines: string[] = [];
  private dataBytes = 0;
  private eventType: string | undefined = undefined;
  private fieldSeen = false;
  private oversized = false;
  private lastTypeBytes: Uint8Array = new Uint8Array(0);
  private lastType: string | undefined = undefined;

  constructor(private readonly maxEventBytes: number) {}

  /** A field line was seen since the last blank line: an event is in progress. */
  get inEvent(): boolean {
    return this.fieldSeen;
  }

  /**
   * Feeds one line. Returns undefined for a comment or field line; at a blank line returns the
   * dispatched event, or null when nothing is dispatched (no data line, or the event was too big).
   */
  line(line: Uint8Array, overflowed: boolean): SseEvent | null | undefined {
    if (line.length === 0 && !overflowed) return this.dispatch();
    // Comments, and lines of an event already too large, are only checked.
    if (line[0] === COLON || overflowed || this.oversized) {
      this.checkUtf8(line, overflowed);
      if (line[0] === COLON) return undefined;
      this.fieldSeen = true;
      this.markOversized();
      return undefined;
    }
    this.fieldSeen = true;
    const colon = line.indexOf(COLON);
    const nameEnd = colon === -1 ? line.length : colon;
    let valueStart = colon === -1 ? line.length : colon + 1;
    if (line[valueStart] === SPACE) valueStart++;
    if (nameIs(line, nameEnd, DATA)) {
      this.dataBytes += line.length - valueStart + 1;
      if (this.dataBytes > this.maxEventBytes) {
        this.checkUtf8(line, false);
        this.markOversized();
        return undefined;
      }
      const value = decodeUtf8(line.subarray(valueStart));
      // Invalid bytes decode to U+FFFD: a value without one was valid ("data:" is ASCII).
      if (value.includes('\uFFFD')) this.checkUtf8(line, false);
      this.dataLines.push(value);
      return undefined;
    }
    this.checkUtf8(line, false);
    if (nameIs(line, nameEnd, EVENT)) this.eventType = this.typeOf(line, valueStart);
    // `id` and `retry` only matter to a reconnecting browser; unknown fields are ignored (WHATWG).
    return undefined;
  }

  /** An overflowed line may end inside a character: only whole lines are checked. */
  private checkUtf8(line: Uint8Array, overflowed: boolean): void {
    if (!overflowed && !this.invalidUtf8 && !isValidUtf8(line)) this.invalidUtf8 = true;
  }

  /** The `event:` value; a stream names few types, so one equal to the last is not decoded again. */
  private typeOf(line: Uint8Array, valueStart: number): string {
    const n = line.length - valueStart;
    const last = this.lastTypeBytes;
    if (this.lastType !== undefined && last.length === n) {
      let k = 0;
      while (k < n && line[valueStart + k] === last[k]) k++;
      if (k === n) return this.lastType;
    }
    const type = decodeUtf8(line.subarray(valueStart));
    if (n <= MAX_REMEMBERED_TYPE_BYTES) {
      this.lastTypeBytes = new Uint8Array(line.subarray(valueStart)); // a copy (Buffer.slice would be a view)
      this.lastType = type;
    }
    return type;
  }

  private markOversized(): void {
    this.oversized = true;
    this.dataLines = [];
  }

  private dispatch(): SseEvent | null {
    let ev: SseEvent | null = null;
    if (this.oversized) this.droppedEvents++;
    else if (this.dataLines.length > 0) {
      const data = this.dataLines.length === 1 ? (this.dataLines[0] as string) : this.dataLines.join('\n');
      ev = { event: this.eventType === '' ? undefined : this.eventType, data };
    }
    this.dataLines = [];
    this.dataBytes = 0;
    this.eventType = undefined;
    this.fieldSeen = false;
    this.oversized = false;
    return ev;
  }
}
