/**
 * A handler's response accumulator with its eager reader (`onEvent`: each event read at once), the
 * reference the tests hold the Exchange's deferred reading (`onStreamText`) to.
 */
import { BaseAccumulator } from '../../src/traffic/providers/base.js';
import type { ApiHandler } from '../../src/traffic/types.js';

export function eagerResponse(handler: ApiHandler, maxTextBytes?: number): BaseAccumulator {
  const acc = handler.newResponse(maxTextBytes);
  if (!(acc instanceof BaseAccumulator)) throw new Error('every API handler accumulates with a BaseAccumulator');
  return acc;
}
