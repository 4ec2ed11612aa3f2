/**
 * The gRPC server: ExternalProcessor/Process plus grpc.health.v1.Health, on TCP (optionally TLS or
 * mTLS) or a Unix socket, with message limits that fit Envoy's large BUFFERED bodies and a graceful
 * shutdown that lets in-flight exchanges finish.
 */
import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { DEFAULT_MAX_CONCURRENT_STREAMS, type TlsConfig } from '../config/types.js';
import { extProcServiceDefinition } from './protocol.js';
import { SessionWatcher, type SessionObserver } from './sessions.js';
import { ProcessStream, type ProcessCall, type StreamOptions } from './stream.js';

export const EXT_PROC_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';

export interface ExtProcServerOptions {
  address: string;
  tls?: TlsConfig | undefined;
  maxReceiveMessageBytes: number;
  /** Open streams served at once (default DEFAULT_MAX_CONCURRENT_STREAMS); beyond it a new stream is ended at once with status OK. */
  maxConcurrentStreams?: number;
  /** Called for each stream refused because maxConcurrentStreams were open. */
  streamRefused?: () => void;
  /** HTTP/2 session health (opened, closed by reason, streams reset by the peer). */
  sessions?: SessionObserver | undefined;
  /** Retire a connection before Envoy's resets exhaust Node's rapid-reset allowance (default true). */
  rotateConnections?: boolean;
  /** Called once at start when grpc-js hides its HTTP/2 servers (no session metrics, no rotation). */
  sessionsUnavailable?: () => void;
  stream: StreamOptions;
}

export class ExtProcServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [EXT_PROC_SERVICE]: 'NOT_SERVING' });
  private readonly streams = new Set<ProcessStream>();
  private boundAddress: string | null = null;
  private readonly sessions: SessionWatcher;

  constructor(private readonly opts: ExtProcServerOptions) {
    this.sessions = new SessionWatcher({ observer: opts.sessions, rotate: opts.rotateConnections ?? true });
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxReceiveMessageBytes,
      // Answers can carry a rewritten request body as large as the request itself.
      'grpc.max_send_message_length': opts.maxReceiveMessageBytes,
      // Envoy keeps one long-lived HTTP/2 connection; keepalive pings detect dead peers.
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 1,
      // grpc-js' own default, stated: bodies are bounded per message (max_receive_message_bytes)
      // and per stream count, and Node refuses new streams once a session is over this limit.
      'grpc-node.max_session_memory': Number.MAX_SAFE_INTEGER,
      // Nothing serves channelz here; its per-call bookkeeping would be work for nobody.
      'grpc.enable_channelz': 0,
    });
    this.server.addService(extProcServiceDefinition, {
      Process: (call: ProcessCall) => this.accept(call),
    });
    this.health.addToServer(this.server);
  }

  /** Number of ext_proc streams currently open (for metrics and leak checks). */
  get activeStreams(): number {
    return this.streams.size;
  }

  private accept(call: ProcessCall): void {
    if (this.streams.size >= (this.opts.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS)) {
      this.refuse(call);
      return;
    }
    const observer = this.opts.stream.observer;
    const stream: ProcessStream = new ProcessStream(call, {
      ...this.opts.stream,
      observer: {
        ...observer,
        streamClosed: () => {
          this.streams.delete(stream);
          observer.streamClosed();
        },
      },
    });
    this.streams.add(stream);
  }

  /**
   * Over the cap no per-stream state is created: status OK tells Envoy to continue this request
   * unprocessed (whatever failure_mode_allow says), and nothing the peer sends is kept.
   */
  private refuse(call: ProcessCall): void {
    this.opts.streamRefused?.();
    call.on('error', () => {});
    call.resume();
    call.end();
  }

  /** Binds and starts serving; resolves with the bound address (the real port when 0 was asked). */
  async start(): Promise<string> {
    const creds = this.credentials();
    const target = this.opts.address;
    if (target.startsWith('unix:')) await removeStaleSocket(unixPath(target));
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(target, creds, (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.boundAddress = target.startsWith('unix:') ? target : replacePort(target, port);
    if (!this.sessions.attach(this.server)) this.opts.sessionsUnavailable?.();
    this.health.setStatus('', 'SERVING');
    this.health.setStatus(EXT_PROC_SERVICE, 'SERVING');
    return this.boundAddress;
  }

  get address(): string | null {
    return this.boundAddress;
  }

  private credentials(): grpc.ServerCredentials {
    const tls = this.opts.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    const ca = tls.ca_file ? readFileSync(tls.ca_file) : null;
    return grpc.ServerCredentials.createSsl(
      ca,
      [{ private_key: readFileSync(tls.key_file), cert_chain: readFileSync(tls.cert_file) }],
      tls.require_client_cert,
    );
  }

  /**
   * Stops accepting new streams, lets open ones finish for up to `graceMs`, then ends the rest with
   * status OK (Envoy continues those requests unprocessed) and closes the server.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(EXT_PROC_SERVICE, 'NOT_SERVING');
    this.sessions.shutdown();
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([drained.then(() => 'drained' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      for (const s of this.streams) s.finishFromServer();
      await Promise.race([drained, new Promise((r) => setTimeout(r, 500))]);
      this.server.forceShutdown();
    }
  }
}

function unixPath(address: string): string {
  return address.replace(/^unix:(\/\/)?/, '');
}

/**
 * A socket file left behind by a killed process (a restarted container sharing an emptyDir) makes
 * bind fail with EADDRINUSE. Remove it only when nothing answers on it: a live server keeps its socket.
 */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) return;
  } catch {
    return;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!alive) unlinkSync(path);
}

function replacePort(address: string, port: number): string {
  const i = address.lastIndexOf(':');
  return i < 0 ? `${address}:${port}` : `${address.slice(0, i)}:${port}`;
}
