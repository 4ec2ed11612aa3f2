import fc from 'fast-check';
import { fixtureText } from '../support/fixtures.js';

export interface FixtureBody {
  chunks: Uint8Array[];
  bytes: Uint8Array;
  headers: Map<string, string>;
}

interface RawSide {
  headers: [string, string][];
  body_chunks: string[];
}

function side(raw: RawSide): FixtureBody {
  const chunks = raw.body_chunks.map((c) => new Uint8Array(Buffer.from(c, 'base64')));
  return { chunks, bytes: concat(chunks), headers: new Map(raw.headers) };
}

export function loadFixture(name: string): { request: FixtureBody; response: FixtureBody } {
  const raw = JSON.parse(fixtureText(name)) as { request: RawSide; response: RawSide };
  return { request: side(raw.request), response: side(raw.response) };
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Splits bytes at the given cut points (any integers; taken modulo length + 1). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

export function oneByteChunks(bytes: Uint8Array): Uint8Array[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

/** A chunking of a byte string: random cut points, or 1-byte chunks. */
export const chunking = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 40 }).map((cuts) => (b: Uint8Array) => splitAt(b, cuts)) },
  { weight: 1, arbitrary: fc.constant((b: Uint8Array) => oneByteChunks(b)) },
);
