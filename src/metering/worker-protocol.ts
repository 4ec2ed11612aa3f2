/** Messages between TokenCounter (main thread) and the tokenizer worker. */

import type { Encoding } from './encoding.js';

export type WorkerRequest =
  | { type: 'load'; encoding: Encoding }
  /** `deadline` is a Date.now() value after which the caller no longer waits. */
  | { type: 'count'; id: number; encoding: Encoding; texts: string[]; deadline: number };

export type WorkerReply =
  | { type: 'loaded'; encoding: Encoding; ok: boolean }
  /** tokens is null when the deadline passed, the encoding is not loaded, or tiktoken failed. */
  | { type: 'counted'; id: number; tokens: number | null };
