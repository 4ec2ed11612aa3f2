/**
 * Case-insensitive whole-string glob where `*` matches any run of characters (also `/`, `:`, `.`);
 * every other character is literal. No regular expression is built from user input: literal
 * segments between stars are found left to right (leftmost match is always safe with only `*`), so
 * matching is linear in the model name for a given pattern.
 */
export class Glob {
  private readonly segments: string[];

  constructor(readonly pattern: string) {
    this.segments = pattern.toLowerCase().split('*');
  }

  matches(value: string): boolean {
    const text = value.toLowerCase();
    const segments = this.segments;
    const first = segments[0] ?? '';
    if (segments.length === 1) return text === first;
    const last = segments[segments.length - 1] ?? '';
    if (text.length < first.length + last.length) return false;
    if (!text.startsWith(first) || !text.endsWith(last)) return false;
    let pos = first.length;
    const end = text.length - last.length;
    for (let i = 1; i < segments.length - 1; i++) {
      const segment = segments[i] ?? '';
      const at = text.indexOf(segment, pos);
      if (at === -1 || at + segment.length > end) return false;
      pos = at + segment.length;
    }
    return true;
  }
}
