/**
 * Bounds how long a caller waits on the store, blaming the store only for its own delay.
 *
 * When tokenwarden's event loop is blocked (a long GC pause, a burst of CPU work), the store's answer
 * waits unread in the socket while the deadline's timer comes due; timers run before I/O callbacks,
 * so a plain timer would report the store late for our own stall. So when the timer fires, the time
 * the loop was busy since the call began is given back, once (a call waits at most the deadline, plus
 * our own busy time up to then, plus whatever stalls the extra wait), and the verdict waits for that
 * turn's I/O (setImmediate runs after the poll phase): an answer that arrived during the stall wins.
 */
import { performance } from 'node:perf_hooks';

export class DeadlineExceeded extends Error {
  constructor(
    readonly ms: number,
    what = 'no answer',
  ) {
    super(`${what} within ${ms} ms`);
  }
}

/** `work`'s outcome, or a DeadlineExceeded (`what` starts its message) when it takes longer than `ms`. */
export function withDeadline<T>(work: Promise<T>, ms: number, what?: string): Promise<T> {
  // One promise and one reaction per call (no race, no finally): the budget path makes two calls per
  // exchange. The handlers also keep a late rejection of `work` from being unhandled.
  return new Promise<T>((resolve, reject) => {
    const started = performance.eventLoopUtilization();
    let verdict: NodeJS.Immediate | undefined;
    const expire = (): void => {
      verdict = setImmediate(() => reject(new DeadlineExceeded(ms, what)));
    };
    let timer = setTimeout(() => {
      const busyMs = performance.eventLoopUtilization(started).active;
      if (busyMs >= 1) timer = setTimeout(expire, busyMs).unref();
      else expire();
    }, ms).unref();
    const settled = (): void => {
      clearTimeout(timer);
      clearImmediate(verdict);
    };
    work.then(
      (value) => {
        settled();
        resolve(value);
      },
      (error: unknown) => {
        settled();
        reject(error);
      },
    );
  });
}
