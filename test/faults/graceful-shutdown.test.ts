/**
 * SIGTERM to a `tokenwarden serve` process (Redis store) while 500 streams are in flight. Proven
 * here: every stream is either finished (its exchange completed within grpc.shutdown_grace_ms) or
 * handed back (ended with status OK, so Envoy continues the request unprocessed); none hangs or
 * fails; the process exits 0; and every exchange is in the shared inventory afterwards, those that
 * got their final answer and those handed back (recorded as aborted).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator, type ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { until } from '../support/wait.js';
import { chat, envoyTrouble, inventoryRequests, killAll, metricValue, startFleetSidecar, type FleetSidecar } from './fleet.js';

const PREFIX = 'shutdown';
const STREAMS = 500;
const HANDED_BACK = 100;
const GRACE_MS = 1_500;

const streamsActive = (s: FleetSidecar): Promise<number> => metricValue(s, 'tokenwarden_extproc_streams_active');

describe('graceful shutdown under load', () => {
  let redis: RedisServer;
  let dir: string;
  let sidecar: FleetSidecar;

  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'tw-shutdown-'));
    const yaml = [
      'consumer: { fingerprint_secret: shutdown-test }',
      `store: { type: redis, redis: { url: "${redis.url}", key_prefix: ${PREFIX} } }`,
      'logging: { level: warn }',
    ].join('\n');
    sidecar = await startFleetSidecar(dir, 'sidecar', yaml, { shutdownGraceMs: GRACE_MS });
  });

  afterAll(async () => {
    if (sidecar) await killAll([sidecar]);
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`SIGTERM with ${STREAMS} streams in flight finishes or hands back every one and loses no record`, async () => {
    // Five Envoy connections; every exchange waits on its upstream, so its side stream stays open.
    const envoys = Array.from({ length: 5 }, () => new EnvoyEmulator(sidecar.grpcAddress, SIDECAR));
    const exchanges: Promise<ExchangeResult>[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const slow = i < HANDED_BACK;
      // Fast upstreams answer well within the grace period; slow ones outlast it.
      const input = chat(slow ? 'slow-app' : 'fast-app', { upstreamDelayMs: slow ? 4_000 : 300 });
      exchanges.push(envoys[i % envoys.length]!.exchange(input));
    }
    await until(async () => (await streamsActive(sidecar)) === STREAMS, `${STREAMS} open streams`);
    sidecar.process.child.kill('SIGTERM');
    const results = await Promise.all(exchanges);
    expect(await sidecar.process.exited, sidecar.process.stderr()).toBe(0);
    for (const e of envoys) await e.close();

    expect(results.flatMap(envoyTrouble)).toEqual([]);
    expect(results.every((r) => r.downstream.status === 200 && r.downstream.localReply === undefined)).toBe(true);
    // Finished: the last answer carried the exchange's metadata, and Envoy closed the stream.
    const finished = (r: ExchangeResult): boolean =>
      (r.dynamicMetadata.tokenwarden as { output_tokens?: number } | undefined)?.output_tokens === 5 && r.streamEnd?.closedBy === 'envoy';
    // Handed back: the server ended the RPC with OK (Envoy continued unprocessed).
    const handedBack = (r: ExchangeResult): boolean => r.streamEnd?.closedBy === 'server' && r.streamEnd.code === 0 && r.upstream.contacted;
    expect(results.filter((r) => !finished(r) && !handedBack(r))).toEqual([]);
    // Upstreams slower than the grace period are always handed back; most fast ones finish in it.
    expect(results.slice(0, HANDED_BACK).every(handedBack)).toBe(true);
    expect(results.filter(finished).length).toBeGreaterThan((STREAMS - HANDED_BACK) / 2);

    expect(sidecar.process.stderr()).not.toContain('inventory deltas dropped');
    // Every exchange is recorded, finished or handed back (the latter as aborted).
    expect(await inventoryRequests(redis.url, PREFIX)).toEqual({ 'fast-app': STREAMS - HANDED_BACK, 'slow-app': HANDED_BACK });
  });
});
