/**
 * Cutting text into short slices so tiktoken runs in linear time (pure; no tokenizer here).
 *
 * tiktoken is quadratic in the length of one pre-tokenizer piece (a run of letters without spaces,
 * CJK without punctuation, a run of whitespace): 64 KB in one piece takes seconds, 1 MB throws.
 * Slices of at most MAX_SLICE code units bound that cost. Cuts are made where the cl100k/o200k
 * pre-tokenizers always end a piece, so normal text counts exactly as in one call; only inside a
 * longer unbroken run is a slice cut blindly (about one token of error per cut).
 */

export const MAX_SLICE = 256;

/** Superset of both JS `\s` and Unicode White_Space (`\s` in tiktoken's Rust regex adds U+0085). */
const WHITESPACE = /[\s\u0085]/;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
/** Characters that may continue the piece of a preceding letter or digit (marks, contractions). */
const CONTINUES_WORD = /[\s\u0085\p{L}\p{N}\p{M}']/u;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SLASH = 0x2f;

function isSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdfff;
}

/**
 * True when both pre-tokenizers end a piece between text[i - 1] and text[i]:
 * - a space or tab after a non-space (a space only ever starts a piece);
 * - after a newline, before a non-space other than `/` (o200k's punctuation piece may take `\n/`);
 * - after a letter or digit, before punctuation or a symbol (not a mark or an apostrophe, which can
 *   continue a word).
 */
export function isPieceBoundary(text: string, i: number): boolean {
  const prev = text.charCodeAt(i - 1);
  const cur = text.charCodeAt(i);
  if (cur === SPACE || cur === TAB) return !WHITESPACE.test(text[i - 1] ?? ' ');
  if (prev === LF || prev === CR) return cur !== SLASH && !WHITESPACE.test(text[i] ?? ' ');
  if (isSurrogate(prev) || isSurrogate(cur)) return false;
  return LETTER_OR_DIGIT.test(text[i - 1] ?? '') && !CONTINUES_WORD.test(text[i] ?? ' ');
}

/** End of the slice starting at `start`: the last piece boundary within maxSlice, else a blind cut. */
export function nextCut(text: string, start: number, maxSlice: number = MAX_SLICE): number {
  const limit = start + maxSlice;
  if (limit >= text.length) return text.length;
  for (let i = limit; i > start; i--) {
    if (isPieceBoundary(text, i)) return i;
  }
  const splitsPair =
    limit - 1 > start &&
    text.charCodeAt(limit - 1) >= 0xd800 &&
    text.charCodeAt(limit - 1) <= 0xdbff &&
    text.charCodeAt(limit) >= 0xdc00 &&
    text.charCodeAt(limit) <= 0xdfff;
  return splitsPair ? limit - 1 : limit;
}

/**
 * Token count of `text` through `encode` applied slice by slice, or null once `expired()` says the
 * caller no longer waits (checked between slices).
 */
export function countInSlices(
  text: string,
  encode: (slice: string) => number,
  expired: () => boolean,
  maxSlice: number = MAX_SLICE,
): number | null {
  let tokens = 0;
  let start = 0;
  while (start < text.length) {
    if (expired()) return null;
    const end = nextCut(text, start, maxSlice);
    tokens += encode(text.slice(start, end));
    start = end;
  }
  return tokens;
}
