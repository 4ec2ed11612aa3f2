/**
 * Incremental decoder of the AWS event stream (application/vnd.amazon.eventstream):
 * [total_len u32][headers_len u32][prelude_crc u32][headers][payload][message_crc u32], big-endian.
 */
// CRC-32 with the IEEE/zlib polynomial; native since Node 20.15 (package engines: >= 20.19).
import { crc32 } from 'node:zlib';
import { CappedBuffer } from './capped-buffer.js';
import { decodeUtf8 } from './utf8.js';

export interface EventStreamFrame {
  /** String-valued headers (type 7); other header types are skipped. */
  headers: Readonly<Record<string, string>>;
  payload: Uint8Array;
}

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
const PRELUDE = 12;
/** Prelude plus message CRC: the smallest possible frame. */
const MIN_FRAME = 16;
/** Header blocks up to this size are remembered for the next frame (real ones are under 200 bytes). */
const MAX_REMEMBERED_HEADER_BYTES = 1024;

function u32(b: Uint8Array, o: number): number {
  return (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0;
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number);
}

/** Fixed value sizes of the non-string header types (AWS event stream encoding). */
const FIXED_VALUE_BYTES: Record<number, number> = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };
const TYPE_BYTES = 6;
const TYPE_STRING = 7;

/** Parses a header block; null when it is malformed (overruns, unknown type). */
function parseHeaders(b: Uint8Array): Record<string, string> | null {
  // No prototype: a header named "__proto__" must stay a plain entry.
  const out = Object.create(null) as Record<string, string>;
  let o = 0;
  while (o < b.length) {
    const nameLen = b[o] as number;
    const nameEnd = o + 1 + nameLen;
    if (nameEnd + 1 > b.length) return null;
    const name = decodeUtf8(b.subarray(o + 1, nameEnd));
    const type = b[nameEnd] as number;
    o = nameEnd + 1;
    if (type === TYPE_STRING || type === TYPE_BYTES) {
      if (o + 2 > b.length) return null;
      const end = o + 2 + u16(b, o);
      if (end > b.length) return null;
      if (type === TYPE_STRING) out[name] = decodeUtf8(b.subarray(o + 2, end));
      o = end;
    } else {
      const size = FIXED_VALUE_BYTES[type];
      if (size === undefined || o + size > b.length) return null;
      o += size;
    }
  }
  return out;
}

export class EventStreamDecoder {
  private readonly buf: CappedBuffer;
  private readonly maxFrameBytes: number;
  /** total_len of the frame being read; 0 while reading a prelude. */
  private frameLen = 0;
  private headersLen = 0;
  /** Bytes still to discard of an oversized frame. */
  private skipping = 0;
  private crcErrorCount = 0;
  private droppedCount = 0;
  private isCorrupt = false;
  /**
   * The last header block and what it parsed to: consecutive frames mostly carry the same headers
   * (one event type after another), so their bytes are compared instead of decoded again.
   */
  private lastHeaderBytes: Uint8Array = new Uint8Array(0);
  private lastHeaders: Readonly<Record<string, string>> | null = null;

  /** maxFrameBytes: larger frames are skipped (and counted), never buffered. */
  constructor(opts: { maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = Math.max(opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, MIN_FRAME);
    this.buf = new CappedBuffer(this.maxFrameBytes);
  }

  /** Prelude and message CRC mismatches. */
  get crcErrors(): number {
    return this.crcErrorCount;
  }

  /** Frames not delivered: bad message CRC, malformed headers, or larger than maxFrameBytes. */
  get droppedFrames(): number {
    return this.droppedCount;
  }

  /**
   * A prelude had a bad CRC or impossible lengths: frame boundaries are lost, so nothing after it
   * is decoded.
   */
  get corrupt(): boolean {
    return this.isCorrupt;
  }

  get bufferedBytes(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array, onFrame: (f: EventStreamFrame) => void): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.isCorrupt) {
      if (this.skipping > 0) {
        const k = Math.min(this.skipping, n - i);
        this.skipping -= k;
        i += k;
        continue;
      }
      const need = this.frameLen === 0 ? PRELUDE : this.frameLen;
      const take = Math.min(need - this.buf.length, n - i);
      this.buf.append(chunk, i, i + take);
      i += take;
      if (this.buf.length < need) return;
      if (this.frameLen === 0) this.readPrelude();
      else this.readFrame(onFrame);
    }
  }

  /**
   * truncated: the stream did not end on a decoded frame boundary: it ended inside a frame, or
   * decoding stopped at a corrupt prelude (what followed was lost).
   */
  end(): { truncated: boolean } {
    return { truncated: this.isCorrupt || this.buf.length > 0 || this.skipping > 0 };
  }

  private readPrelude(): void {
    const p = this.buf.view();
    const total = u32(p, 0);
    const headersLen = u32(p, 4);
    if (crc32(p.subarray(0, 8)) !== u32(p, 8)) {
      this.crcErrorCount++;
      this.fail();
    } else if (total < MIN_FRAME || headersLen > total - MIN_FRAME) {
      this.fail();
    } else if (total > this.maxFrameBytes) {
      // The prelude CRC vouches for the length, so the frame can be stepped over without buffering.
      this.droppedCount++;
      this.skipping = total - PRELUDE;
      this.buf.clear();
    } else {
      this.frameLen = total;
      this.headersLen = headersLen;
      this.buf.reserve(total);
    }
  }

  private readFrame(onFrame: (f: EventStreamFrame) => void): void {
    const f = this.buf.view();
    const crcAt = this.frameLen - 4;
    const headersEnd = PRELUDE + this.headersLen;
    let frame: EventStreamFrame | null = null;
    if (crc32(f.subarray(0, crcAt)) !== u32(f, crcAt)) this.crcErrorCount++;
    else {
      const headers = this.headersOf(f.subarray(PRELUDE, headersEnd));
      // slice() copies: the buffer is reused for the next frame.
      if (headers) frame = { headers, payload: f.slice(headersEnd, crcAt) };
    }
    this.buf.clear();
    this.frameLen = 0;
    if (frame) onFrame(frame);
    else this.droppedCount++;
  }

  /** Parses a header block, or returns the previous frame's (frozen, so shared safely) for the same bytes. */
  private headersOf(block: Uint8Array): Readonly<Record<string, string>> | null {
    if (this.lastHeaders !== null && Buffer.compare(block, this.lastHeaderBytes) === 0) return this.lastHeaders;
    const headers = parseHeaders(block);
    if (headers !== null && block.length <= MAX_REMEMBERED_HEADER_BYTES) {
      this.lastHeaderBytes = new Uint8Array(block); // a copy: the frame buffer is reused
      this.lastHeaders = Object.freeze(headers);
    }
    return headers;
  }

  private fail(): void {
    this.isCorrupt = true;
    this.buf.clear();
  }
}
