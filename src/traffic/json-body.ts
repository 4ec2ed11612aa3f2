/**
 * Reading a whole JSON body (request, or non-streamed response) with a bound on the work: parsed
 * whole up to a size, beyond it only the top-level keys a reader asks for.
 */
import { scanTopLevel, type ScannedValue } from './decode/json-scan.js';

/** What parseJsonBody answers for a body that is not valid JSON (or nested too deep to read). */
export const INVALID = Symbol('invalid JSON');

/** Full JSON.parse up to `fullLimit` bytes; beyond it, a validating scan for the top-level `keys`. */
export function parseJsonBody(body: Buffer, keys: readonly string[], fullLimit: number): unknown {
  if (body.length <= fullLimit) {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      return INVALID;
    }
  }
  const scan = scanTopLevel(body, keys);
  if (!scan.ok) return INVALID;
  if (scan.isObject) return scannedObject(body, scan.values);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    // Valid but nested deeper than JSON.parse's stack allows: nothing can be read from it.
    return INVALID;
  }
}

/** The chunks as one Buffer, without a copy when there is only one. */
export function concat(chunks: Uint8Array[], total: number): Buffer {
  if (chunks.length === 1) {
    const c = chunks[0]!;
    return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
  }
  return Buffer.concat(chunks, total);
}

/** Rebuilds an object from scanned top-level values, parsing only the nested slices asked for. */
function scannedObject(body: Buffer, values: Map<string, ScannedValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of values) {
    if (v !== null && typeof v === 'object') {
      try {
        out[k] = JSON.parse(body.subarray(v.start, v.end).toString('utf8'));
      } catch {
        // A valid slice can still be nested deeper than JSON.parse's stack allows: skip that key.
      }
    } else {
      out[k] = v;
    }
  }
  return out;
}
