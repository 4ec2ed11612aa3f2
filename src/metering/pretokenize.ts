/**
 * tiktoken's pre-tokenizer, run by V8's regex engine instead of inside tiktoken's wasm (pure; no
 * tokenizer here). tiktoken cuts text into pieces with its `pat_str` regex and byte-pair encodes each
 * piece on its own, so a count is the sum of per-piece counts: splitting in JavaScript and counting
 * each distinct piece once (piece-counter.ts) gives tiktoken's exact count several times faster.
 *
 * The pattern comes from the tiktoken package's own data, translated where JavaScript differs:
 * - `(?i:'s|'t|...)` (no inline flags in Node 20) becomes explicit case classes;
 * - `\s`/`\S` become `\p{White_Space}`: Rust's `\s` is Unicode White_Space (U+0085 in, U+FEFF out),
 *   JavaScript's is not.
 * An ASCII-only twin of the pattern (no Unicode property classes, several times faster again) is
 * used for text without non-ASCII characters, where both match the same pieces.
 */

export interface Pretokenizer {
  /** The pattern for any text (flags `gu`). */
  readonly unicode: RegExp;
  /** The same pattern restricted to ASCII, for text that is all ASCII (flag `g`). */
  readonly ascii: RegExp;
}

/** ASCII members of the classes tiktoken's patterns use (Lt, Lm, Lo and M have none). */
const ASCII_CLASSES: Readonly<Record<string, string>> = {
  L: 'A-Za-z',
  N: '0-9',
  Lu: 'A-Z',
  Ll: 'a-z',
  Lt: '',
  Lm: '',
  Lo: '',
  M: '',
};
const ASCII_WHITE_SPACE = '\\t\\n\\v\\f\\r ';

/** `(?i:'s|'t)` → `(?:'[sS]|'[tT])`. */
function expandCaseInsensitive(pattern: string): string {
  return pattern.replace(/\(\?i:([^()]*)\)/g, (_, alts: string) => `(?:${alts.replace(/[a-z]/g, (c) => `[${c}${c.toUpperCase()}]`)})`);
}

/**
 * Rewrites the escapes `\p{X}`, `\s` and `\S` of `pattern`, knowing whether each stands inside a
 * character class. `klass(name, inClass)` gives the replacement of `\p{name}`; `space(negated, inClass)`
 * that of `\s`/`\S`.
 */
function rewriteEscapes(
  pattern: string,
  klass: (name: string, inClass: boolean) => string,
  space: (negated: boolean, inClass: boolean) => string,
): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      const next = pattern[i + 1] ?? '';
      const prop = next === 'p' ? /^\\p\{(\w+)\}/.exec(pattern.slice(i)) : null;
      if (prop) {
        out += klass(prop[1]!, inClass);
        i += prop[0].length - 1;
      } else if (next === 's' || next === 'S') {
        out += space(next === 'S', inClass);
        i++;
      } else {
        out += ch + next;
        i++;
      }
      continue;
    }
    if (ch === '[') inClass = true;
    else if (ch === ']') inClass = false;
    out += ch;
  }
  return out;
}

/** Compiles tiktoken's `pat_str` for JavaScript; throws on a construct it does not know. */
export function compilePretokenizer(patStr: string): Pretokenizer {
  const expanded = expandCaseInsensitive(patStr);
  const unicode = rewriteEscapes(
    expanded,
    (name) => `\\p{${name}}`,
    (negated) => (negated ? '\\P{White_Space}' : '\\p{White_Space}'),
  );
  const ascii = rewriteEscapes(
    expanded,
    (name, inClass) => {
      const set = ASCII_CLASSES[name];
      if (set === undefined) throw new Error(`pre-tokenizer: no ASCII form for \\p{${name}}`);
      return inClass ? set : `[${set}]`;
    },
    (negated, inClass) => {
      if (negated && inClass) throw new Error('pre-tokenizer: \\S inside a class');
      if (negated) return `[^${ASCII_WHITE_SPACE}]`;
      return inClass ? ASCII_WHITE_SPACE : `[${ASCII_WHITE_SPACE}]`;
    },
  );
  return { unicode: new RegExp(unicode, 'gu'), ascii: new RegExp(ascii, 'g') };
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Calls `piece` for every pre-tokenizer piece of `text`, in order, until it returns false. */
export function forEachPiece(text: string, pre: Pretokenizer, piece: (s: string) => boolean): void {
  const re = NON_ASCII.test(text) ? pre.unicode : pre.ascii;
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    // The pattern cannot match empty text (every alternative consumes), but never loop forever.
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (!piece(m[0])) return;
  }
}
