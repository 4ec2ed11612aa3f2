/**
 * The gRPC side stream of one HTTP request: a real @grpc/grpc-js bidi call to the processor, closed
 * the way Envoy closes it (spec §1.6): half-close then cancel at once, or half-close and wait for
 * the server's trailers up to a limit before cancelling.
 */
import * as grpc from '@grpc/grpc-js';
import {
  PROCESS_PATH,
  decodeResponse,
  encodeRequest,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';

export interface StreamEnd {
  /** who ended the RPC: the server's status arrived first, or Envoy cancelled it */
  closedBy: 'server' | 'envoy';
  /** Envoy sent END_STREAM on its side */
  halfClosed: boolean;
  /** Envoy reset the stream (RST_STREAM/CANCEL) */
  cancelled: boolean;
  /** final status as grpc-js reports it (CANCELLED when Envoy reset it) */
  code: number;
  details: string;
}

export interface SideStreamHandler {
  onMessage(m: WireProcessingResponse): void;
  /** The server ended the RPC (not called for a close Envoy initiated). */
  onServerClose(code: number, details: string): void;
}

export class SideStream {
  private readonly call: grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse>;
  private closing = false;
  private halfClosed = false;
  private cancelled = false;
  private cancelTimer: NodeJS.Timeout | undefined;
  private endResolve!: (e: StreamEnd) => void;
  /** Resolves once the RPC is over, whoever ended it. */
  readonly ended: Promise<StreamEnd>;
  private finished = false;

  constructor(client: grpc.Client, handler: SideStreamHandler, metadata?: Record<string, string>) {
    this.ended = new Promise((resolve) => (this.endResolve = resolve));
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
    this.call = client.makeBidiStreamRequest(
      PROCESS_PATH,
      (m: WireProcessingRequest) => encodeRequest(m),
      (b: Buffer) => decodeResponse(b),
      md,
    );
    this.call.on('data', (m: WireProcessingResponse) => {
      if (!this.closing) handler.onMessage(m);
    });
    // Errors also arrive as 'status'; the listener only keeps them from being thrown.
    this.call.on('error', () => undefined);
    this.call.on('status', (s: grpc.StatusObject) => {
      this.finished = true;
      if (this.cancelTimer) clearTimeout(this.cancelTimer);
      const byServer = !this.cancelled;
      this.endResolve({
        closedBy: byServer ? 'server' : 'envoy',
        halfClosed: this.halfClosed,
        cancelled: this.cancelled,
        code: s.code,
        details: s.details,
      });
      if (!this.closing) handler.onServerClose(s.code, s.details);
    });
  }

  get isFinished(): boolean {
    return this.finished;
  }

  write(m: WireProcessingRequest): void {
    if (!this.closing && !this.finished) this.call.write(m);
  }

  /** Envoy's default close: END_STREAM immediately followed by a reset. */
  closeHard(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.finished) return;
    this.halfClosed = true;
    this.call.end();
    this.cancelled = true;
    this.call.cancel();
  }

  /** Graceful close: END_STREAM, then reset only if the server has not finished after `waitMs`. */
  closeGraceful(waitMs: number): void {
    if (this.closing) return;
    this.closing = true;
    if (this.finished) return;
    this.halfClosed = true;
    this.call.end();
    this.cancelTimer = setTimeout(() => {
      if (this.finished) return;
      this.cancelled = true;
      this.call.cancel();
    }, waitMs);
  }
}
