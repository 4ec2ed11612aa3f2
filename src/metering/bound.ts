/**
 * The cheap token bound: ceil(UTF-8 bytes / 2) per text.
 *
 * Chosen from measurements of tiktoken o200k_base and cl100k_base on 2-3 KB samples (fixture
 * prompts, English Markdown, UI text in 14 languages, code, JSON, numbers): natural text is
 * 2.2-5.3 bytes per token (English 3.8, code 4.7, JSON 2.2-2.5, CJK 2.6-3.5, Cyrillic 4.2-5.3), so
 * bytes/2 was at or above the real o200k count in every such sample (1.08x at worst, typically
 * 1.1-2.2x; cl100k traditional Chinese dipped to 0.98x). Budgets prefer over- to under-estimation.
 * Two bytes per token already means one token per Cyrillic letter and 1.5 per CJK character, so
 * non-ASCII text needs no separate code-point count. It under-counts emoji-dense text (0.7-0.9x)
 * and high-entropy strings (base64, hex, UUIDs, random punctuation: 0.66-0.88x); prompt extraction
 * leaves images out.
 */
export const BOUND_BYTES_PER_TOKEN = 2;

export function boundTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / BOUND_BYTES_PER_TOKEN);
}

export function boundAll(texts: readonly string[]): number {
  let tokens = 0;
  for (const text of texts) tokens += boundTokens(text);
  return tokens;
}

/**
 * A ceiling on the exact count, for any text: every tiktoken token stands for at least one UTF-8
 * byte (a lone surrogate is the 3 bytes of U+FFFD there, as in Buffer.byteLength, and slicing never
 * splits a pair), so no text has more tokens than bytes. The bound above is tighter but falls below
 * the exact count on high-entropy text; budgets reserve this one when they skip the count.
 */
export function ceilingAll(texts: readonly string[]): number {
  let bytes = 0;
  for (const text of texts) bytes += Buffer.byteLength(text, 'utf8');
  return bytes;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * The code-unit index where the longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`
 * ends. Never splits a surrogate pair; lone surrogates count 3 bytes (they encode as U+FFFD).
 */
export function utf8PrefixEnd(text: string, maxBytes: number): number {
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    let width = 1;
    let units = 1;
    if (code >= 0x800) {
      if (isHighSurrogate(code) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
        width = 4;
        units = 2;
      } else {
        width = 3;
      }
    } else if (code >= 0x80) {
      width = 2;
    }
    if (bytes + width > maxBytes) break;
    bytes += width;
    i += units;
  }
  return i;
}

export interface ByteBudgetSplit {
  /** Texts (or their prefixes) to tokenise exactly, within the byte budget. */
  exact: string[];
  /** Cheap bound of everything beyond the budget. */
  restTokens: number;
  /** Whether anything went beyond the budget. */
  truncated: boolean;
}

/** Splits `texts` so that at most `maxBytes` UTF-8 bytes (in order) are tokenised exactly. */
export function splitAtByteBudget(texts: readonly string[], maxBytes: number): ByteBudgetSplit {
  const exact: string[] = [];
  let restTokens = 0;
  let truncated = false;
  let budget = Math.max(0, maxBytes);
  for (const text of texts) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes <= budget) {
      exact.push(text);
      budget -= bytes;
      continue;
    }
    const end = utf8PrefixEnd(text, budget);
    if (end > 0) exact.push(text.slice(0, end));
    restTokens += boundTokens(text.slice(end));
    truncated = true;
    budget = 0;
  }
  return { exact, restTokens, truncated };
}
