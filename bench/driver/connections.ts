/**
 * The driver's HTTP/2 connections, kept the way Envoy keeps those of a gRPC cluster: a fixed number
 * (one per worker thread), used in turn. A connection that received a GOAWAY or closed takes no new
 * stream; the streams already on it finish (a graceful GOAWAY) or fail (any other code), and a new
 * connection is opened in its place when the slot is next used. Counts the connections opened, the
 * sessions that received a GOAWAY (by error code) and those lost without one.
 */
import http2 from 'node:http2';

/** HTTP/2 error codes (RFC 9113 §7), by value. */
const ERROR_CODES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

export function errorCodeName(code: number): string {
  return ERROR_CODES[code] ?? `0x${code.toString(16)}`;
}

export interface SessionStats {
  /** Connections used: those open when the counting started, plus the replacements opened since. */
  opened: number;
  /** Sessions that received a GOAWAY, by its error code (a session counts once per code). */
  goaways: Record<string, number>;
  /** Sessions that closed without a GOAWAY while in use (socket lost, session error). */
  lost: number;
  /**
   * Streams refused unprocessed (REFUSED_STREAM) by a session going away and replayed on another
   * connection: Node's HTTP/2 refuses the streams it had not sent yet when a GOAWAY arrives.
   */
  refusedReplayed: number;
}

interface Slot {
  session: http2.ClientHttp2Session | null;
  opening: Promise<http2.ClientHttp2Session> | null;
}

export class Connections {
  private readonly slots: Slot[];
  private next = 0;
  /** Every session not yet closed, the retired ones finishing their streams included. */
  private readonly live = new Set<http2.ClientHttp2Session>();
  private closing = false;
  private opened = 0;
  private lost = 0;
  private refused = 0;
  private readonly goaways = new Map<string, number>();

  constructor(
    private readonly target: string,
    count: number,
  ) {
    this.slots = Array.from({ length: Math.max(1, count) }, () => ({ session: null, opening: null }));
  }

  /** Opens every connection; rejects when the target cannot be reached. */
  async open(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.ensure(slot)));
  }

  /** The next connection in turn, replaced first if the server sent it away. */
  get(): Promise<http2.ClientHttp2Session> {
    const slot = this.slots[this.next++ % this.slots.length]!;
    return slot.session ? Promise.resolve(slot.session) : this.ensure(slot);
  }

  /** Counts from now on (the measured run after the warm-up). */
  resetStats(): void {
    this.opened = this.slots.filter((slot) => slot.session !== null).length;
    this.lost = 0;
    this.refused = 0;
    this.goaways.clear();
  }

  stats(): SessionStats {
    return { opened: this.opened, goaways: Object.fromEntries(this.goaways), lost: this.lost, refusedReplayed: this.refused };
  }

  refusedReplayed(): void {
    this.refused++;
  }

  /** Closes every session, waiting for the streams still open on them. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.live].map((s) => new Promise<void>((resolve) => (s.closed ? s.once('close', () => resolve()) : s.close(() => resolve())))));
  }

  private ensure(slot: Slot): Promise<http2.ClientHttp2Session> {
    if (slot.session) return Promise.resolve(slot.session);
    slot.opening ??= connect(this.target).then(
      (s) => {
        slot.opening = null;
        this.watch(slot, s);
        return s;
      },
      (e: unknown) => {
        slot.opening = null;
        throw e;
      },
    );
    return slot.opening;
  }

  private watch(slot: Slot, s: http2.ClientHttp2Session): void {
    this.opened++;
    slot.session = s;
    this.live.add(s);
    const codes = new Set<number>();
    const retire = (): void => {
      if (slot.session === s) slot.session = null;
    };
    // Node closes the session itself on a GOAWAY: gracefully for NO_ERROR (open streams finish),
    // at once with an error otherwise (open streams fail).
    s.on('goaway', (code: number) => {
      retire();
      if (codes.has(code)) return;
      codes.add(code);
      const name = errorCodeName(code);
      this.goaways.set(name, (this.goaways.get(name) ?? 0) + 1);
    });
    s.once('close', () => {
      retire();
      this.live.delete(s);
      if (codes.size === 0 && !this.closing) this.lost++;
    });
  }
}

function connect(target: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Large windows and session memory: 1 MB request bodies from many streams must not stall on
    // flow control or trip nghttp2's memory cap on the driver's side.
    const s = http2.connect(`http://${target}`, { maxSessionMemory: 512, settings: { initialWindowSize: 16 * 1024 * 1024 } });
    s.once('connect', () => {
      s.setLocalWindowSize(64 * 1024 * 1024);
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}
