/**
 * A TCP proxy for fault tests (in front of Redis). Modes, switchable at any time:
 *   pass   forward both ways
 *   delay  requests go through at once (so Redis runs them) but every reply is held `delayMs`
 *          after it arrived (a slow link: latency, not a throughput limit)
 *   stall  nothing moves either way; what arrives is queued and sent on, in order, once the mode
 *          changes (a hung peer or network)
 *   cut    every open connection is closed and new ones are refused (kill the proxy's side)
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'delay' | 'stall' | 'cut';

export class TcpFaultProxy {
  private current: ProxyMode = 'pass';
  /** Reply delay of `delay` mode, in ms. */
  delayMs: number;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server = createServer((client) => this.accept(client));
  private released: (() => void)[] = [];
  private waiting = 0;

  constructor(
    private readonly targetPort: number,
    opts: { delayMs?: number } = {},
  ) {
    this.delayMs = opts.delayMs ?? 100;
  }

  /** Listens on a free loopback port; resolves with it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  get mode(): ProxyMode {
    return this.current;
  }

  set mode(mode: ProxyMode) {
    this.current = mode;
    if (mode === 'cut') for (const s of this.sockets) s.destroy();
    if (mode !== 'stall') for (const release of this.released.splice(0)) release();
  }

  /** Shorthand for `mode = 'cut'`. */
  cut(): void {
    this.mode = 'cut';
  }

  /** Chunks received but not yet forwarded (held by a stall or a delay). */
  get queued(): number {
    return this.waiting;
  }

  async close(): Promise<void> {
    this.mode = 'cut';
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    if (this.current === 'cut') {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    this.pipe(client, upstream, false);
    this.pipe(upstream, client, true);
  }

  /** Forwards `from` to `to`; chunks stay in order, each one waiting for the one before it. */
  private pipe(from: Socket, to: Socket, isReply: boolean): void {
    let chain = Promise.resolve();
    from.on('data', (d: Buffer) => {
      const arrived = Date.now();
      this.waiting += 1;
      chain = chain
        .then(() => this.gate(isReply, arrived))
        .then(() => {
          this.waiting -= 1;
          if (!to.destroyed) to.write(d);
        });
    });
  }

  private async gate(isReply: boolean, arrived: number): Promise<void> {
    while (this.current === 'stall') await new Promise<void>((resolve) => this.released.push(resolve));
    const wait = arrived + this.delayMs - Date.now();
    if (isReply && this.current === 'delay' && wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}
