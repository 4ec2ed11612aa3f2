/**
 * A tiny ext_proc server for tests: each Process stream runs a script that reads Envoy's messages
 * and answers, delays, misbehaves or ends the RPC as the test requires. Everything the stream saw is
 * recorded (messages, Envoy's half-close and reset, the server's own finish).
 */
import * as grpc from '@grpc/grpc-js';
import {
  extProcServiceDefinition,
  requestKind,
  type RequestKind,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';

export type StreamEvent =
  | { type: 'message'; kind: RequestKind | undefined }
  | { type: 'answer'; message: WireProcessingResponse }
  | { type: 'end' }
  | { type: 'cancelled' }
  | { type: 'finished'; code: number };

export class ScriptedStream {
  readonly received: WireProcessingRequest[] = [];
  readonly events: StreamEvent[] = [];
  private readonly queue: WireProcessingRequest[] = [];
  private waiter: ((m: WireProcessingRequest | null) => void) | undefined;
  private ended = false;
  private over = false;
  private resolveClosed!: () => void;
  /** resolves when the RPC is over: cancelled by Envoy or finished by the script */
  readonly closed = new Promise<void>((r) => (this.resolveClosed = r));

  constructor(private readonly call: grpc.ServerDuplexStream<WireProcessingRequest, WireProcessingResponse>) {
    call.on('data', (m: WireProcessingRequest) => {
      this.received.push(m);
      this.events.push({ type: 'message', kind: requestKind(m) });
      if (this.waiter) this.take(m);
      else this.queue.push(m);
    });
    call.on('end', () => {
      this.ended = true;
      this.events.push({ type: 'end' });
      if (this.waiter) this.take(null);
    });
    call.on('cancelled', () => {
      this.events.push({ type: 'cancelled' });
      this.markOver();
      if (this.waiter) this.take(null);
    });
    call.on('error', () => undefined);
  }

  private take(m: WireProcessingRequest | null): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.(m);
  }

  private markOver(): void {
    this.over = true;
    this.resolveClosed();
  }

  /** The next message from Envoy, or null once Envoy half-closed or reset the stream. */
  next(): Promise<WireProcessingRequest | null> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended || this.over) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Reads messages until one of `kind` arrives (null if the stream ends first). */
  async nextOf(kind: RequestKind): Promise<WireProcessingRequest | null> {
    for (;;) {
      const m = await this.next();
      if (!m || requestKind(m) === kind) return m;
    }
  }

  send(r: WireProcessingResponse): void {
    if (this.over) return;
    this.events.push({ type: 'answer', message: r });
    this.call.write(r);
  }

  /** Ends the RPC: OK, or an error status (Envoy sees a gRPC error). */
  finish(code: grpc.status = grpc.status.OK, details = ''): void {
    if (this.over) return;
    this.events.push({ type: 'finished', code });
    this.markOver();
    if (code === grpc.status.OK) this.call.end();
    else this.call.emit('error', { code, details });
  }
}

export type Script = (s: ScriptedStream) => Promise<void> | void;

export class ScriptedServer {
  readonly streams: ScriptedStream[] = [];
  /** the script run for every new stream; tests replace it as they go */
  script: Script;
  readonly errors: string[] = [];

  private constructor(
    private readonly server: grpc.Server,
    readonly target: string,
    script: Script,
  ) {
    this.script = script;
  }

  /** Starts on 127.0.0.1 with a free port, or on `address` (e.g. 'unix:/tmp/x.sock'). */
  static async start(script: Script, address = '127.0.0.1:0'): Promise<ScriptedServer> {
    const server = new grpc.Server();
    let self: ScriptedServer | undefined;
    server.addService(extProcServiceDefinition, {
      Process: (call: grpc.ServerDuplexStream<WireProcessingRequest, WireProcessingResponse>) => {
        const s = new ScriptedStream(call);
        self!.streams.push(s);
        Promise.resolve()
          .then(() => self!.script(s))
          .catch((e: unknown) => {
            self!.errors.push(String(e));
            s.finish(grpc.status.INTERNAL, 'script failed');
          });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const target = address.startsWith('unix:') ? address : `127.0.0.1:${port}`;
    self = new ScriptedServer(server, target, script);
    return self;
  }

  /** The most recent stream. */
  get last(): ScriptedStream | undefined {
    return this.streams[this.streams.length - 1];
  }

  /** Stops at once, cancelling any stream still open. */
  stop(): void {
    this.server.forceShutdown();
  }
}
