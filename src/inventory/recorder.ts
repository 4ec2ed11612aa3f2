/**
 * The Recorder: the only writer of the inventory. It aggregates ExchangeRecords by inventory key in
 * memory and applies them to the store in batches, so the gRPC path never waits for the store.
 *
 * Delivery guarantee
 * - record() is synchronous and O(1) (amortised): it never throws and never touches the store.
 * - Pending deltas (one per key) are sealed into a batch with a fresh id when `flushMaxDeltas` keys
 *   are pending or at the next flush (every `flushIntervalMs`, or flush()). Each batch is ONE
 *   store.apply(); batches are applied oldest first, one at a time.
 * - A batch whose apply fails stays in the retry buffer WITH ITS ID and is retried on the next flush.
 *   The store counts a batch id once, so a batch that was applied before the error (a timeout after
 *   Redis ran it), in whole or in some inventory shards only, is not counted twice. New records keep
 *   aggregating into new batches meanwhile.
 * - Nothing is lost while the retry buffer has room. The buffer holds at most `retryBufferMaxDeltas`
 *   deltas besides the batch being sent; beyond it the OLDEST batches are dropped and counted
 *   (`droppedRequests`, events.dropped) for the caller to log.
 * - stop() flushes and retries until its deadline; what is still unapplied then is dropped and
 *   counted, as is anything recorded after stop().
 * - An applied batch is applied once more, with its id, `reapplyAfterMs` (5 s) later: Redis
 *   replicates asynchronously, so a master can acknowledge a batch and then lose it in a failover (it
 *   crashes before its replica has the batch, or a Sentinel failover promotes the replica while
 *   clients still write to the old master: about a second, until the sentinels announce the switch).
 *   Once the client is on the new master, the second apply counts the batch if it is missing there
 *   and changes nothing if it is not (README "Redis failover and resharding"). A second apply that
 *   fails is retried like a batch, without holding back new batches' order (they are independent).
 *
 * What can be lost: what is still in memory when the process is killed without stop() (SIGKILL,
 * OOM): at most one flush interval's worth of records plus the retry buffer; batches dropped
 * when the buffer overflows during a long outage or left over at stop()'s deadline; and a batch that
 * a failover loses when this process does not re-apply it (killed, or stopped, within
 * `reapplyAfterMs` of applying it; or the client not yet moved to the new master by then). Memory
 * held: at most `flushMaxDeltas` pending deltas plus the retry buffer plus the batch being sent, plus
 * the applied batches awaiting their second apply (at most `retryBufferMaxDeltas` deltas: the oldest
 * are let go first, which gives up only their failover cover).
 *
 * `droppedRequests` is exact when the dropped batches' earlier attempts failed without reaching the
 * store (store down, connection refused). A dropped batch whose earlier attempt failed ambiguously
 * (it timed out after the store applied it) may have been counted after all, so in general
 * `droppedRequests` is an upper bound on the requests lost.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ExchangeRecord } from '../domain.js';
import { deltaOf, mergeDelta } from './aggregate.js';
import { recordId } from './rollup.js';
import type { InventoryBatch, InventoryDelta, InventoryStore } from './types.js';

export interface RecorderOptions {
  flushIntervalMs: number;
  /** Seal a batch as soon as this many keys are pending. At most retryBufferMaxDeltas. */
  flushMaxDeltas: number;
  retryBufferMaxDeltas: number;
  /**
   * An applied batch is applied once more this long after (default 5000 ms; 0: never), so that a
   * failover that loses it does not lose it for good. Batch ids make the second apply a no-op when
   * the batch is there.
   */
  reapplyAfterMs?: number;
  /** Monotonic milliseconds, for flush durations and reapplyAfterMs (default performance.now). */
  now?: () => number;
  newBatchId?: () => string;
}

/** See RecorderOptions.reapplyAfterMs: well past the ~1 s a Sentinel failover writes to the old master. */
export const REAPPLY_AFTER_MS = 5_000;

export interface RecorderEvents {
  flushed(batch: { deltas: number; seconds: number }): void;
  flushFailed(err: unknown, pendingDeltas: number): void;
  dropped(deltas: number, requests: number): void;
}

interface Sealed {
  batch: InventoryBatch;
  requests: number;
}

/** An applied batch waiting for its second apply. */
interface Applied {
  batch: InventoryBatch;
  /** now() from which it is due. */
  due: number;
}

const STOP_RETRY_MIN_MS = 50;
const STOP_RETRY_MAX_MS = 1_000;

export class Recorder {
  private pending = new Map<string, InventoryDelta>();
  private pendingRequests = 0;
  /** Sealed batches not yet applied, oldest first (the first may be in flight). */
  private readonly queue: Sealed[] = [];
  private queuedDeltas = 0;
  private sending: Sealed | null = null;
  /** Applied batches awaiting their second apply, oldest first (so by due time). */
  private readonly applied: Applied[] = [];
  private appliedDeltas = 0;
  private readonly reapplyAfterMs: number;
  private dropped = 0;
  private flushRequested = false;
  private draining: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly newBatchId: () => string;

  constructor(
    private readonly store: InventoryStore,
    private readonly opts: RecorderOptions,
    private readonly events: Partial<RecorderEvents> = {},
  ) {
    for (const k of ['flushIntervalMs', 'flushMaxDeltas', 'retryBufferMaxDeltas'] as const) {
      if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) throw new RangeError(`${k} must be a positive integer`);
    }
    if (opts.flushMaxDeltas > opts.retryBufferMaxDeltas) throw new RangeError('flushMaxDeltas must not exceed retryBufferMaxDeltas');
    this.reapplyAfterMs = opts.reapplyAfterMs ?? REAPPLY_AFTER_MS;
    if (!Number.isSafeInteger(this.reapplyAfterMs) || this.reapplyAfterMs < 0) throw new RangeError('reapplyAfterMs must be a non-negative integer');
    this.now = opts.now ?? (() => performance.now());
    this.newBatchId = opts.newBatchId ?? randomUUID;
  }

  /** Deltas not yet applied: pending, in the retry buffer, or being sent. */
  get pendingDeltas(): number {
    return this.pending.size + this.queuedDeltas;
  }

  /** Requests in batches dropped so far (buffer overflow, stop() deadline, records after stop()). */
  get droppedRequests(): number {
    return this.dropped;
  }

  record(r: ExchangeRecord): void {
    try {
      if (this.stopped) {
        this.drop(1, 1);
        return;
      }
      const d = deltaOf(r);
      const k = recordId(d.key);
      const existing = this.pending.get(k);
      if (existing) mergeDelta(existing, d);
      else this.pending.set(k, d);
      this.pendingRequests += 1;
      if (this.pending.size >= this.opts.flushMaxDeltas) {
        this.seal();
        void this.flush();
      }
    } catch {
      // Only a malformed record can get here: it is lost, and counted as such.
      this.drop(0, 1);
    }
  }

  /**
   * Seals what is pending and applies every buffered batch. Never rejects (failures are reported by
   * events.flushFailed); a call made during a flush gets one more pass after it.
   */
  flush(): Promise<void> {
    this.flushRequested = true;
    this.draining ??= this.drain();
    return this.draining;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.flush(), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /** Final flush, retried with backoff until everything is applied or `timeoutMs` passed. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const deadline = Date.now() + timeoutMs;
    let backoff = STOP_RETRY_MIN_MS;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await raceTimeout(this.flush(), left);
      if (this.pendingDeltas === 0) break;
      const wait = Math.min(backoff, deadline - Date.now());
      if (wait <= 0) break;
      await sleep(wait);
      backoff = Math.min(backoff * 2, STOP_RETRY_MAX_MS);
    }
    this.stopped = true;
    this.seal();
    for (const s of this.queue.splice(0)) this.drop(s.batch.deltas.length, s.requests);
    this.queuedDeltas = 0;
    // Applied once already: only their failover cover is given up.
    this.applied.splice(0);
    this.appliedDeltas = 0;
  }

  private async drain(): Promise<void> {
    try {
      while (this.flushRequested) {
        this.flushRequested = false;
        try {
          await this.flushOnce();
        } catch (err) {
          // Defensive: flush() must never reject (the timer and record() do not wait for it).
          this.emit('flushFailed', err, this.pendingDeltas);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  private async flushOnce(): Promise<void> {
    this.seal();
    for (;;) {
      const next = this.queue[0];
      if (!next) break;
      this.sending = next;
      const started = this.now();
      try {
        await this.store.apply(next.batch);
      } catch (err) {
        this.sending = null;
        this.enforceBound();
        this.emit('flushFailed', err, this.pendingDeltas);
        return;
      }
      this.sending = null;
      this.remove(next);
      this.keepApplied(next.batch);
      this.emit('flushed', { deltas: next.batch.deltas.length, seconds: (this.now() - started) / 1000 });
    }
    await this.reapplyDue();
  }

  /** Keeps an applied batch for its second apply, within the retry buffer's bound. */
  private keepApplied(batch: InventoryBatch): void {
    if (this.reapplyAfterMs === 0 || this.stopped) return;
    this.applied.push({ batch, due: this.now() + this.reapplyAfterMs });
    this.appliedDeltas += batch.deltas.length;
    while (this.appliedDeltas > this.opts.retryBufferMaxDeltas) {
      const oldest = this.applied.shift()!;
      this.appliedDeltas -= oldest.batch.deltas.length;
    }
  }

  /** Applies again, oldest first, the applied batches that are due; stops at the first failure (kept for the next flush). */
  private async reapplyDue(): Promise<void> {
    for (;;) {
      const next = this.applied[0];
      if (!next || next.due > this.now() || this.stopped) return;
      try {
        await this.store.apply(next.batch);
      } catch (err) {
        this.emit('flushFailed', err, this.pendingDeltas);
        return;
      }
      // stop() may have emptied the list meanwhile.
      if (this.applied[0] === next) {
        this.applied.shift();
        this.appliedDeltas -= next.batch.deltas.length;
      }
    }
  }

  /** Moves the pending deltas into a new batch at the end of the queue. */
  private seal(): void {
    if (this.pending.size === 0) return;
    const batch: InventoryBatch = { id: this.newBatchId(), deltas: [...this.pending.values()] };
    this.queue.push({ batch, requests: this.pendingRequests });
    this.queuedDeltas += batch.deltas.length;
    this.pending = new Map();
    this.pendingRequests = 0;
    this.enforceBound();
  }

  /** Drops the oldest batches (never the one in flight) while the buffer is over its bound. */
  private enforceBound(): void {
    const inFlight = this.sending ? this.sending.batch.deltas.length : 0;
    while (this.queuedDeltas - inFlight > this.opts.retryBufferMaxDeltas) {
      const oldest = this.queue.find((s) => s !== this.sending);
      if (!oldest) return;
      this.remove(oldest);
      this.drop(oldest.batch.deltas.length, oldest.requests);
    }
  }

  private remove(s: Sealed): void {
    const i = this.queue.indexOf(s);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.queuedDeltas -= s.batch.deltas.length;
  }

  private drop(deltas: number, requests: number): void {
    this.dropped += requests;
    this.emit('dropped', deltas, requests);
  }

  private emit<E extends keyof RecorderEvents>(event: E, ...args: Parameters<RecorderEvents[E]>): void {
    try {
      (this.events[event] as ((...a: Parameters<RecorderEvents[E]>) => void) | undefined)?.(...args);
    } catch {
      // A throwing listener must not break recording; the listener owns its own errors.
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `p` or `ms`, whichever comes first (a hung store must not hold shutdown forever). */
async function raceTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
