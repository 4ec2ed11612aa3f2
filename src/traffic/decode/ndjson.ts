/** Incremental newline-delimited JSON splitter (application/x-ndjson), bounded in memory. */
import { CappedBuffer } from './capped-buffer.js';
import { decodeUtf8, isValidUtf8 } from './utf8.js';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const LF = 0x0a;
const CR = 0x0d;

/** Only JSON whitespace (space, tab, CR, LF). */
function isBlank(b: Uint8Array): boolean {
  for (let k = 0; k < b.length; k++) {
    const c = b[k];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) return false;
  }
  return true;
}

export class NdjsonDecoder {
  private readonly partial: CappedBuffer;
  private readonly maxLineBytes: number;
  private dropped = 0;
  private invalid = false;

  /** maxLineBytes: longer lines are dropped (and counted), never buffered whole. */
  constructor(opts: { maxLineBytes?: number } = {}) {
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.partial = new CappedBuffer(this.maxLineBytes);
  }

  /** Lines longer than maxLineBytes that were dropped. */
  get droppedLines(): number {
    return this.dropped;
  }

  /** Some bytes were not valid UTF-8 (they were decoded as U+FFFD). */
  get invalidUtf8(): boolean {
    return this.invalid;
  }

  get bufferedBytes(): number {
    return this.partial.length;
  }

  /** Passes each complete, non-blank line (without its LF or CRLF) to onLine, in order. */
  push(chunk: Uint8Array, onLine: (text: string) => void): void {
    let i = 0;
    while (i < chunk.length) {
      const j = chunk.indexOf(LF, i);
      if (j === -1) {
        this.partial.append(chunk, i, chunk.length);
        return;
      }
      const p = this.partial;
      if (p.length === 0 && !p.overflowed) {
        this.line(chunk.subarray(i, j), j - i > this.maxLineBytes, onLine);
      } else {
        p.append(chunk, i, j);
        this.line(p.view(), p.overflowed, onLine);
        p.clear();
      }
      i = j + 1;
    }
  }

  /**
   * Ends the stream. truncated: it ended with a partial non-blank line, which is not emitted (so
   * onLine, accepted for symmetry with push(), is never called).
   */
  end(_onLine?: (text: string) => void): { truncated: boolean } {
    const p = this.partial;
    return { truncated: p.overflowed || !isBlank(p.view()) };
  }

  private line(bytes: Uint8Array, overflowed: boolean, onLine: (text: string) => void): void {
    if (overflowed) {
      this.dropped++;
      return;
    }
    const text = bytes[bytes.length - 1] === CR ? bytes.subarray(0, bytes.length - 1) : bytes;
    if (isBlank(text)) return;
    if (!this.invalid && !isValidUtf8(text)) this.invalid = true;
    onLine(decodeUtf8(text));
  }
}
