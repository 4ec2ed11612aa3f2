/** A generator of valid SSE streams together with the events (and their byte ranges) they must yield. */
import fc from 'fast-check';
import type { SseEvent } from '../../src/traffic/decode/sse.js';

interface FieldLine {
  kind: 'field';
  name: string;
  value: string;
  space: boolean;
  noColon: boolean;
}
interface CommentLine {
  kind: 'comment';
  text: string;
}
type Line = FieldLine | CommentLine;
type Item = { kind: 'event'; lines: Line[] } | { kind: 'comment'; text: string } | { kind: 'blank' };

export interface DispatchedEvent {
  event: SseEvent;
  /** Byte offset of the event's first field line. */
  fieldStart: number;
  /** Byte offset of its terminating blank line. */
  blankStart: number;
  /** Byte offset just past the blank line's terminator. */
  end: number;
}

export interface SseStreamCase {
  bytes: Uint8Array;
  events: SseEvent[];
  dispatched: DispatchedEvent[];
}

const valueChar = fc.constantFrom('a', 'b', ' ', ':', 'é', '€', '😀', '\t', 'DROP', 'data', '\uFEFF', 'x');
const value = fc.array(valueChar, { maxLength: 8 }).map((a) => a.join(''));
const fieldLine: fc.Arbitrary<Line> = fc.record({
  kind: fc.constant('field' as const),
  name: fc.constantFrom('data', 'data', 'data', 'event', 'id', 'retry', 'foo'),
  value,
  space: fc.boolean(),
  noColon: fc.boolean(),
});
const commentLine: fc.Arbitrary<Line> = value.map((text) => ({ kind: 'comment' as const, text }));
const eventItem: fc.Arbitrary<Item> = fc
  .array(fc.oneof({ weight: 4, arbitrary: fieldLine }, { weight: 1, arbitrary: commentLine }), { minLength: 1, maxLength: 5 })
  .filter((lines) => lines.some((l) => l.kind === 'field'))
  .map((lines) => ({ kind: 'event' as const, lines }));
const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 6, arbitrary: eventItem },
  { weight: 1, arbitrary: value.map((text) => ({ kind: 'comment' as const, text })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'blank' as const }) },
);
const EOLS = ['\n', '\r\n', '\r'] as const;
const endings = fc.oneof(
  fc.constantFrom(...EOLS).map((e) => [e]),
  fc.array(fc.constantFrom(...EOLS), { minLength: 1, maxLength: 30 }),
);

function serialiseField(l: FieldLine): string {
  return l.noColon ? l.name : `${l.name}:${l.space ? ' ' : ''}${l.value}`;
}

function parsedValue(l: FieldLine): string {
  if (l.noColon) return '';
  if (l.space) return l.value;
  return l.value.startsWith(' ') ? l.value.slice(1) : l.value;
}

export const sseStream: fc.Arbitrary<SseStreamCase> = fc
  .tuple(fc.array(item, { maxLength: 12 }), endings, fc.boolean())
  .map(([items, eols, bom]) => {
    let text = bom ? '\uFEFF' : '';
    let offset = bom ? 3 : 0;
    let lineNo = 0;
    let prevEol = '';
    const addLine = (line: string): number => {
      let eol: string = eols[lineNo++ % eols.length] as string;
      // A blank LF line right after a CR would merge into one CRLF line end.
      if (prevEol === '\r' && line === '' && eol === '\n') eol = '\r';
      prevEol = eol;
      const start = offset;
      text += line + eol;
      offset += Buffer.byteLength(line + eol);
      return start;
    };
    const events: SseEvent[] = [];
    const dispatched: DispatchedEvent[] = [];
    for (const it of items) {
      if (it.kind === 'blank') addLine('');
      else if (it.kind === 'comment') addLine(`:${it.text}`);
      else {
        let fieldStart = -1;
        const data: string[] = [];
        let type: string | undefined;
        for (const l of it.lines) {
          if (l.kind === 'comment') {
            addLine(`:${l.text}`);
            continue;
          }
          const at = addLine(serialiseField(l));
          if (fieldStart < 0) fieldStart = at;
          if (l.name === 'data') data.push(parsedValue(l));
          if (l.name === 'event') type = parsedValue(l);
        }
        const blankStart = addLine('');
        if (data.length > 0) {
          const event = { event: type === '' ? undefined : type, data: data.join('\n') };
          events.push(event);
          dispatched.push({ event, fieldStart, blankStart, end: offset });
        }
      }
    }
    return { bytes: new TextEncoder().encode(text), events, dispatched };
  });
