/**
 * Every fixture replayed through the real gRPC server by the Envoy emulator, in the sidecar mode
 * (request BUFFERED, response STREAMED, mode_override for non-LLM traffic) and in observability mode.
 * Asserts the client and upstream see what they would without tokenwarden, every expected field of
 * the record, and the dynamic metadata Envoy receives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator, type ExchangeResult } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { expectMetadataMatchesRecord, expectRecordMatchesFixture } from './support/expect.js';

const fixtures = loadFixtures();

function replay(envoy: EnvoyEmulator, fx: Fixture): Promise<ExchangeResult> {
  return envoy.exchange({
    request: { headers: fx.request.headers, body_chunks: fx.request.body_chunks },
    upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
    attributes: { 'source.address': '10.1.2.3:40000' },
  });
}

const isLlm = (fx: Fixture): boolean => fx.expected.provider !== 'unknown';

const CREDENTIAL_HEADERS = ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'];
const TEXT_KEYS = new Set(['content', 'text', 'input', 'prompt', 'system', 'thinking']);

/** Long strings under text-bearing keys of a JSON body (prompts and completions). */
function texts(value: unknown, key = '', out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (TEXT_KEYS.has(key) && value.length >= 16) out.push(value.slice(0, 40));
  } else if (Array.isArray(value)) {
    for (const v of value) texts(v, key, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) texts(v, k, out);
  }
  return out;
}

/** Every credential and a sample of prompt/completion text from the fixtures. */
const secrets = fixtures.flatMap((fx) => {
  const creds = fx.request.headers
    .filter(([k]) => CREDENTIAL_HEADERS.includes(k))
    .map(([, v]) => v.replace(/^Bearer\s+/i, ''))
    .filter((v) => v.length >= 8);
  let body: unknown = null;
  try {
    body = JSON.parse(Buffer.concat(fx.request.body_chunks).toString('utf8'));
  } catch {
    // Bad-input fixtures have no JSON body to sample.
  }
  return [...creds, ...texts(body)];
});

describe.each([
  ['sidecar', SIDECAR],
  ['observability', OBSERVABILITY],
] as const)('fixtures through gRPC (%s mode)', (mode, emulatorConfig) => {
  let srv: TestServer;
  let envoy: EnvoyEmulator;
  beforeAll(async () => {
    srv = await startTestServer();
    envoy = new EnvoyEmulator(srv.address, emulatorConfig);
  });
  afterAll(async () => {
    await envoy.close();
    await srv.stop();
  });

  for (const fx of fixtures) {
    it(fx.name, async () => {
      const before = srv.records.length;
      const r = await replay(envoy, fx);
      expect(r.errors).toEqual([]);
      expect(r.counters.spurious_msgs_received).toBe(0);
      expect(r.counters.message_timeouts).toBe(0);
      expect(r.counters.streams_failed).toBe(0);

      // The client gets exactly what the upstream sent.
      expect(r.downstream.localReply).toBeUndefined();
      expect(r.downstream.status).toBe(fx.expected.status);
      expect(r.downstream.body.equals(Buffer.concat(fx.response.body_chunks))).toBe(true);
      expect(r.upstream.contacted).toBe(true);

      if (!isLlm(fx)) {
        await new Promise((res) => setTimeout(res, 20));
        expect(srv.records.length).toBe(before);
        expect(r.dynamicMetadata.tokenwarden).toBeUndefined();
        if (mode === 'sidecar') {
          // mode_override: non-LLM traffic costs a single round trip.
          expect(r.sent.map((m) => m.kind)).toEqual(['request_headers']);
        } else {
          expect(r.answers).toEqual([]);
        }
        return;
      }

      const [record] = (await srv.waitForRecords(before + 1)).slice(before);
      expectRecordMatchesFixture(record!, fx);
      expect(record!.mode).toBe(mode === 'sidecar' ? 'inline' : 'observability');
      expect(record!.consumer).not.toBeNull();

      const sentBody = r.upstream.body;
      const original = Buffer.concat(fx.request.body_chunks);
      if (record!.usageInjected) {
        const sent = JSON.parse(sentBody.toString('utf8'));
        expect(sent.stream_options.include_usage).toBe(true);
        expect({ ...sent, stream_options: undefined }).toEqual({ ...JSON.parse(original.toString('utf8')), stream_options: undefined });
      } else {
        expect(sentBody.equals(original)).toBe(true);
      }

      if (mode === 'sidecar') {
        expect(record!.usageInjected).toBe(fx.name.includes('no_usage'));
        expectMetadataMatchesRecord(r.dynamicMetadata.tokenwarden as Record<string, unknown>, record!);
      } else {
        expect(r.answers).toEqual([]);
        expect(record!.usageInjected).toBe(false);
      }
    });
  }

  it('kept no API key and no prompt or completion text in records or logs', () => {
    const stored = JSON.stringify(srv.records) + srv.logs.join('\n');
    expect(srv.records.length).toBe(fixtures.filter(isLlm).length);
    for (const secret of secrets) expect(stored).not.toContain(secret);
  });
});
