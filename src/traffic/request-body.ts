/** The request body as Envoy sends it: held up to the cap, read as JSON once it is complete. */
import { isUtf8 } from 'node:buffer';
import { concat, INVALID, parseJsonBody } from './json-body.js';
import type { Fail } from './types.js';

/** Request bodies up to this size are fully parsed; larger ones are scanned for top-level keys only. */
export const FULL_PARSE_LIMIT = 8 * 1024 * 1024;
const REQUEST_SCAN_KEYS = ['model', 'stream', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'stream_options'];

export class RequestBody {
  /** Body messages seen (only a body that came in one message can be rewritten). */
  messages = 0;
  /** Over the cap: reported once as body_too_large, and nothing more is held. */
  overflow = false;
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number, private readonly fail: Fail) {}

  get length(): number {
    return this.bytes;
  }

  push(chunk: Uint8Array): void {
    this.messages++;
    if (this.overflow) return;
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.overflow = true;
      this.chunks = [];
      this.fail('body_too_large');
    } else if (chunk.length > 0) {
      this.chunks.push(chunk);
    }
  }

  /** The body so far as one buffer; `release` drops the chunks (the body is complete). */
  bytesSoFar(release: boolean): Buffer {
    const body = concat(this.chunks, this.bytes);
    if (release) this.chunks = [];
    return body;
  }

  release(): void {
    this.chunks = [];
  }
}

/**
 * The body's JSON value; INVALID when there is nothing to read (empty, not JSON: reported through
 * `fail`); undefined only when `tentative` and the body does not parse (nothing reported then).
 */
export function readRequestJson(body: Buffer, tentative: boolean, fail: Fail): unknown {
  if (body.length === 0) {
    fail('empty_body');
    return INVALID;
  }
  const parsed = parseJsonBody(body, REQUEST_SCAN_KEYS, FULL_PARSE_LIMIT);
  if (parsed === INVALID && tentative) return undefined;
  if (!isUtf8(body)) fail('invalid_utf8');
  if (parsed === INVALID) fail('invalid_json');
  return parsed;
}
