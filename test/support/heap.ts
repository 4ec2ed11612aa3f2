/** Memory still reachable after a full GC, for tests that prove something is not kept. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap plus Buffer memory still reachable after a full GC. */
export function retained(): number {
  // Twice: Buffer memory freed by one collection is only released (and uncounted) by the next.
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
