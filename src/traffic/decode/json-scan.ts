/**
 * Validates a whole JSON document (RFC 8259) straight from its bytes and returns the values of
 * selected top-level keys, without building the document. Iterative: nesting depth is limited by
 * memory only (one bit per level), never by the call stack.
 */
import { decodeUtf8 } from './utf8.js';

/** Scalars are decoded; an object or array is given as its byte range [start, end) in the input. */
export type ScannedValue = string | number | boolean | null | { start: number; end: number };

export type ScanResult =
  | { ok: true; isObject: boolean; values: Map<string, ScannedValue> }
  | { ok: false; error: 'invalid_json' | 'empty' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

const SIMPLE_ESCAPES: Record<number, string> = {
  0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};

/** Bytes that end a plain run inside a string: control characters, quote, backslash. */
const STRING_STOP = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1;
STRING_STOP[QUOTE] = 1;
STRING_STOP[BACKSLASH] = 1;

/** Short ASCII runs (keys, most values) skip the TextDecoder call. */
function decodeRun(b: Uint8Array, start: number, end: number): string {
  if (end - start > 32) return decodeUtf8(b.subarray(start, end));
  let s = '';
  for (let k = start; k < end; k++) {
    const c = b[k] as number;
    if (c >= 0x80) return decodeUtf8(b.subarray(start, end));
    s += String.fromCharCode(c);
  }
  return s;
}

/** Thrown internally on a syntax error; never escapes scanTopLevel. */
class Invalid extends Error {}
const INVALID = new Invalid();

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}

/** Container kinds as a bit stack: 1 = object, 0 = array. */
class KindStack {
  private bits = new Uint8Array(64);
  depth = 0;

  push(isObject: boolean): void {
    const byte = this.depth >> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(this.bits.length * 2);
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (this.depth & 7);
    this.bits[byte] = isObject ? (this.bits[byte] as number) | mask : (this.bits[byte] as number) & ~mask;
    this.depth++;
  }

  pop(): void {
    this.depth--;
  }

  topIsObject(): boolean {
    const d = this.depth - 1;
    return (((this.bits[d >> 3] as number) >> (d & 7)) & 1) === 1;
  }
}

class Scanner {
  private p = 0;
  private readonly n: number;
  private readonly stack = new KindStack();
  readonly values = new Map<string, ScannedValue>();
  /** The matched top-level key whose value is being read, and where that value starts. */
  private key: string | null = null;
  private keyValueStart = 0;

  constructor(
    private readonly b: Uint8Array,
    private readonly wanted: ReadonlySet<string>,
  ) {
    this.n = b.length;
    if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) this.p = 3;
    this.skipWs();
  }

  /** Nothing but whitespace (and a BOM). */
  isEmpty(): boolean {
    return this.p >= this.n;
  }

  /** Returns whether the document is an object; throws INVALID on a syntax error. */
  run(): boolean {
    const b = this.b;
    const isObject = b[this.p] === OPEN_OBJ;
    const stack = this.stack;
    let expectValue = true;
    for (;;) {
      if (expectValue) {
        this.skipWs();
        const c = b[this.p];
        if (c === OPEN_OBJ || c === OPEN_ARR) {
          if (stack.depth === 1 && this.key !== null) this.keyValueStart = this.p;
          stack.push(c === OPEN_OBJ);
          this.p++;
          this.skipWs();
          if (b[this.p] === (c === OPEN_OBJ ? CLOSE_OBJ : CLOSE_ARR)) {
            this.close();
            expectValue = false;
          } else if (c === OPEN_OBJ) this.readKey();
          continue;
        }
        this.readScalar();
        expectValue = false;
        continue;
      }
      this.skipWs();
      if (stack.depth === 0) {
        if (this.p !== this.n) throw INVALID;
        return isObject;
      }
      const c = b[this.p];
      const inObject = stack.topIsObject();
      if (c === COMMA) {
        this.p++;
        if (inObject) this.readKey();
        expectValue = true;
      } else if (c === (inObject ? CLOSE_OBJ : CLOSE_ARR)) {
        this.close();
      } else throw INVALID;
    }
  }

  private skipWs(): void {
    const b = this.b;
    let p = this.p;
    for (;;) {
      const c = b[p];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.p = p;
  }

  /** Pops the container whose closing bracket is at p; records it if it was a wanted value. */
  private close(): void {
    this.p++;
    this.stack.pop();
    if (this.stack.depth === 1 && this.key !== null) {
      this.values.set(this.key, { start: this.keyValueStart, end: this.p });
      this.key = null;
    }
  }

  /** Reads `"key" :` inside an object, leaving p at the value. */
  private readKey(): void {
    this.skipWs();
    if (this.b[this.p] !== QUOTE) throw INVALID;
    if (this.stack.depth === 1) {
      const name = this.readString(true);
      this.key = this.wanted.has(name) ? name : null;
    } else this.readString(false);
    this.skipWs();
    if (this.b[this.p] !== COLON) throw INVALID;
    this.p++;
  }

  private readScalar(): void {
    const b = this.b;
    const c = b[this.p];
    const capture = this.stack.depth === 1 && this.key !== null;
    let value: ScannedValue;
    if (c === QUOTE) value = this.readString(capture);
    else if (c === MINUS || isDigit(c)) value = this.readNumber(capture);
    else if (c === 0x74) value = this.literal(TRUE, true);
    else if (c === 0x66) value = this.literal(FALSE, false);
    else if (c === 0x6e) value = this.literal(NULL, null);
    else throw INVALID;
    if (capture) {
      this.values.set(this.key as string, value);
      this.key = null;
    }
  }

  private literal<T extends boolean | null>(word: readonly number[], value: T): T {
    for (let k = 0; k < word.length; k++) if (this.b[this.p + k] !== word[k]) throw INVALID;
    this.p += word.length;
    return value;
  }

  private readNumber(capture: boolean): number {
    const b = this.b;
    const start = this.p;
    let p = start;
    if (b[p] === MINUS) p++;
    if (b[p] === ZERO) p++;
    else if (isDigit(b[p])) while (isDigit(b[p])) p++;
    else throw INVALID;
    if (b[p] === 0x2e) {
      p++;
      if (!isDigit(b[p])) throw INVALID;
      while (isDigit(b[p])) p++;
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      p++;
      if (b[p] === 0x2b || b[p] === MINUS) p++;
      if (!isDigit(b[p])) throw INVALID;
      while (isDigit(b[p])) p++;
    }
    this.p = p;
    return capture ? Number(decodeRun(b, start, p)) : 0;
  }

  /** Reads a string at p (the opening quote); unescapes it only when `decode`. */
  private readString(decode: boolean): string {
    const b = this.b;
    let p = this.p + 1;
    let runStart = p;
    const parts: string[] = [];
    for (;;) {
      // b[p] past the end is undefined, and STRING_STOP[undefined] is not 0.
      while (STRING_STOP[b[p] as number] === 0) p++;
      const c = b[p];
      if (c === QUOTE) break;
      if (c !== BACKSLASH) throw INVALID;
      if (decode && p > runStart) parts.push(decodeRun(b, runStart, p));
      const e = b[p + 1];
      if (e === 0x75) {
        let code = 0;
        for (let k = 2; k < 6; k++) {
          const h = hexValue(b[p + k]);
          if (h < 0) throw INVALID;
          code = (code << 4) | h;
        }
        // Code units are kept as such: a \uD83D\uDE00 pair joins into one character, like JSON.parse.
        if (decode) parts.push(String.fromCharCode(code));
        p += 6;
      } else {
        const s = e === undefined ? undefined : SIMPLE_ESCAPES[e];
        if (s === undefined) throw INVALID;
        if (decode) parts.push(s);
        p += 2;
      }
      runStart = p;
    }
    this.p = p + 1;
    if (!decode) return '';
    if (p > runStart) parts.push(decodeRun(b, runStart, p));
    return parts.length === 1 ? (parts[0] as string) : parts.join('');
  }
}

/**
 * Validates `buf` as one JSON document and returns the values of the wanted keys of its top-level
 * object (nested keys of the same name are ignored; the last duplicate wins, like JSON.parse).
 * Leading and trailing whitespace and a UTF-8 BOM are allowed; invalid UTF-8 inside strings is
 * decoded lossily. Never throws.
 */
export function scanTopLevel(buf: Uint8Array, keys: readonly string[]): ScanResult {
  const scanner = new Scanner(buf, new Set(keys));
  if (scanner.isEmpty()) return { ok: false, error: 'empty' };
  try {
    const isObject = scanner.run();
    return { ok: true, isObject, values: scanner.values };
  } catch (e) {
    if (e === INVALID) return { ok: false, error: 'invalid_json' };
    throw e;
  }
}
