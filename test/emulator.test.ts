import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator } from './emulator/envoy.js';
import { ScriptedServer } from './emulator/scripted-server.js';
import { answerAll, answerFor, setHeaders } from './emulator/answers.js';

let server: ScriptedServer;
beforeAll(async () => {
  server = await ScriptedServer.start(answerAll());
});
afterAll(() => server.stop());

const GET = { headers: [[':method', 'GET'], [':scheme', 'http'], [':authority', 'host'], [':path', '/']] as Array<[string, string]> };

describe('smoke', () => {
  it('default mode', async () => {
    server.script = answerAll((m) => m.request_headers ? answerFor(m, { header_mutation: setHeaders([['x-new', 'v']]) }) : undefined);
    const envoy = new EnvoyEmulator(server.target);
    const r = await envoy.exchange({ request: GET, upstream: { headers: [[':status', '200']], body_chunks: ['hello'] } });
    console.log(r.sent.map((m) => m.kind), r.answers.map((a) => a.kind), r.counters, r.streamEnd, r.errors, server.last?.events.map(e => e.type));
    expect(r.downstream.status).toBe(200);
    expect(r.upstream.headers?.get('x-new')).toBe('v');
    expect(r.downstream.body.toString()).toBe('hello');
    await envoy.close();
  });
});
