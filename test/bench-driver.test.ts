import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest, ProcessingRequest } from '../src/extproc/protocol.js';
import { startNoopServer } from '../bench/noop-server.js';
import { parseDriverArgs, parseDuration } from '../bench/driver/args.js';
import { frame, FrameReader } from '../bench/driver/grpc-frame.js';
import { ghzConfig } from '../bench/driver/ghz-config.js';
import { runLoad, DEFAULT_LOAD } from '../bench/driver/load.js';
import { histogram, percentile } from '../bench/driver/report.js';
import { SCENARIOS, scenarioSteps, type Scenario } from '../bench/driver/scenarios.js';
import { startTestServer, type TestServer } from './support/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Exchanges per scenario: enough to interleave streams, few enough for a 2-core box. */
const countFor = (s: Scenario): number => (s.name === 'prompt-1mb' ? 30 : 200);

const load = (target: string, s: Scenario) =>
  runLoad({ ...DEFAULT_LOAD, target, scenario: s.name, concurrency: 8, durationMs: 0, count: countFor(s), warmup: 0 });

/** Answers the driver must have seen per exchange: one per message, none in observability mode. */
function expectedAnswers(s: Scenario): Record<string, number> {
  const out: Record<string, number> = {};
  if (s.observability) return out;
  for (const step of scenarioSteps(s)) out[step.phase] = (out[step.phase] ?? 0) + countFor(s);
  return out;
}

describe('gRPC framing', () => {
  it('reassembles messages split across chunks and packed into one', () => {
    const a = Buffer.from('first message');
    const b = Buffer.alloc(70_000, 7);
    const wire = Buffer.concat([frame(a), frame(b), frame(Buffer.alloc(0))]);
    const reader = new FrameReader();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 3) got.push(...reader.push(wire.subarray(i, i + 3)));
    expect(got.map((m) => m.length)).toEqual([a.length, b.length, 0]);
    expect(got[0]!.toString()).toBe('first message');
    expect(new FrameReader().push(wire)).toHaveLength(3);
  });

  it('rejects compressed frames', () => {
    const f = frame(Buffer.from('x'));
    f[0] = 1;
    expect(() => new FrameReader().push(f)).toThrow(/compressed/);
  });
});

describe('ghz report shape', () => {
  const sorted = Float64Array.from([1e6, 2e6, 3e6, 4e6, 5e6, 6e6, 7e6, 8e6, 9e6, 10e6]);
  it('takes nearest-rank percentiles in ns', () => {
    expect(percentile(sorted, 50)).toBe(5e6);
    expect(percentile(sorted, 99)).toBe(10e6);
    expect(percentile(sorted, 10)).toBe(1e6);
  });
  it('builds ghz 11-bucket histogram with marks in seconds that accounts for every sample', () => {
    const h = histogram(sorted);
    expect(h).toHaveLength(11);
    expect(h[0]!.mark).toBeCloseTo(0.001);
    expect(h[10]!.mark).toBeCloseTo(0.01);
    expect(h.reduce((n, b) => n + b.count, 0)).toBe(10);
    expect(h.reduce((n, b) => n + b.frequency, 0)).toBeCloseTo(1);
  });
});

describe('driver options', () => {
  it('parses durations and defaults to a time bound only without --count', () => {
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('soon')).toThrow(/duration/);
    expect(parseDriverArgs(['--target', 'h:1', '--scenario', 'chat']).durationMs).toBe(DEFAULT_LOAD.durationMs);
    const counted = parseDriverArgs(['--target', 'h:1', '--scenario', 'chat', '--count', '10']);
    expect([counted.count, counted.durationMs]).toEqual([10, 0]);
    expect(() => parseDriverArgs(['--scenario', 'chat'])).toThrow(/--target/);
  });
});

describe('ghz configs in bench/ghz', () => {
  for (const s of SCENARIOS) {
    it(`${s.name}.json is current and its messages encode with our protos`, () => {
      const file = path.join(ROOT, 'bench/ghz', `${s.name}.json`);
      const config = JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof ghzConfig>;
      expect(config, 'regenerate with: npx tsx bench/ghz/generate.ts').toEqual(JSON.parse(JSON.stringify(ghzConfig(s))));
      expect(config.call).toBe('envoy.service.ext_proc.v3.ExternalProcessor.Process');
      const steps = scenarioSteps(s);
      expect(config.data).toHaveLength(steps.length);
      config.data.forEach((json, i) => {
        const wire = Buffer.from(ProcessingRequest.encode(ProcessingRequest.fromObject(json)).finish());
        expect(wire.equals(encodeRequest(steps[i]!.message))).toBe(true);
        expect(decodeRequest(wire).request).toBe(steps[i]!.phase);
      });
    });
  }
});

describe('driver against the no-op server', () => {
  let noop: Awaited<ReturnType<typeof startNoopServer>>;
  beforeAll(async () => {
    noop = await startNoopServer('127.0.0.1:0');
  });
  afterAll(() => noop.stop());

  for (const s of SCENARIOS) {
    it(`${s.name}: every exchange completes with one answer of the right kind per message`, async () => {
      const r = await load(noop.address, s);
      expect(r.errorDistribution).toEqual({});
      expect(r.count).toBe(countFor(s));
      expect(r.statusCodeDistribution).toEqual({ OK: countFor(s) });
      expect(r.answers).toEqual(expectedAnswers(s));
      expect(r.modeOverrides).toBe(0);
      expect(r.latencyDistribution.map((l) => l.percentage)).toEqual([10, 25, 50, 75, 90, 95, 99]);
    });
  }

  it('runs as a separate process and writes a ghz-format report', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-driver-'));
    try {
      const out = path.join(dir, 'chat.json');
      await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'bench/driver/main.ts', '--target', noop.address, '--scenario', 'chat', '--count', '50', '--warmup', '10', '--out', out],
        { cwd: ROOT },
      );
      const report = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
      expect(report).toMatchObject({ count: 50, statusCodeDistribution: { OK: 50 }, errorDistribution: {} });
      for (const key of ['total', 'average', 'fastest', 'slowest', 'rps', 'histogram', 'phases', 'driver']) expect(report).toHaveProperty(key);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('open loop starts the asked number of exchanges', async () => {
    const r = await runLoad({ ...DEFAULT_LOAD, target: noop.address, scenario: 'chat', rps: 400, concurrency: 32, durationMs: 0, count: 100, warmup: 0 });
    expect(r.statusCodeDistribution).toEqual({ OK: 100 });
  });
});

describe('driver against tokenwarden', () => {
  let tw: TestServer;
  beforeAll(async () => {
    tw = await startTestServer();
  });
  afterAll(() => tw.stop());

  for (const s of SCENARIOS) {
    it(`${s.name}: every exchange completes and is recorded`, async () => {
      const before = tw.records.length;
      const r = await load(tw.address, s);
      expect(r.errorDistribution).toEqual({});
      expect(r.statusCodeDistribution).toEqual({ OK: countFor(s) });
      if (s.headersOnly) {
        // Non-LLM traffic: one round trip, the rest switched off by a mode_override.
        expect(r.modeOverrides).toBe(countFor(s));
        expect(r.answers).toEqual({ request_headers: countFor(s) });
        return;
      }
      expect(r.answers).toEqual(expectedAnswers(s));
      const records = (await tw.waitForRecords(before + countFor(s), 20_000)).slice(before);
      expect(records).toHaveLength(countFor(s));
      expect(new Set(records.map((x) => x.provider)).size).toBe(1);
      expect(records.every((x) => x.usage != null)).toBe(true);
    });
  }
});
