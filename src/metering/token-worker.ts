/**
 * Worker thread that owns the tiktoken encoders, so tokenising never blocks the gRPC event loop.
 * Encoders load on the first `load` message (160-230 ms and ~60 MB each), not at start-up.
 * Text is split by tiktoken's own pre-tokenizer pattern in JavaScript and each distinct piece is
 * byte-pair encoded once (piece-counter.ts): the same count, several times faster.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { Encoding } from './encoding.js';
import { PieceCounter } from './piece-counter.js';
import { compilePretokenizer } from './pretokenize.js';
import type { WorkerReply, WorkerRequest } from './worker-protocol.js';

const encoders = new Map<Encoding, PieceCounter>();

/** The encoding's pre-tokenizer regex, from the tiktoken package's data (read once, not parsed whole). */
function patternOf(encoding: Encoding): string {
  const file = createRequire(import.meta.url).resolve(`tiktoken/encoders/${encoding}.json`);
  const m = /"pat_str":("(?:[^"\\]|\\.)*")/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no pat_str in ${file}`);
  return JSON.parse(m[1]!) as string;
}

function reply(message: WorkerReply): void {
  parentPort?.postMessage(message);
}

async function load(encoding: Encoding): Promise<void> {
  let ok = encoders.has(encoding);
  if (!ok) {
    try {
      const { get_encoding } = await import('tiktoken');
      const tiktoken = get_encoding(encoding);
      // encode_ordinary: special-token text such as <|endoftext|> in a prompt is plain text, not an error.
      encoders.set(encoding, new PieceCounter(compilePretokenizer(patternOf(encoding)), (piece) => tiktoken.encode_ordinary(piece).length));
      ok = true;
    } catch {
      ok = false;
    }
  }
  reply({ type: 'loaded', encoding, ok });
}

function count(encoder: PieceCounter, texts: string[], deadline: number): number | null {
  const expired = (): boolean => Date.now() > deadline;
  let tokens = 0;
  for (const text of texts) {
    const n = encoder.count(text, expired);
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
