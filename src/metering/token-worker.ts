/**
 * Worker thread that owns the tiktoken encoders, so tokenising never blocks the gRPC event loop.
 * Encoders load on the first `load` message (160-230 ms and ~60 MB each), not at start-up.
 */

import { parentPort } from 'node:worker_threads';
import type { Tiktoken } from 'tiktoken';
import type { Encoding } from './encoding.js';
import { countInSlices } from './slicing.js';
import type { WorkerReply, WorkerRequest } from './worker-protocol.js';

const encoders = new Map<Encoding, Tiktoken>();

function reply(message: WorkerReply): void {
  parentPort?.postMessage(message);
}

async function load(encoding: Encoding): Promise<void> {
  let ok = encoders.has(encoding);
  if (!ok) {
    try {
      const { get_encoding } = await import('tiktoken');
      encoders.set(encoding, get_encoding(encoding));
      ok = true;
    } catch {
      ok = false;
    }
  }
  reply({ type: 'loaded', encoding, ok });
}

function count(encoder: Tiktoken, texts: string[], deadline: number): number | null {
  const expired = (): boolean => Date.now() > deadline;
  // encode_ordinary: special-token text such as <|endoftext|> in a prompt is plain text, not an error.
  const encode = (slice: string): number => encoder.encode_ordinary(slice).length;
  let tokens = 0;
  for (const text of texts) {
    const n = countInSlices(text, encode, expired);
    if (n === null) return null;
    tokens += n;
  }
  return tokens;
}

parentPort?.on('message', (message: WorkerRequest) => {
  if (message.type === 'load') {
    void load(message.encoding);
    return;
  }
  const encoder = encoders.get(message.encoding);
  let tokens: number | null = null;
  if (encoder !== undefined && Date.now() <= message.deadline) {
    try {
      tokens = count(encoder, message.texts, message.deadline);
    } catch {
      tokens = null;
    }
  }
  reply({ type: 'counted', id: message.id, tokens });
});
