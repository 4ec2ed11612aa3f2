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
});
