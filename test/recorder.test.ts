/**
 * The Recorder against a scripted fake store: the record -> delta mapping, aggregation by key,
 * size- and interval-triggered flushes, retries that keep the batch id, ambiguous failures, the
 * bounded retry buffer and stop().
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExchangeRecord } from '../src/domain.js';
import { ANONYMOUS_CONSUMER } from '../src/domain.js';
import { deltaOf } from '../src/inventory/aggregate.js';
import { Recorder, type RecorderEvents, type RecorderOptions } from '../src/inventory/recorder.js';
import { emptyErrors, emptyTokens, type InventoryBatch, type InventoryDelta, type InventoryStore } from '../src/inventory/types.js';

function rec(over: Partial<ExchangeRecord> = {}): ExchangeRecord {
  return {
    requestId: null,
    traceparent: null,
    serverAddress: null,
    startedAt: 1_000,
    endedAt: 1_100,
    mode: 'inline',
    provider: 'openai',
    api: 'chat_completions',
    model: 'gpt-4o',
    responseModel: 'gpt-4o-2024-08-06',
    stream: false,
    consumer: { id: 'team-a', resolver: 'header' },
    status: 200,
    reportedUsage: null,
    usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15, cached_input_tokens: 2, cache_write_tokens: null, reasoning_tokens: 1 },
    usageSource: 'reported',
    promptEstimate: null,
    costMicroUsd: 7,
    unpriced: false,
    error: null,
    completion: 'complete',
    usageInjected: false,
    blockedBy: [],
    unsanctioned: false,
    latency: null,
    ...over,
  };
}

type Behaviour = 'ok' | 'fail' | 'apply-then-fail' | 'hang';

/** Applies batches like a real store (once per id) and records every attempt. */
class FakeStore implements InventoryStore {
  behaviour: Behaviour = 'ok';
  readonly attempts: InventoryBatch[] = [];
  readonly appliedIds = new Set<string>();
  readonly applied: InventoryDelta[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private release: (() => void) | null = null;

  async apply(batch: InventoryBatch): Promise<void> {
    this.attempts.push(structuredClone(batch));
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.behaviour === 'hang') await new Promise<void>((resolve) => (this.release = resolve));
      if (this.behaviour === 'fail') throw new Error('store unreachable');
      if (!this.appliedIds.has(batch.id)) {
        this.appliedIds.add(batch.id);
        this.applied.push(...structuredClone(batch.deltas));
      }
      if (this.behaviour === 'apply-then-fail') throw new Error('timed out after applying');
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Lets a hung apply go on with the current behaviour. */
  unblock(): void {
    this.release?.();
    this.release = null;
  }

  totalRequests(): number {
    return this.applied.reduce((n, d) => n + d.requests, 0);
  }

  inventory = unused;
  consumers = unused;
  models = unused;
  usage = unused;
  ping = async (): Promise<void> => {};
  close = async (): Promise<void> => {};
}

async function unused(): Promise<never> {
  throw new Error('not used by the Recorder');
}

const OPTS: RecorderOptions = { flushIntervalMs: 60_000, flushMaxDeltas: 100, retryBufferMaxDeltas: 1000 };

function setup(opts: Partial<RecorderOptions> = {}): { store: FakeStore; recorder: Recorder; events: { [K in keyof RecorderEvents]: unknown[][] } } {
  const store = new FakeStore();
  const events = { flushed: [] as unknown[][], flushFailed: [] as unknown[][], dropped: [] as unknown[][] };
  let n = 0;
  const recorder = new Recorder(
    store,
    { ...OPTS, newBatchId: () => `b${++n}`, ...opts },
    {
      flushed: (...a) => events.flushed.push(a),
      flushFailed: (...a) => events.flushFailed.push(a),
      dropped: (...a) => events.dropped.push(a),
    },
  );
  return { store, recorder, events };
}

let cleanup: Recorder[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const r of cleanup) await r.stop(0);
  cleanup = [];
});

describe('deltaOf (ExchangeRecord -> InventoryDelta)', () => {
  const base = deltaOf(rec());

  it('maps a reported, priced exchange', () => {
    expect(base).toEqual({
      key: { consumer: 'team-a', provider: 'openai', model: 'gpt-4o' },
      firstSeen: 1_000,
      lastSeen: 1_100,
      requests: 1,
      errors: emptyErrors(),
      reported: { input: 10, cached_input: 2, cache_write: 0, output: 5, reasoning: 1 },
      estimated: emptyTokens(),
      costMicroUsd: 7,
      unpricedRequests: 0,
      lastApi: 'chat_completions',
      responseModels: ['gpt-4o-2024-08-06'],
      consumerResolver: 'header',
    } satisfies InventoryDelta);
  });

  it.each<[string, Partial<ExchangeRecord>, Partial<InventoryDelta>]>([
    ['unknown consumer', { consumer: null }, { key: { consumer: ANONYMOUS_CONSUMER, provider: 'openai', model: 'gpt-4o' }, consumerResolver: null }],
    ['no requested model: the response model', { model: null }, { key: { consumer: 'team-a', provider: 'openai', model: 'gpt-4o-2024-08-06' } }],
    ['no model at all', { model: null, responseModel: null }, { key: { consumer: 'team-a', provider: 'openai', model: '' }, responseModels: [] }],
    ['estimated usage', { usageSource: 'estimated' }, { reported: emptyTokens(), estimated: { input: 10, cached_input: 2, cache_write: 0, output: 5, reasoning: 1 } }],
    [
      'no usage',
      { usageSource: 'none', usage: { input_tokens: null, output_tokens: null, total_tokens: null, cached_input_tokens: null, cache_write_tokens: null, reasoning_tokens: null } },
      { reported: emptyTokens(), estimated: emptyTokens() },
    ],
    ['unpriced', { costMicroUsd: null, unpriced: true }, { costMicroUsd: 0, unpricedRequests: 1 }],
    ['resolver kind kept', { consumer: { id: 'spiffe://x/ns/a', resolver: 'xfcc' } }, { consumerResolver: 'xfcc' }],
  ])('%s', (_name, over, expected) => {
    expect(deltaOf(rec(over))).toMatchObject(expected);
  });

  it.each<[string, Partial<ExchangeRecord>, keyof ReturnType<typeof emptyErrors> | null]>([
    ['200', {}, null],
    ['399', { status: 399 }, null],
    ['400', { status: 400 }, 'upstream_4xx'],
    ['429', { status: 429 }, 'upstream_4xx'],
    ['500', { status: 500 }, 'upstream_5xx'],
    ['599', { status: 599 }, 'upstream_5xx'],
    ['invalid_json', { error: 'invalid_json' }, 'bad_input'],
    ['invalid_utf8', { error: 'invalid_utf8' }, 'bad_input'],
    ['empty_body', { error: 'empty_body' }, 'bad_input'],
    ['corrupt_encoding', { error: 'corrupt_encoding' }, 'bad_input'],
    ['body_too_large', { error: 'body_too_large' }, 'bad_input'],
    ['stream_truncated', { error: 'stream_truncated' }, 'truncated'],
    ['aborted', { completion: 'aborted', status: null }, 'aborted'],
    // One kind per exchange, with the precedence of the exchanges_total outcome label.
    ['aborted wins over 5xx', { completion: 'aborted', status: 502 }, 'aborted'],
    ['bad input wins over the 4xx it caused', { status: 400, error: 'invalid_json' }, 'bad_input'],
    ['truncation wins over a 5xx', { status: 500, error: 'stream_truncated' }, 'truncated'],
  ])('error kind for %s', (_name, over, kind) => {
    const expected = emptyErrors();
    if (kind) expected[kind] = 1;
    expect(deltaOf(rec(over)).errors).toEqual(expected);
  });
});

describe('Recorder', () => {
  it('aggregates N records into one delta per key with exact sums', async () => {
    const { store, recorder } = setup();
    for (let i = 0; i < 300; i++) {
      const consumer = { id: `c${i % 3}`, resolver: 'header' as const };
      recorder.record(
        rec({
          consumer,
          startedAt: 10_000 + i,
          endedAt: 20_000 + i,
          api: i === 299 ? 'responses' : 'chat_completions',
          responseModel: i % 2 ? 'gpt-4o-a' : 'gpt-4o-b',
          status: i % 10 === 0 ? 503 : 200,
          usageSource: i % 5 === 0 ? 'estimated' : 'reported',
          costMicroUsd: i % 4 === 0 ? null : 7,
          unpriced: i % 4 === 0,
        }),
      );
    }
    expect(store.attempts).toHaveLength(0); // record() never touches the store
    expect(recorder.pendingDeltas).toBe(3);
    await recorder.flush();

    expect(store.attempts).toHaveLength(1);
    const deltas = store.attempts[0]!.deltas;
    expect(deltas).toHaveLength(3);
    for (const c of [0, 1, 2]) {
      const mine = Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 3 === c);
      const d = deltas.find((x) => x.key.consumer === `c${c}`)!;
      const estimated = mine.filter((i) => i % 5 === 0).length;
      const reported = mine.length - estimated;
      expect(d.requests).toBe(100);
      expect(d.firstSeen).toBe(10_000 + mine[0]!);
      expect(d.lastSeen).toBe(20_000 + mine.at(-1)!);
      expect(d.errors).toEqual({ ...emptyErrors(), upstream_5xx: mine.filter((i) => i % 10 === 0).length });
      expect(d.reported).toEqual({ input: 10 * reported, cached_input: 2 * reported, cache_write: 0, output: 5 * reported, reasoning: reported });
      expect(d.estimated).toEqual({ input: 10 * estimated, cached_input: 2 * estimated, cache_write: 0, output: 5 * estimated, reasoning: estimated });
      expect(d.unpricedRequests).toBe(mine.filter((i) => i % 4 === 0).length);
      expect(d.costMicroUsd).toBe(7 * mine.filter((i) => i % 4 !== 0).length);
      expect(d.responseModels.sort()).toEqual(['gpt-4o-a', 'gpt-4o-b']);
      expect(d.lastApi).toBe(c === 299 % 3 ? 'responses' : 'chat_completions');
    }
    expect(recorder.pendingDeltas).toBe(0);
  });

  it('takes lastApi and the resolver from the latest exchange, whatever the recording order', async () => {
    const { store, recorder } = setup();
    recorder.record(rec({ endedAt: 5_000, api: 'responses', consumer: { id: 'team-a', resolver: 'api_key' } }));
    recorder.record(rec({ startedAt: 500, endedAt: 4_000, api: 'chat_completions' }));
    await recorder.flush();
    expect(store.applied[0]).toMatchObject({ firstSeen: 500, lastSeen: 5_000, lastApi: 'responses', consumerResolver: 'api_key' });
  });

  it('flushes as soon as flushMaxDeltas keys are pending', async () => {
    const { store, recorder } = setup({ flushMaxDeltas: 3 });
    recorder.record(rec({ model: 'm1' }));
    recorder.record(rec({ model: 'm2' }));
    recorder.record(rec({ model: 'm1' }));
    expect(store.attempts).toHaveLength(0);
    recorder.record(rec({ model: 'm3' }));
    expect(store.attempts).toHaveLength(1);
    expect(store.attempts[0]!.deltas.map((d) => [d.key.model, d.requests])).toEqual([
      ['m1', 2],
      ['m2', 1],
      ['m3', 1],
    ]);
    await recorder.flush();
    expect(store.totalRequests()).toBe(4);
  });

  it('flushes every flushIntervalMs once started', async () => {
    vi.useFakeTimers();
    const { store, recorder } = setup({ flushIntervalMs: 1_000 });
    cleanup.push(recorder);
    recorder.start();
    recorder.record(rec());
    await vi.advanceTimersByTimeAsync(999);
    expect(store.attempts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.attempts).toHaveLength(1);
    recorder.record(rec());
    recorder.record(rec({ consumer: null }));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(store.attempts).toHaveLength(2);
    expect(store.totalRequests()).toBe(3);
  });

  it('retries a failed batch with the same id, while new records go into a new batch', async () => {
    const { store, recorder, events } = setup();
    store.behaviour = 'fail';
    recorder.record(rec());
    recorder.record(rec());
    await recorder.flush();
    recorder.record(rec({ model: 'other' }));
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b1']); // stops at the first failure
    expect(events.flushFailed).toHaveLength(2);
    expect(events.flushFailed[1]![1]).toBe(2); // pending deltas: b1's one and b2's one
    expect(store.applied).toEqual([]);

    store.behaviour = 'ok';
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b1', 'b1', 'b2']);
    expect(store.attempts[2]).toEqual(store.attempts[0]);
    expect(store.applied.map((d) => [d.key.model, d.requests])).toEqual([
      ['gpt-4o', 2],
      ['other', 1],
    ]);
    expect(recorder.pendingDeltas).toBe(0);
    expect(recorder.droppedRequests).toBe(0);
  });

  it('does not count twice a batch the store applied before failing', async () => {
    const { store, recorder } = setup();
    store.behaviour = 'apply-then-fail';
    for (let i = 0; i < 5; i++) recorder.record(rec());
    await recorder.flush();
    expect(recorder.pendingDeltas).toBe(1);
    store.behaviour = 'ok';
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b1']);
    expect(store.totalRequests()).toBe(5);
    expect(recorder.pendingDeltas).toBe(0);
  });

  it('drops the oldest batches when the retry buffer overflows, and counts them', async () => {
    const { store, recorder, events } = setup({ flushMaxDeltas: 2, retryBufferMaxDeltas: 4 });
    store.behaviour = 'fail';
    let recorded = 0;
    // Two models per batch: the second one fills the pending map and seals the batch.
    const batchOf = async (repeatFirst: number): Promise<void> => {
      for (let i = 0; i < repeatFirst; i++) recorder.record(rec({ model: `a${recorded}` }));
      recorder.record(rec({ model: `b${recorded}` }));
      recorded += repeatFirst + 1;
      await recorder.flush();
    };
    await batchOf(2); // b1: 2 deltas, 3 requests
    await batchOf(1); // b2: the buffer holds 4 deltas, still room
    expect(recorder.droppedRequests).toBe(0);
    await batchOf(3); // b3: 6 > 4, the oldest (b1) goes
    expect(events.dropped).toEqual([[2, 3]]);
    expect(recorder.droppedRequests).toBe(3);
    expect(recorder.pendingDeltas).toBe(4);

    store.behaviour = 'ok';
    await recorder.flush();
    expect([...store.appliedIds]).toEqual(['b2', 'b3']);
    expect(store.totalRequests()).toBe(recorded - recorder.droppedRequests);
  });

  it('never has more than one apply in flight; a flush asked for meanwhile runs after it', async () => {
    const { store, recorder } = setup();
    store.behaviour = 'hang';
    recorder.record(rec());
    const first = recorder.flush();
    recorder.record(rec({ model: 'later' }));
    const second = recorder.flush();
    const third = recorder.flush();
    expect(store.attempts).toHaveLength(1);
    store.behaviour = 'ok';
    store.unblock();
    await Promise.all([first, second, third]);
    expect(store.maxInFlight).toBe(1);
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b2']);
    expect(recorder.pendingDeltas).toBe(0);
  });

  it('never throws from record() or flush(), whatever the store or the listeners do', async () => {
    const store = new FakeStore();
    store.apply = () => {
      throw new Error('synchronous failure');
    };
    const recorder = new Recorder(store, { ...OPTS, flushMaxDeltas: 1 }, {
      flushFailed: () => {
        throw new Error('listener bug');
      },
    });
    expect(() => recorder.record(rec())).not.toThrow();
    await expect(recorder.flush()).resolves.toBeUndefined();
    expect(recorder.pendingDeltas).toBe(1);
    await recorder.stop(0);
  });

  it('stop() flushes what is pending', async () => {
    const { store, recorder } = setup();
    recorder.start();
    for (let i = 0; i < 7; i++) recorder.record(rec({ consumer: { id: `c${i % 2}`, resolver: 'header' } }));
    await recorder.stop();
    expect(store.totalRequests()).toBe(7);
    expect(recorder.pendingDeltas).toBe(0);
    expect(recorder.droppedRequests).toBe(0);
  });

  it('stop() retries until the store comes back', async () => {
    const { store, recorder, events } = setup();
    store.behaviour = 'fail';
    recorder.record(rec());
    const stopping = recorder.stop(10_000);
    await vi.waitFor(() => expect(events.flushFailed.length).toBeGreaterThanOrEqual(2));
    store.behaviour = 'ok';
    await stopping;
    expect(store.totalRequests()).toBe(1);
    expect(recorder.droppedRequests).toBe(0);
  });

  it('stop() gives up at its deadline and counts what is left as dropped, as well as later records', async () => {
    const { store, recorder, events } = setup();
    store.behaviour = 'hang';
    for (let i = 0; i < 4; i++) recorder.record(rec({ model: `m${i % 2}` }));
    await recorder.stop(50);
    expect(recorder.droppedRequests).toBe(4);
    expect(events.dropped).toEqual([[2, 4]]);
    expect(recorder.pendingDeltas).toBe(0);
    recorder.record(rec());
    expect(recorder.droppedRequests).toBe(5);
    store.unblock();
  });

  it('refuses options that would make the buffer smaller than a batch', () => {
    expect(() => new Recorder(new FakeStore(), { ...OPTS, flushMaxDeltas: 10, retryBufferMaxDeltas: 5 })).toThrow(RangeError);
    expect(() => new Recorder(new FakeStore(), { ...OPTS, flushIntervalMs: 0 })).toThrow(RangeError);
  });
});

describe('Recorder: the second apply that covers a failover', () => {
  /** A store on a replicated Redis whose master was failed over: it forgets the given batches. */
  function loseBatches(store: FakeStore, ids: string[]): void {
    for (const id of ids) store.appliedIds.delete(id);
    store.applied.splice(0);
  }

  it('applies every applied batch once more, with its id, reapplyAfterMs later', async () => {
    let t = 0;
    const { store, recorder } = setup({ reapplyAfterMs: 5_000, now: () => t });
    recorder.record(rec());
    await recorder.flush();
    t = 4_999;
    recorder.record(rec({ model: 'later' }));
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b2']);
    t = 5_000;
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b2', 'b1']);
    expect(store.attempts[2]).toEqual(store.attempts[0]);
    t = 20_000;
    await recorder.flush();
    await recorder.flush();
    // Once each, and counted once (the store knows the ids).
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b2', 'b1', 'b2']);
    expect(store.totalRequests()).toBe(2);
    expect(recorder.pendingDeltas).toBe(0);
  });

  it('restores a batch that a failover lost after the store acknowledged it', async () => {
    let t = 0;
    const { store, recorder } = setup({ reapplyAfterMs: 5_000, now: () => t });
    for (let i = 0; i < 3; i++) recorder.record(rec());
    await recorder.flush();
    expect(store.totalRequests()).toBe(3);
    // The promoted replica never got b1.
    loseBatches(store, ['b1']);
    expect(store.totalRequests()).toBe(0);
    t = 5_000;
    await recorder.flush();
    expect(store.totalRequests()).toBe(3);
  });

  it('keeps a second apply that fails for the next flush, without holding back new batches', async () => {
    let t = 0;
    const { store, recorder, events } = setup({ reapplyAfterMs: 1_000, now: () => t });
    recorder.record(rec());
    await recorder.flush();
    t = 1_000;
    store.behaviour = 'fail';
    await recorder.flush();
    expect(events.flushFailed).toHaveLength(1);
    store.behaviour = 'ok';
    recorder.record(rec({ model: 'new' }));
    await recorder.flush();
    // The new batch first, then the second apply of b1.
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b1', 'b2', 'b1']);
    expect(recorder.pendingDeltas).toBe(0);
    expect(recorder.droppedRequests).toBe(0);
  });

  it('holds at most retryBufferMaxDeltas applied deltas, letting the oldest go first', async () => {
    let t = 0;
    const { store, recorder, events } = setup({ flushMaxDeltas: 2, retryBufferMaxDeltas: 4, reapplyAfterMs: 1_000, now: () => t });
    for (let b = 0; b < 3; b++) {
      recorder.record(rec({ model: `a${b}` }));
      recorder.record(rec({ model: `b${b}` }));
      await recorder.flush();
    }
    t = 1_000;
    await recorder.flush();
    expect(store.attempts.map((b) => b.id)).toEqual(['b1', 'b2', 'b3', 'b2', 'b3']);
    // Letting a second apply go is not a drop: the batch was applied.
    expect(events.dropped).toEqual([]);
    expect(recorder.droppedRequests).toBe(0);
  });

  it('is off with reapplyAfterMs 0, and stop() gives the second applies up', async () => {
    let t = 0;
    const off = setup({ reapplyAfterMs: 0, now: () => t });
    off.recorder.record(rec());
    await off.recorder.flush();
    t = 60_000;
    await off.recorder.flush();
    expect(off.store.attempts.map((b) => b.id)).toEqual(['b1']);

    const on = setup({ reapplyAfterMs: 1_000, now: () => t });
    on.recorder.record(rec());
    await on.recorder.flush();
    await on.recorder.stop();
    t += 1_000;
    await on.recorder.flush();
    expect(on.store.attempts.map((b) => b.id)).toEqual(['b1']);
  });
});
