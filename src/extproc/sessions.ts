/**
 * HTTP/2 session health for the ext_proc server: counts sessions and how they end, counts streams
 * the peer reset before the server finished them, sets the flow-control windows, and retires a
 * connection before Envoy's stream resets can exhaust Node's rapid-reset allowance on it.
 *
 * Why rotation: Envoy ends every side stream with END_STREAM + RST_STREAM unless the graceful-close
 * runtime key is on (spec §1.6), and nghttp2 (inside Node, not configurable through grpc-js) answers
 * more than a burst of 1,000 resets, then 33 per second, with GOAWAY(INTERNAL_ERROR), failing every
 * exchange in flight on that connection. Each stream is counted as a reset to come; before the
 * allowance can run out the server sends a graceful GOAWAY, so Envoy moves new streams to a fresh
 * connection while the old one finishes its own.
 *
 * grpc-js does not expose its HTTP/2 servers: they are read from its private `http2Servers` map
 * (pinned grpc-js; `watchSessions` reports false when that map is gone so the caller can say so).
 */
import http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/** nghttp2's stream-reset rate limit (nghttp2 >= 1.57, as in every supported Node). */
export const NGHTTP2_RESET_BURST = 1000;
export const NGHTTP2_RESETS_PER_SECOND = 33;
/**
 * Rotate once the worst case (every stream reset) leaves fewer resets than this: room for the
 * streams already open and those Envoy starts before it reads the GOAWAY.
 */
export const ROTATE_BELOW = 200;
/** How long a rotated session waits for the PING that proves Envoy read the first GOAWAY. */
const ROTATION_PING_TIMEOUT_MS = 1000;
/** HTTP/2 windows the server grants: Envoy may send this much before tokenwarden has read it. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** GOAWAY's "no stream refused yet" last-stream id (RFC 9113 §6.8 graceful shutdown). */
const ALL_STREAMS = 2 ** 31 - 1;

export type SessionCloseReason =
  | 'goaway_sent_rotation'
  | 'goaway_sent_shutdown'
  | 'goaway_received'
  | 'error'
  | 'connection_lost'
  | 'connection_closed';

export interface SessionObserver {
  opened(): void;
  /** `streamsInFlight` > 0 means exchanges on this connection ended without their answers. */
  closed(reason: SessionCloseReason, streamsInFlight: number): void;
  /** A stream the peer reset (or lost with its connection) before the server ended it. */
  streamResetByPeer(): void;
}

/**
 * nghttp2's token bucket, drained by one per stream instead of one per reset: an upper bound on what
 * the peer can have used.
 */
export class ResetAllowance {
  private tokens = NGHTTP2_RESET_BURST;
  private last: number;

  constructor(nowMs: number) {
    this.last = nowMs;
  }

  /** Takes one stream's worth; returns what is left. */
  take(nowMs: number): number {
    const refill = Math.floor(((nowMs - this.last) * NGHTTP2_RESETS_PER_SECOND) / 1000);
    if (refill > 0) {
      this.tokens = Math.min(NGHTTP2_RESET_BURST, this.tokens + refill);
      this.last += (refill * 1000) / NGHTTP2_RESETS_PER_SECOND;
    }
    this.tokens--;
    return this.tokens;
  }
}

export interface WatchOptions {
  /** Default: nothing is reported (rotation and windows still apply). */
  observer?: SessionObserver | undefined;
  rotate: boolean;
  now?: () => number;
}

interface SessionState {
  open: number;
  goaway: 'goaway_sent_rotation' | 'goaway_sent_shutdown' | null;
  goawayReceived: boolean;
  error: boolean;
}

const IGNORE: SessionObserver = { opened() {}, closed() {}, streamResetByPeer() {} };

/** Watches the sessions of a bound grpc-js server. */
export class SessionWatcher {
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionState>();
  private shuttingDown = false;
  private readonly observer: SessionObserver;

  constructor(private readonly opts: WatchOptions) {
    this.observer = opts.observer ?? IGNORE;
  }

  /** Attaches to the server's HTTP/2 listeners; false when grpc-js no longer exposes them. */
  attach(server: grpc.Server): boolean {
    const map = (server as unknown as { http2Servers?: unknown }).http2Servers;
    if (!(map instanceof Map)) return false;
    let any = false;
    for (const h2 of map.keys() as IterableIterator<http2.Http2Server | http2.Http2SecureServer>) {
      if (typeof h2?.on !== 'function') continue;
      h2.updateSettings({ initialWindowSize: STREAM_WINDOW_BYTES });
      h2.on('session', (s: http2.ServerHttp2Session) => this.onSession(s));
      any = true;
    }
    return any;
  }

  /** Marks the GOAWAYs grpc-js sends on shutdown as such. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const state of this.sessions.values()) state.goaway ??= 'goaway_sent_shutdown';
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const state: SessionState = { open: 0, goaway: this.shuttingDown ? 'goaway_sent_shutdown' : null, goawayReceived: false, error: false };
    this.sessions.set(session, state);
    this.observer.opened();
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    } catch {
      // A session destroyed before it started: nothing to size.
    }
    const now = this.opts.now ?? Date.now;
    const allowance = new ResetAllowance(now());
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      state.open++;
      stream.once('close', () => {
        state.open--;
        // Reset before the server sent its trailers: by the peer, or lost with the connection.
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && stream.sentTrailers === undefined) this.observer.streamResetByPeer();
      });
      if (this.opts.rotate && state.goaway === null && allowance.take(now()) < ROTATE_BELOW) this.rotate(session, state);
    });
    session.on('goaway', () => (state.goawayReceived = true));
    session.on('error', () => (state.error = true));
    // Streams are destroyed before the session reports its close: count what was open when the
    // connection itself went away.
    let openAtSocketClose = -1;
    session.socket?.once('close', () => (openAtSocketClose = state.open));
    session.once('close', () => {
      this.sessions.delete(session);
      const open = Math.max(openAtSocketClose, state.open, 0);
      this.observer.closed(closeReason(state, open), open);
    });
  }

  /**
   * Graceful shutdown of one connection (RFC 9113 §6.8): GOAWAY announcing no refusal, a PING whose
   * answer proves Envoy has read it, then the final GOAWAY; open streams finish normally.
   */
  private rotate(session: http2.ServerHttp2Session, state: SessionState): void {
    state.goaway = 'goaway_sent_rotation';
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, ALL_STREAMS);
    } catch {
      return;
    }
    const finish = (): void => {
      clearTimeout(timer);
      if (!session.closed && !session.destroyed) session.close();
    };
    const timer = setTimeout(finish, ROTATION_PING_TIMEOUT_MS);
    timer.unref();
    try {
      if (!session.ping(finish)) finish();
    } catch {
      finish();
    }
  }
}

function closeReason(state: SessionState, open: number): SessionCloseReason {
  if (state.goaway) return state.goaway;
  if (state.goawayReceived) return 'goaway_received';
  if (state.error) return 'error';
  return open > 0 ? 'connection_lost' : 'connection_closed';
}
