/** bench/profile.ts: samples are attributed to the room their code lives in, within the measured window only. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { procStatCpuUs } from '../bench/capacity-model.js';
import { breakdown, roomOf, threadCpuUs } from '../bench/profile.js';

describe('bench profile', () => {
  it.each([
    ['dispatch', 'file:///app/dist/extproc/stream.js', 'tokenwarden: extproc'],
    ['push', 'file:///work/main/src/traffic/decode/sse.ts', 'tokenwarden: traffic'],
    ['recordExchange', 'file:///app/dist/telemetry/metrics.js', 'tokenwarden: metrics'],
    ['export', 'file:///app/dist/telemetry/spans.js', 'tokenwarden: metrics'],
    ['record', 'file:///app/dist/server.js', 'tokenwarden: wiring (server.ts, cli.ts)'],
    ['sendMessage', 'file:///app/node_modules/@grpc/grpc-js/build/src/server-interceptors.js', 'grpc-js'],
    ['finish', 'file:///app/node_modules/protobufjs/src/writer.js', 'protobufjs'],
    ['utf8_write', 'file:///app/node_modules/@protobufjs/utf8/index.js', 'protobufjs'],
    ['sendCommand', 'file:///app/node_modules/ioredis/built/Redis.js', 'ioredis'],
    ['get', 'file:///app/node_modules/lru-cache/dist/esm/node/index.min.js', 'other libraries'],
    ['respond', 'node:internal/http2/core', 'Node HTTP/2'],
    ['emit', 'node:events', 'Node core (streams, events, buffers, timers)'],
    ['writeBuffer', '', 'builtins and bindings'],
    ['(garbage collector)', '', 'garbage collection'],
    ['(program)', '', 'V8 and native (program)'],
    ['(idle)', '', 'idle'],
    ['process_', 'file:///work/main/bench/noop-server.ts', 'no-op server code'],
  ])('%s in %s is %s', (fn, url, room) => {
    expect(roomOf(fn, url)).toBe(room);
  });

  it('sums the samples inside the window, each with the time since the previous one', () => {
    const profile = {
      startTime: 1_000,
      nodes: [
        { id: 1, callFrame: { functionName: '(idle)', url: '' } },
        { id: 2, callFrame: { functionName: 'dispatch', url: 'file:///app/dist/extproc/stream.js' } },
        { id: 3, callFrame: { functionName: '(garbage collector)', url: '' } },
      ],
      samples: [2, 2, 3, 1, 2, 3],
      timeDeltas: [100, 100, 50, 200, 100, 400],
    };
    // Samples at 1100, 1200, 1250, 1450, 1550, 1950: the window [1150, 1600] holds the 2nd to the 5th.
    expect(Object.fromEntries(breakdown(profile, 1_150, 1_600))).toEqual({ 'tokenwarden: extproc': 200, 'garbage collection': 50, idle: 200 });
  });

  it("splits a process's CPU time by thread: the main thread and the others add up to the process's", () => {
    const spin = Date.now() + 30;
    while (Date.now() < spin); // some CPU time on the main thread
    const threads = threadCpuUs(process.pid);
    const total = procStatCpuUs(readFileSync(`/proc/${process.pid}/stat`, 'utf8'));
    expect(threads.get('main thread')).toBeGreaterThan(0);
    const sum = [...threads.values()].reduce((a, b) => a + b, 0);
    // Read a moment apart, and threads that ended are in the process's total only.
    expect(sum).toBeLessThanOrEqual(total + 20_000);
    expect(sum).toBeGreaterThan(0);
  });
});
