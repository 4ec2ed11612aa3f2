/**
 * `tokenwarden serve --workers 2` as deployed: two worker processes behind one gRPC address, sharing
 * one Redis. Traffic from several Envoy connections is spread over both workers; a worker that is
 * killed is replaced; SIGTERM on the primary stops everything with exit 0 and every exchange is in
 * the shared inventory (the flush interval is longer than the test, so only the graceful shutdown of
 * each worker writes it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RESTART_POLICY, restartDelay } from '../src/cluster.js';
import { defaultConfig } from '../src/config/types.js';
import { RedisStore } from '../src/inventory/redis.js';
import { EnvoyEmulator } from './emulator/envoy.js';
import { SIDECAR } from './support/envoy-modes.js';
import { loadFixtures } from './support/fixtures.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { freePort } from './support/sidecar-process.js';
import { until } from './support/wait.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PREFIX = 'workers';
const CONNECTIONS = 4;
const ROUNDS = 3;

describe('restartDelay', () => {
  const p = DEFAULT_RESTART_POLICY;
  it('waits longer after each recent crash, up to the cap, and gives up on a crash loop', () => {
    const now = 1_000_000;
    expect(restartDelay([now], now)).toBe(p.baseDelayMs);
    expect(restartDelay([now - 2, now - 1, now], now)).toBe(4 * p.baseDelayMs);
    const loop = Array.from({ length: p.maxCrashes + 1 }, (_, i) => now - i);
    expect(restartDelay(loop, now)).toBeNull();
    expect(restartDelay(loop.slice(1), now)).toBe(Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (p.maxCrashes - 1)));
  });

  it('forgives crashes older than the window', () => {
    const now = 10_000_000;
    const old = Array.from({ length: 20 }, (_, i) => now - p.windowMs - i);
    expect(restartDelay([...old, now], now)).toBe(p.baseDelayMs);
  });
});

/** Pids of the processes holding an established TCP connection whose local port is `port` (Linux /proc). */
function pidsServing(port: number, pids: readonly number[]): Set<number> {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 01 = ESTABLISHED; field 9 = inode.
      if (f[1]?.endsWith(`:${portHex}`) && f[3] === '01' && f[9] !== undefined) inodes.add(f[9]);
    }
  }
  const serving = new Set<number>();
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (inodes.has(/^socket:\[(\d+)\]$/.exec(link)?.[1] ?? '')) serving.add(pid);
    }
  }
  return serving;
}

/** Worker pids in the order the primary announced them ready. */
function readyPids(stderr: string): number[] {
  return [...stderr.matchAll(/"msg":"worker ready","worker":\d+,"pid":(\d+)/g)].map((m) => Number(m[1]));
}

const fixtures = loadFixtures().filter((fx) => fx.expected.provider !== 'unknown' && fx.expected.status === 200 && fx.expected.error === null);

describe('tokenwarden serve --workers 2', () => {
  let redis: RedisServer;
  let dir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'tw-workers-'));
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      // SIGKILL on the primary would orphan the workers; the second SIGTERM kills them.
      child.kill('SIGTERM');
      child.kill('SIGTERM');
    }
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('spreads connections over both workers, replaces a killed one, and stops cleanly with every exchange recorded', async () => {
    const grpcPort = await freePort();
    const adminPort = await freePort();
    const file = path.join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        `admin: { address: "127.0.0.1:${adminPort}" }`,
        'consumer: { fingerprint_secret: test-secret }',
        'store:',
        '  type: redis',
        `  redis: { url: "${redis.url}", key_prefix: ${PREFIX} }`,
        '  flush_interval_ms: 10m',
        'logging: { level: info }',
        '',
      ].join('\n'),
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file, '--workers', '2', '--grpc-address', `127.0.0.1:${grpcPort}`], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));

    await until(() => stdout.includes('tokenwarden ready'), 'the ready line', 20_000);
    expect(stdout).toContain(`grpc=127.0.0.1:${grpcPort} admin=127.0.0.1:${adminPort} workers=2`);
    const first = readyPids(stderr);
    expect(new Set(first).size).toBe(2);

    // A crashed worker is replaced by a new process.
    process.kill(first[0]!, 'SIGKILL');
    await until(() => readyPids(stderr).length === 3, 'a replacement worker', 15_000);
    const workers = readyPids(stderr).slice(1);
    expect(new Set(workers).size).toBe(2);
    expect(workers).not.toContain(first[0]);

    // Separate connections (no shared subchannel), as from several Envoy threads.
    const envoys = Array.from(
      { length: CONNECTIONS },
      () => new EnvoyEmulator(`127.0.0.1:${grpcPort}`, { ...SIDECAR, grpc: { channel_options: { 'grpc.use_local_subchannel_pool': 1 } } }),
    );
    let exchanges = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(
          envoys.map(async (envoy, i) => {
            for (const fx of fixtures) {
              const r = await envoy.exchange({
                request: { headers: [...fx.request.headers.filter(([k]) => k !== 'x-consumer-id'), ['x-consumer-id', `app-${i}`]], body_chunks: fx.request.body_chunks },
                upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
              });
              expect(r.errors).toEqual([]);
              exchanges++;
            }
          }),
        );
      }
      expect(pidsServing(grpcPort, workers)).toEqual(new Set(workers));

      // The admin address shows the sum over the workers.
      const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^tokenwarden_extproc_streams_total ${exchanges}$`, 'm'));
      const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await Promise.all(envoys.map((e) => e.close()));
    }

    const shared = new RedisStore({ redis: { ...defaultConfig().store.redis, url: redis.url, key_prefix: PREFIX }, retentionHours: 24 });
    try {
      expect((await shared.inventory({})).total).toBe(0);
      proc.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
      const page = await shared.inventory({ limit: 1000 });
      expect(page.items.reduce((n, r) => n + r.requests, 0)).toBe(exchanges);
      expect(new Set(page.items.map((r) => r.key.consumer))).toEqual(new Set(envoys.map((_, i) => `app-${i}`)));
    } finally {
      await shared.close();
    }
  });
});
