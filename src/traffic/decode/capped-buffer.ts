const EMPTY = new Uint8Array(0);
/** A buffer this large is released on clear() so that one big item does not pin memory for a stream. */
const RELEASE_ABOVE = 64 * 1024;

/**
 * Growable byte buffer that never holds more than `cap` bytes. Bytes appended past the cap are
 * discarded and `overflowed` is set, so callers can bound memory however long the input.
 */
export class CappedBuffer {
  private buf: Uint8Array = EMPTY;
  private len = 0;
  private lost = false;

  constructor(private readonly cap: number) {}

  get length(): number {
    return this.len;
  }

  /** Some appended bytes were discarded because the cap was reached. */
  get overflowed(): boolean {
    return this.lost;
  }

  /** Appends src[start, end); whatever does not fit under the cap is dropped. */
  append(src: Uint8Array, start: number, end: number): void {
    let n = end - start;
    if (n <= 0) return;
    const room = this.cap - this.len;
    if (n > room) {
      this.lost = true;
      n = room;
      if (n <= 0) return;
    }
    this.reserve(this.len + n);
    this.buf.set(src.subarray(start, start + n), this.len);
    this.len += n;
  }

  /** Grows the storage to hold `size` bytes (never beyond the cap). */
  reserve(size: number): void {
    const want = Math.min(size, this.cap);
    if (want <= this.buf.length) return;
    const grown = new Uint8Array(Math.min(this.cap, Math.max(want, 256, this.buf.length * 2)));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** The held bytes; valid until the next append() or clear(). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  clear(): void {
    this.len = 0;
    this.lost = false;
    if (this.buf.length > RELEASE_ABOVE) this.buf = EMPTY;
  }
}
