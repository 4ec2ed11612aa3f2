/** bench/instructions.ts: the instruction count is read from callgrind's dump. */
import { describe, expect, it } from 'vitest';
import { dumpInstructions } from '../bench/instructions.js';

describe('bench instructions', () => {
  it('reads the summary line of a callgrind dump', () => {
    const dump = ['# callgrind format', 'version: 1', 'creator: callgrind-3.19.0', 'pid: 16901', 'cmd:  node --single-threaded dist/cli.js serve', 'part: 1', '', 'events: Ir', '', 'summary: 3276102322', '', 'fl=(1) ???', 'fn=(1) 0x0000000000108090', '0 3'].join('\n');
    expect(dumpInstructions(dump)).toBe(3_276_102_322);
  });

  it('reads a totals line when there is no summary', () => {
    expect(dumpInstructions('events: Ir\nfn=(1) main\n0 12\ntotals: 12\n')).toBe(12);
  });

  it('refuses a file that is not a finished dump', () => {
    expect(() => dumpInstructions('# callgrind format\nevents: Ir\n')).toThrow(/no summary line/);
  });
});
