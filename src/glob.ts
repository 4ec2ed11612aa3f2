/**
 * Globs from configuration (self-hosted host patterns, price-override model names), matched without
 * building a regular expression from user input.
 */
/** A compiled glob: `*` matches any sequence, `?` any one character; case-insensitive. */
export interface Glob {
  matches(subject: string): boolean;
}

/**
 * Compiles a glob into literal segments split at `*`. Matching anchors the first segment at the
 * start and the last at the end and finds middle segments leftmost-first, which is exact for `*`
 * globs and takes O(subject × pattern) time at worst: no backtracking blow-up.
 */
export function compileGlob(pattern: string): Glob {
  const segments = pattern.toLowerCase().split('*');
  const head = segments[0] ?? '';
  if (segments.length === 1) {
    return { matches: (s) => s.length === head.length && segmentAt(s.toLowerCase(), head, 0) };
  }
  const tail = segments[segments.length - 1] ?? '';
  const middle = segments.slice(1, -1).filter((m) => m.length > 0);
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
        const found = findSegment(s, m, pos, end);
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
    if (p !== 63 /* ? */ && p !== s.charCodeAt(at + i)) return false;
  }
  return true;
}

/** Leftmost position >= from where `segment` fits entirely before `end`, or -1. */
function findSegment(s: string, segment: string, from: number, end: number): number {
  for (let at = from; at + segment.length <= end; at++) if (segmentAt(s, segment, at)) return at;
  return -1;
}
