/** bench/allocations.ts: a sample is charged to the code that asked for it. */
import { describe, expect, it } from 'vitest';
import { attribute } from '../bench/allocations.js';

const frame = (id: number, functionName: string, url: string, children: unknown[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 0 }, children });

describe('bench allocations', () => {
  it("charges V8's and Node's allocations to the nearest tokenwarden, no-op or library caller", () => {
    const head = frame(1, '(root)', '', [
      frame(2, 'parseJsonBody', 'file:///app/dist/traffic/exchange.js', [frame(3, 'parse', '')]),
      frame(4, 'write', 'file:///app/node_modules/@grpc/grpc-js/build/src/server-interceptors.js', [frame(5, 'writev', 'node:internal/stream_base_commons')]),
      frame(6, 'onStreamRead', 'node:internal/stream_base_commons'),
      frame(7, 'process_', 'file:///work/bench/noop-server.ts'),
    ]);
    const samples = [
      { nodeId: 3, size: 100 },
      { nodeId: 2, size: 10 },
      { nodeId: 5, size: 40 },
      { nodeId: 6, size: 7 },
      { nodeId: 7, size: 3 },
    ];
    const { total, rooms, sites } = attribute({ head: head as never, samples });
    expect(total).toBe(160);
    expect(Object.fromEntries(rooms)).toEqual({
      'tokenwarden: traffic': 110,
      'grpc-js': 40,
      'Node core (streams, events, buffers, timers)': 7,
      'no-op server code': 3,
    });
    expect(sites.get('parseJsonBody traffic/exchange.js:1')).toBe(110);
  });
});
