/**
 * Globs from configuration (self-hosted hosts, model and consumer selectors, rule matches, sanction
 * allowlists, price overrides), matched without building a regular expression from user input.
 */
/** A compiled glob: `*` matches any sequence, `?` any one character; case-insensitive. */
export interface Glob {
  matches(subject: string): boolean;
}

const QUESTION = 63;

/** Where a segment between stars occurs in a subject: leftmost start in [from, end - length], or -1. */
type Finder = (s: string, from: number, end: number) => number;

/**
 * Compiles a glob into literal segments split at `*`. Matching anchors the first segment at the
 * start and the last at the end and finds middle segments leftmost-first, which is exact for `*`
 * globs. The searches of successive segments cover disjoint stretches of the subject, and each
 * reads a character once (native indexOf for literal segments, bit-parallel Shift-And for
 * segments with `?`): time O(n × ⌈m / 32⌉) for a subject of n characters and a longest segment of
 * m, with no backtracking whatever the pattern.
 */
export function compileGlob(pattern: string): Glob {
  const segments = pattern.toLowerCase().split('*');
  const head = segments[0] ?? '';
  if (segments.length === 1) {
    return { matches: (s) => s.length === head.length && segmentAt(s.toLowerCase(), head, 0) };
  }
  const tail = segments[segments.length - 1] ?? '';
  const middle = segments
    .slice(1, -1)
    .filter((m) => m.length > 0)
    .map((m) => ({ length: m.length, find: finder(m) }));
  const minLength = head.length + tail.length + middle.reduce((n, m) => n + m.length, 0);
  return {
    matches(subject) {
      if (subject.length < minLength) return false;
      const s = subject.toLowerCase();
      if (!segmentAt(s, head, 0)) return false;
      const end = s.length - tail.length;
      if (!segmentAt(s, tail, end)) return false;
      let pos = head.length;
      for (const m of middle) {
        const found = m.find(s, pos, end);
        if (found < 0) return false;
        pos = found + m.length;
      }
      return true;
    },
  };
}

function segmentAt(s: string, segment: string, at: number): boolean {
  if (at < 0 || at + segment.length > s.length) return false;
  for (let i = 0; i < segment.length; i++) {
    const p = segment.charCodeAt(i);
    if (p !== QUESTION && p !== s.charCodeAt(at + i)) return false;
  }
  return true;
}

function finder(segment: string): Finder {
  if (!segment.includes('?')) {
    return (s, from, end) => {
      const at = s.indexOf(segment, from);
      return at >= 0 && at + segment.length <= end ? at : -1;
    };
  }
  return shiftAnd(segment);
}

/**
 * Shift-And (Baeza-Yates–Gonnet): bit i of the state is set when the last i + 1 characters read
 * match the segment's first i + 1 (a `?` matches anything). The state spans ⌈m / 32⌉ words.
 */
function shiftAnd(segment: string): Finder {
  const m = segment.length;
  const words = Math.ceil(m / 32);
  /** Bits of the `?` positions: the mask of a character that occurs nowhere else in the segment. */
  const wild = new Uint32Array(words);
  for (let i = 0; i < m; i++) if (segment.charCodeAt(i) === QUESTION) wild[i >> 5]! |= 1 << (i & 31);
  const masks = new Map<number, Uint32Array>();
  for (let i = 0; i < m; i++) {
    const c = segment.charCodeAt(i);
    if (c === QUESTION) continue;
    let mask = masks.get(c);
    if (!mask) masks.set(c, (mask = wild.slice()));
    mask[i >> 5]! |= 1 << (i & 31);
  }
  // Direct lookup for ASCII, by far the common case in model names, hosts and consumer ids.
  const ascii = Array.from({ length: 128 }, (_, c) => masks.get(c) ?? wild);
  const lastWord = (m - 1) >> 5;
  const lastBit = 1 << ((m - 1) & 31);
  const state = new Uint32Array(words);
  return (s, from, end) => {
    state.fill(0);
    for (let i = from; i < end; i++) {
      const c = s.charCodeAt(i);
      const mask = c < 128 ? ascii[c]! : (masks.get(c) ?? wild);
      // state = ((state << 1) | 1) & mask, with the carry between words.
      let carry = 1;
      for (let w = 0; w < words; w++) {
        const v = state[w]!;
        state[w] = ((v << 1) | carry) & mask[w]!;
        carry = v >>> 31;
      }
      if ((state[lastWord]! & lastBit) !== 0) return i - m + 1;
    }
    return -1;
  };
}
