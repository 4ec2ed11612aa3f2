/**
 * One of three `tokenwarden serve` processes on a shared Redis is SIGKILLed while it holds
 * reservations for requests in flight, then restarted. Proven here: the dead sidecar's reservations
 * expire with their lease (nobody settles them); the survivors serve every request meanwhile; the
 * restarted sidecar enforces the budgets and sanction policy defined through the admin API (read
 * back from Redis at start, before it reports ready), and the budget's counters carry on.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvoyEmulator, type ExchangeResult } from '../emulator/envoy.js';
import { headers, rawClient } from '../support/raw-client.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { eventually, until } from '../support/wait.js';
import { budgetLimit, chat, chatRequest, ENVOY, envoyTrouble, killAll, startFleetSidecar, type FleetSidecar } from './fleet.js';

const BUDGET = 'api-budget';
const HELD = 4;

async function adminWrite(s: FleetSidecar, method: string, route: string, body: unknown): Promise<void> {
  const res = await fetch(`http://${s.adminAddress}${route}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
}

describe('a sidecar SIGKILLed mid-stream, then restarted', () => {
  let redis: RedisServer;
  let dir: string;
  const sidecars: FleetSidecar[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'tw-sidecar-kill-'));
    const yaml = [
      'consumer: { fingerprint_secret: kill-test }',
      `store: { type: redis, redis: { url: "${redis.url}", key_prefix: kill }, flush_interval_ms: 100 }`,
      'governance: { lease_ms: 1000, registry_poll_ms: 100 }',
      'logging: { level: warn }',
    ].join('\n');
    for (let i = 0; i < 3; i++) sidecars.push(await startFleetSidecar(dir, `sidecar-${i}`, yaml));
  });

  afterAll(async () => {
    await killAll(sidecars);
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('its reservations expire, the others keep serving, and it comes back with the shared state', async () => {
    const [victim, ...survivors] = sidecars as [FleetSidecar, ...FleetSidecar[]];
    // Defined through one sidecar's admin API: stored in Redis, not in any config file.
    await adminWrite(victim, 'POST', '/api/v1/budgets', { id: BUDGET, mode: 'enforce', select: { consumers: ['kill-app'] }, limits: [{ requests: 100000, per: 'day' }] });
    await adminWrite(victim, 'PUT', '/api/v1/policies/global', { mode: 'enforce', allow: ['openai/gpt-4o-mini*'] });

    const send = (envoy: EnvoyEmulator, model?: string): Promise<ExchangeResult> => envoy.exchange(chat('kill-app', model ? { model } : {}));
    for (const s of sidecars) {
      const envoy = new EnvoyEmulator(s.grpcAddress, ENVOY);
      await eventually(async () => {
        expect((await send(envoy)).downstream.headers?.get('x-tokenwarden-budget')).toBe(BUDGET);
        expect((await send(envoy, 'gpt-4o')).downstream.status).toBe(403);
      });
      await envoy.close();
    }
    // Every sidecar has the budget now: each request it admits from here on is settled exactly once.
    await eventually(async () => expect(await budgetLimit(victim, BUDGET)).toMatchObject({ reserved: 0 }));
    const baseline = (await budgetLimit(victim, BUDGET)).used;
    const admitted: ExchangeResult[] = [];
    const counted = async (envoy: EnvoyEmulator): Promise<ExchangeResult> => {
      const r = await send(envoy);
      if (r.downstream.status === 200) admitted.push(r);
      return r;
    };

    // Requests in flight on the victim: admitted (reserved), waiting for their upstream.
    const client = rawClient(victim.grpcAddress);
    const held = Array.from({ length: HELD }, () => client.open());
    for (const s of held) {
      const request = chatRequest('kill-app');
      s.write({ request_headers: { headers: headers(request.headers) } });
      s.write({ request_body: { body: request.body, end_of_stream: true } });
    }
    for (const s of held) expect((await s.next(2)).map((a) => a.response)).toEqual(['request_headers', 'request_body']);

    // Traffic through the survivors before, during and after the kill.
    let running = true;
    const seen: ExchangeResult[] = [];
    const loops = survivors.map(async (s) => {
      const envoy = new EnvoyEmulator(s.grpcAddress, ENVOY);
      while (running) seen.push(await counted(envoy));
      await envoy.close();
    });
    await until(() => seen.length >= 10, 'traffic through the survivors');
    victim.process.child.kill('SIGKILL');
    await victim.process.exited;
    client.close();
    // The dead sidecar's reservations still hold their share until the lease runs out...
    expect((await budgetLimit(survivors[0]!, BUDGET)).reserved).toBeGreaterThanOrEqual(HELD);
    const atKill = seen.length;
    await until(() => seen.length >= atKill + 20, 'traffic through the survivors after the kill');
    running = false;
    await Promise.all(loops);
    expect(seen.flatMap(envoyTrouble)).toEqual([]);
    expect(seen.every((r) => r.downstream.status === 200)).toBe(true);
    // ...then nothing is reserved, though nobody settled or released them.
    await eventually(async () => expect(await budgetLimit(survivors[0]!, BUDGET)).toMatchObject({ reserved: 0 }), 5_000);

    // Restarted without polling the registry again: what it enforces, it read at start.
    writeFileSync(victim.file, readFileSync(victim.file, 'utf8').replace('registry_poll_ms: 100', 'registry_poll_ms: 3600000'));
    await victim.restart();
    const envoy = new EnvoyEmulator(victim.grpcAddress, ENVOY);
    const refused = await send(envoy, 'gpt-4o');
    expect(refused.downstream.status).toBe(403);
    expect(refused.upstream.contacted).toBe(false);
    // (A first decision slower than the ledger deadline is admitted without budget headers: retried.)
    await eventually(async () => expect((await counted(envoy)).downstream.headers?.get('x-tokenwarden-budget')).toBe(BUDGET));
    await envoy.close();
    // The counters carried on: what was settled before, plus each admitted request since, once.
    await eventually(async () => expect(await budgetLimit(victim, BUDGET)).toMatchObject({ used: baseline + admitted.length, reserved: 0 }));
  });
});
