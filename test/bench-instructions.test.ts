/** bench/instructions.ts: the instruction count, and who spent it, read from callgrind's dump. */
import { describe, expect, it } from 'vitest';
import { dumpInstructions, dumpShares } from '../bench/instructions.js';

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

  it('splits the count into V8 compiling, collecting garbage and the rest by exclusive cost', () => {
    const dump = [
      'events: Ir',
      'summary: 1000',
      'ob=(1) /usr/bin/node',
      'fl=(1) ???',
      'fn=(1) v8::internal::compiler::GraphReducer::ReduceTop()',
      '0 300',
      'fn=(2) v8::internal::Heap::Scavenge()',
      '0 50',
      '+2 20',
      // A call's line is the callee's inclusive cost: not the caller's own.
      'cfn=(1)',
      'calls=3 0',
      '0 400',
      'fn=(3) Builtins_JSONParse',
      '0 600',
      'fn=(1)',
      '* 30',
    ].join('\n');
    expect(dumpShares(dump)).toEqual({ total: 1000, compiling: 330, collecting: 70 });
  });
});
