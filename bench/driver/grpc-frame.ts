/**
 * gRPC length-prefixed message framing (5-byte prefix: compressed flag + big-endian length), done by
 * hand so the load driver can speak gRPC over raw `node:http2` without a gRPC client library.
 */

/** One uncompressed gRPC message frame around an encoded protobuf message. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Reassembles messages from DATA chunks: HTTP/2 may split a message across chunks or pack several
 * into one. Compressed frames are rejected: the driver never negotiates compression.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the message being assembled, once its prefix has arrived. */
  private need: number | null = null;

  /** Feeds one chunk; returns the messages it completed, in order. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.need === null) {
        if (this.pendingBytes < 5) break;
        const head = this.take(5);
        if (head[0] !== 0) throw new Error(`compressed gRPC frame (flag ${head[0]}) not supported`);
        this.need = head.readUInt32BE(1);
      }
      if (this.pendingBytes < this.need) break;
      out.push(this.take(this.need));
      this.need = null;
    }
    return out;
  }

  /** Removes and returns the first n pending bytes (copying only when they span chunks). */
  private take(n: number): Buffer {
    const first = this.pending[0];
    let all: Buffer;
    if (first !== undefined && first.length >= n) all = first;
    else {
      all = Buffer.concat(this.pending);
      this.pending = [all];
    }
    const rest = all.subarray(n);
    if (rest.length > 0) this.pending[0] = rest;
    else this.pending.shift();
    this.pendingBytes -= n;
    return all.subarray(0, n);
  }
}
