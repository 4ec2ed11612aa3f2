/**
 * Removal of a response `content-encoding` (gzip, deflate, br) as a push/end decoder with a cap on
 * the decompressed size. Node's zlib streams are asynchronous, hence the promise from end().
 */
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';

export type ContentDecodeError = 'unsupported_encoding' | 'corrupt_encoding' | 'too_large';

export interface ContentDecoder {
  /**
   * Feeds compressed bytes; never throws. Ignored after end() or an error. The chunk is read
   * asynchronously: do not modify it afterwards.
   */
  push(chunk: Uint8Array): void;
  /** Resolves after all output was delivered to onData. */
  end(): Promise<{ error: ContentDecodeError | null }>;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/**
 * Chunks smaller than this are gathered and written to zlib together (at this size, or on the next
 * turn of the event loop): every write costs a thread-pool round trip, so 10^5 one-byte chunks
 * written one by one would take seconds.
 */
const BATCH_BYTES = 64 * 1024;

/** zlib streams start with CMF/FLG: deflate method, and CMF*256+FLG a multiple of 31 (RFC 1950). */
function isZlibHeader(head: Uint8Array): boolean {
  const cmf = head[0] ?? 0;
  const flg = head[1] ?? 0;
  return (cmf & 0x0f) === 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 === 0;
}

type Factory = (head: Uint8Array) => Transform;

const FACTORIES: Record<string, { headBytes: number; create: Factory }> = {
  gzip: { headBytes: 0, create: () => zlib.createGunzip() },
  'x-gzip': { headBytes: 0, create: () => zlib.createGunzip() },
  // "deflate" should be zlib-wrapped, but some servers send raw deflate.
  deflate: { headBytes: 2, create: (head) => (isZlibHeader(head) ? zlib.createInflate() : zlib.createInflateRaw()) },
  br: { headBytes: 0, create: () => zlib.createBrotliDecompress() },
};

/**
 * A decoder for the response's content-encoding, or null when the body is not encoded
 * (absent, empty or identity). Unknown or stacked encodings give a decoder that emits nothing and
 * reports 'unsupported_encoding'. onData must not throw: it runs inside zlib's stream callbacks.
 */
export function createContentDecoder(
  encoding: string | undefined,
  onData: (chunk: Uint8Array) => void,
  opts: { maxOutputBytes?: number } = {},
): ContentDecoder | null {
  const codings = (encoding ?? '')
    .toLowerCase()
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return null;
  const factory = codings.length === 1 ? FACTORIES[codings[0] as string] : undefined;
  if (!factory) return UNSUPPORTED;
  return new StreamContentDecoder(factory.headBytes, factory.create, onData, opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES);
}

const UNSUPPORTED: ContentDecoder = {
  push: () => {},
  end: () => Promise.resolve({ error: 'unsupported_encoding' }),
};

class StreamContentDecoder implements ContentDecoder {
  private stream: Transform | null = null;
  private done: Promise<void> = Promise.resolve();
  /** Input held until `headBytes` bytes are known (the deflate variant is chosen from them). */
  private head: Uint8Array[] = [];
  private headLen = 0;
  private outBytes = 0;
  private error: ContentDecodeError | null = null;
  private ended = false;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;

  constructor(
    private readonly headBytes: number,
    private readonly create: Factory,
    private readonly onData: (chunk: Uint8Array) => void,
    private readonly maxOutputBytes: number,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.ended || this.error !== null || chunk.length === 0) return;
    if (this.stream) {
      this.queue(chunk);
      return;
    }
    this.head.push(new Uint8Array(chunk));
    this.headLen += chunk.length;
    if (this.headLen >= this.headBytes) this.start();
  }

  async end(): Promise<{ error: ContentDecodeError | null }> {
    if (!this.ended) {
      this.ended = true;
      // An empty body is valid whatever the header says (e.g. 204, HEAD).
      if (!this.stream && this.headLen > 0) this.start();
      this.flush();
      if (this.stream && !this.stream.destroyed) this.stream.end();
    }
    await this.done;
    return { error: this.error };
  }

  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    const s = this.create(head);
    this.stream = s;
    this.done = new Promise((resolve) => {
      s.on('data', (d: Buffer) => this.output(d));
      // 'on', not 'once': a second 'error' without a listener would crash the process.
      s.on('error', () => {
        this.error ??= 'corrupt_encoding';
        resolve();
      });
      s.once('end', resolve);
      s.once('close', resolve);
    });
    s.write(head);
  }

  private queue(chunk: Uint8Array): void {
    if (this.pendingBytes === 0 && chunk.length >= BATCH_BYTES) {
      if (!this.stream?.destroyed) this.stream?.write(chunk);
      return;
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? (this.pending[0] as Uint8Array) : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.stream && !this.stream.destroyed) this.stream.write(data);
  }

  private output(d: Buffer): void {
    if (this.error !== null) return;
    const room = this.maxOutputBytes - this.outBytes;
    if (d.length <= room) {
      this.outBytes += d.length;
      this.onData(d);
      return;
    }
    if (room > 0) this.onData(d.subarray(0, room));
    this.outBytes = this.maxOutputBytes;
    this.error = 'too_large';
    this.stream?.destroy();
  }
}
