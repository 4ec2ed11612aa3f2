/**
 * withDeadline (src/deadline.ts): a store's answer is waited for up to the deadline, and an answer
 * that arrived while tokenwarden's own event loop was blocked is not reported late.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadlineExceeded, withDeadline } from '../src/deadline.js';

/** Blocks the event loop, as a long GC pause or a burst of CPU work does. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('withDeadline', () => {
  // A peer on another thread answers at once, as Redis does: its reply comes through the event loop's I/O.
  let peer: Worker;
  beforeAll(async () => {
    peer = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m))", { eval: true });
    await ask('warm-up');
  });
  afterAll(() => peer.terminate());

  function ask(message: string): Promise<string> {
    return new Promise((resolve) => {
      peer.once('message', resolve);
      peer.postMessage(message);
    });
  }

  it('gives the answer when it comes in time', async () => {
    await expect(withDeadline(ask('in time'), 1_000)).resolves.toBe('in time');
  });

  it('fails with DeadlineExceeded, naming what and how long, when no answer comes', async () => {
    const started = performance.now();
    const never = new Promise<string>(() => {});
    const outcome = await withDeadline(never, 30, 'budget ledger did not answer').catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(DeadlineExceeded);
    expect(String(outcome)).toContain('budget ledger did not answer within 30 ms');
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('does not blame the store for a stall of our own: an answer that arrived meanwhile wins', async () => {
    // Stall in the check phase: the loop's next turn then runs its timers (the deadline's among
    // them) before reading its I/O (the answer).
    await new Promise((resolve) => setImmediate(resolve));
    const answer = withDeadline(ask('answered during the stall'), 30);
    block(120);
    await expect(answer).resolves.toBe('answered during the stall');
  });

  it('still gives up when nothing answers, the stall given back only once', async () => {
    const never = new Promise<string>(() => {});
    const started = performance.now();
    const outcome = withDeadline(never, 30).catch((e: unknown) => e);
    block(120);
    expect(await outcome).toBeInstanceOf(DeadlineExceeded);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('leaves no unhandled rejection when the work fails after the deadline', async () => {
    let fail: (e: Error) => void = () => {};
    const late = new Promise<string>((_, reject) => (fail = reject));
    await expect(withDeadline(late, 10)).rejects.toBeInstanceOf(DeadlineExceeded);
    fail(new Error('too late'));
    await new Promise((r) => setTimeout(r, 10));
  });
});
