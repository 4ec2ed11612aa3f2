/**
 * Prompt token estimation: exact tiktoken counts for OpenAI model families, computed in a worker
 * thread, and a cheap bound (bound.ts) for everything else or whenever the exact count is not
 * available in time.
 */

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { boundAll, ceilingAll, splitAtByteBudget } from './bound.js';
import { encodingForModel, type Encoding } from './encoding.js';
import type { WorkerReply, WorkerRequest } from './worker-protocol.js';

export { encodingForModel, type Encoding } from './encoding.js';

export interface TokenEstimate {
  tokens: number;
  /** `exact`: every byte was tokenised with the model's encoding; `bound`: the cheap bound was used for some or all of it. */
  method: 'exact' | 'bound';
}

export interface TokenCounterOptions {
  /** UTF-8 bytes per call tokenised exactly (config `max_exact_tokenize_bytes`); the rest is bounded. */
  maxExactBytes?: number;
  /** How long `count` waits for the worker before answering with the bound. */
  deadlineMs?: number;
  /** Calls already waiting on the worker beyond which new calls get the bound at once. */
  maxPending?: number;
}

const DEFAULTS = { maxExactBytes: 256 * 1024, deadlineMs: 50, maxPending: 256 } as const;
const ALL_ENCODINGS: readonly Encoding[] = ['o200k_base', 'cl100k_base'];
/** After the worker dies, calls use the bound for this long before a new worker is tried. */
const RESTART_COOLDOWN_MS = 10_000;

/** The parent's Node flags minus `--input-type`, which a worker started from a file rejects. */
function inheritedExecArgv(): string[] {
  const args: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i] ?? '';
    if (arg === '--input-type') i++;
    else if (!arg.startsWith('--input-type=')) args.push(arg);
  }
  return args;
}

/**
 * The compiled worker sits next to this module. From TypeScript sources (tests, tsx) the worker
 * registers tsx's require hooks itself: Node 20 does not apply `--import` loaders to workers.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./token-worker.js', import.meta.url), { execArgv: inheritedExecArgv() });
  }
  const require = createRequire(import.meta.url);
  const entry = fileURLToPath(new URL('./token-worker.ts', import.meta.url));
  const boot = `require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register(); require(${JSON.stringify(entry)});`;
  return new Worker(boot, { eval: true, execArgv: [] }); // execArgv: [] keeps `eval` code CommonJS
}

function option(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
}

function cleanTexts(texts: readonly unknown[]): string[] {
  return Array.isArray(texts) ? texts.filter((t): t is string => typeof t === 'string') : [];
}

function cleanExtra(extraTokens: number): number {
  return Number.isFinite(extraTokens) && extraTokens > 0 ? Math.ceil(extraTokens) : 0;
}

export class TokenCounter {
  private readonly maxExactBytes: number;
  private readonly deadlineMs: number;
  private readonly maxPending: number;
  private worker: Worker | null = null;
  private readonly loaded = new Set<Encoding>();
  private readonly loading = new Map<Encoding, Array<(ok: boolean) => void>>();
  private readonly pending = new Map<number, (tokens: number | null) => void>();
  private nextId = 1;
  private closed = false;
  private noRestartBefore = 0;

  constructor(options: TokenCounterOptions = {}) {
    this.maxExactBytes = option(options.maxExactBytes, DEFAULTS.maxExactBytes);
    this.deadlineMs = option(options.deadlineMs, DEFAULTS.deadlineMs);
    this.maxPending = option(options.maxPending, DEFAULTS.maxPending);
  }

  /** Whether the worker thread exists (it starts on the first exact count or `warmUp`). */
  get workerRunning(): boolean {
    return this.worker !== null;
  }

  /** Encodings loaded in the worker and ready for exact counts. */
  get readyEncodings(): Encoding[] {
    return [...this.loaded];
  }

  /**
   * Starts the worker and loads encoders in the background. Resolves true once all are loaded,
   * false if the worker could not load them (counts then use the bound). Never rejects.
   */
  warmUp(encodings: readonly Encoding[] = ALL_ENCODINGS): Promise<boolean> {
    return Promise.all(encodings.map((e) => this.load(e))).then((oks) => oks.every(Boolean));
  }

  /** The cheap bound for `texts` plus `extraTokens` (e.g. per-message chat overhead). */
  bound(texts: readonly string[], extraTokens = 0): TokenEstimate {
    return { tokens: boundAll(cleanTexts(texts)) + cleanExtra(extraTokens), method: 'bound' };
  }

  /**
   * A ceiling on what `count` answers, at once and without the worker; null when `count` itself
   * answers without tokenising (no exact encoding for the model, or closed).
   */
  ceiling(texts: readonly string[], provider: string, model: string | null, extraTokens = 0): number | null {
    if (this.closed || encodingForModel(provider, model) === null) return null;
    return ceilingAll(cleanTexts(texts)) + cleanExtra(extraTokens);
  }

  /**
   * Token count of `texts` as the model at `provider` would see them, plus `extraTokens`.
   * Exact for OpenAI model families once their encoder is loaded, up to `maxExactBytes`; the bound
   * otherwise, and also when the worker is not ready, busy past the deadline, or failing. Never rejects.
   */
  async count(
    texts: readonly string[],
    provider: string,
    model: string | null,
    extraTokens = 0,
  ): Promise<TokenEstimate> {
    const clean = cleanTexts(texts);
    const encoding = encodingForModel(provider, model);
    if (encoding === null || this.closed) return this.bound(clean, extraTokens);
    if (!this.loaded.has(encoding)) {
      void this.load(encoding);
      return this.bound(clean, extraTokens);
    }
    const split = splitAtByteBudget(clean, this.maxExactBytes);
    const exact = await this.request(encoding, split.exact);
    if (exact === null) return this.bound(clean, extraTokens);
    return {
      tokens: exact + split.restTokens + cleanExtra(extraTokens),
      method: split.truncated ? 'bound' : 'exact',
    };
  }

  /** Ends the worker; later calls answer with the bound. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.reset();
    if (worker !== null) await worker.terminate();
  }

  private load(encoding: Encoding): Promise<boolean> {
    if (this.loaded.has(encoding)) return Promise.resolve(true);
    const worker = this.ensureWorker();
    if (worker === null) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiters = this.loading.get(encoding);
      if (waiters !== undefined) {
        waiters.push(resolve);
        return;
      }
      this.loading.set(encoding, [resolve]);
      this.updateRef();
      this.post({ type: 'load', encoding });
    });
  }

  private request(encoding: Encoding, texts: string[]): Promise<number | null> {
    if (texts.length === 0) return Promise.resolve(0);
    if (this.pending.size >= this.maxPending || this.worker === null) return Promise.resolve(null);
    const id = this.nextId++;
    const deadline = Date.now() + this.deadlineMs;
    return new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => this.settle(id, null), this.deadlineMs);
      timer.unref();
      this.pending.set(id, (tokens) => {
        clearTimeout(timer);
        resolve(tokens);
      });
      this.updateRef();
      this.post({ type: 'count', id, encoding, texts, deadline });
    });
  }

  private settle(id: number, tokens: number | null): void {
    const resolve = this.pending.get(id);
    if (resolve === undefined) return; // already answered by the deadline
    this.pending.delete(id);
    this.updateRef();
    resolve(tokens);
  }

  private onReply(message: WorkerReply): void {
    if (message.type === 'counted') {
      this.settle(message.id, message.tokens);
      return;
    }
    if (message.ok) this.loaded.add(message.encoding);
    const waiters = this.loading.get(message.encoding) ?? [];
    this.loading.delete(message.encoding);
    this.updateRef();
    for (const resolve of waiters) resolve(message.ok);
  }

  private ensureWorker(): Worker | null {
    if (this.worker !== null) return this.worker;
    if (this.closed || Date.now() < this.noRestartBefore) return null;
    let worker: Worker;
    try {
      worker = startWorker();
    } catch {
      this.noRestartBefore = Date.now() + RESTART_COOLDOWN_MS;
      return null;
    }
    worker.unref();
    worker.on('message', (message: WorkerReply) => this.onReply(message));
    worker.on('error', () => this.onWorkerGone(worker));
    worker.on('exit', () => this.onWorkerGone(worker));
    this.worker = worker;
    return worker;
  }

  private onWorkerGone(worker: Worker): void {
    if (this.worker !== worker) return;
    this.noRestartBefore = Date.now() + RESTART_COOLDOWN_MS;
    this.reset();
    void worker.terminate();
  }

  /** Forgets the worker: waiting calls get the bound, waiting loads get false. */
  private reset(): void {
    this.worker = null;
    this.loaded.clear();
    const pending = [...this.pending.values()];
    const loading = [...this.loading.values()].flat();
    this.pending.clear();
    this.loading.clear();
    for (const resolve of pending) resolve(null);
    for (const resolve of loading) resolve(false);
  }

  private post(message: WorkerRequest): void {
    this.worker?.postMessage(message);
  }

  /** The worker keeps the process alive only while someone awaits it. */
  private updateRef(): void {
    if (this.worker === null) return;
    if (this.pending.size + this.loading.size > 0) this.worker.ref();
    else this.worker.unref();
  }
}
