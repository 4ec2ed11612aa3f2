import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest, PROCESS_PATH, ProcessingRequest } from '../src/extproc/protocol.js';
import { startNoopServer } from '../bench/noop-server.js';
import { parseDriverArgs, parseDuration } from '../bench/driver/args.js';
import { prepare, type CloseStyle } from '../bench/driver/exchange.js';
import { frame, FrameReader } from '../bench/driver/grpc-frame.js';
import { ghzConfig } from '../bench/driver/ghz-config.js';
import { runLoad, DEFAULT_LOAD } from '../bench/driver/load.js';
import { histogram, percentile, type BenchReport } from '../bench/driver/report.js';
import { BENCH_BUDGETS_YAML, findScenario, SCENARIOS, scenarioSteps, type Scenario } from '../bench/driver/scenarios.js';
import { runDriver } from '../bench/processes.js';
import { parseConfig } from '../src/config/load.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startTestServer, type TestServer } from './support/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Exchanges per scenario: enough to interleave streams, few enough for a 2-core box. */
const countFor = (s: Scenario): number => (s.name === 'prompt-1mb' ? 30 : 200);

const load = (target: string, s: Scenario, close: CloseStyle = DEFAULT_LOAD.close) =>
  runLoad({ ...DEFAULT_LOAD, target, scenario: s.name, concurrency: 8, durationMs: 0, count: countFor(s), warmup: 0, close });

/** Exchanges the server ended itself (before or after the driver's END_STREAM). */
const endedByServer = (r: BenchReport): number => r.closes.endedByServer + r.closes.endedAfterHalfClose;
const failed = (r: BenchReport): number => Object.values(r.errorDistribution).reduce((a, b) => a + b, 0);

/**
 * Every exchange completed, and each RPC ended one of the accepted ways: by the server (status OK)
 * or reset by the driver after the last answer, as Envoy resets it (status Canceled, not an error).
 */
function expectCompleted(r: BenchReport, count: number): void {
  expect(r.errorDistribution).toEqual({});
  expect(r.count).toBe(count);
  expect(endedByServer(r) + r.closes.resetByDriver).toBe(count);
  // A reset RPC is "Canceled", or OK when the server's trailers were already on the way.
  expect({ OK: 0, Canceled: 0, ...r.statusCodeDistribution }).toEqual({ OK: count - (r.statusCodeDistribution.Canceled ?? 0), Canceled: r.statusCodeDistribution.Canceled ?? 0 });
  expect(r.statusCodeDistribution.Canceled ?? 0).toBeLessThanOrEqual(r.closes.resetByDriver);
  // Fewer streams than a rotation needs, on a server that rotates: no GOAWAY of any kind.
  expect(r.sessions).toMatchObject({ goaways: {}, lost: 0 });
}

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

describe('scenario data', () => {
  const consumerOf = (s: Scenario, exchange: number): string | undefined =>
    scenarioSteps(s, exchange)[0]!.message.request_headers!.headers!.headers!.find((h) => h.key === 'x-consumer-id')?.raw_value?.toString();

  it('churn-10k cycles through 10,000 consumers, its other messages identical', () => {
    const s = findScenario('churn-10k');
    const seen = new Set(Array.from({ length: 10_000 }, (_, i) => consumerOf(s, i)));
    expect(seen.size).toBe(10_000);
    expect(consumerOf(s, 10_000)).toBe(consumerOf(s, 0));
    const encoded = (i: number) => scenarioSteps(s, i).slice(1).map((st) => encodeRequest(st.message).toString('base64'));
    expect(encoded(7)).toEqual(encoded(0));
  });

  it('every other scenario has one consumer; the budget scenarios send chat traffic', () => {
    for (const s of SCENARIOS.filter((x) => x.name !== 'churn-10k')) expect(consumerOf(s, 0)).toBe(consumerOf(s, 1));
    for (const name of ['budget-memory', 'budget-redis', 'churn-10k']) {
      const steps = scenarioSteps(findScenario(name)).slice(1).map((st) => encodeRequest(st.message));
      expect(steps).toEqual(scenarioSteps(findScenario('chat')).slice(1).map((st) => encodeRequest(st.message)));
    }
  });

  it('the bench budget is a valid enforce budget that selects the chat traffic', () => {
    const [budget, ...rest] = parseConfig(BENCH_BUDGETS_YAML, 'bench').budgets;
    expect(rest).toEqual([]);
    expect(budget).toMatchObject({ id: 'bench-enforce', mode: 'enforce', selector: { providers: ['openai'] } });
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

  it('closes like Envoy by default; --close graceful selects the graceful close', () => {
    expect(parseDriverArgs(['--target', 'h:1', '--scenario', 'chat']).close).toBe('envoy');
    expect(parseDriverArgs(['--target', 'h:1', '--scenario', 'chat', '--close', 'graceful']).close).toBe('graceful');
    expect(() => parseDriverArgs(['--target', 'h:1', '--scenario', 'chat', '--close', 'never'])).toThrow(/--close/);
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
      expectCompleted(r, countFor(s));
      expect(r.closes.style).toBe('envoy');
      // Observability mode: Envoy defers its close until the server ends the RPC, which it does.
      if (s.observability) expect(r.closes).toMatchObject({ endedByServer: countFor(s), resetByDriver: 0 });
      expect(r.answers).toEqual(expectedAnswers(s));
      expect(r.modeOverrides).toBe(0);
      expect(r.latencyDistribution.map((l) => l.percentage)).toEqual([10, 25, 50, 75, 90, 95, 99]);
    });
  }

  it('graceful close: every RPC ends with the server\'s OK status, none is reset', async () => {
    for (const name of ['non-llm', 'chat', 'observability']) {
      const s = findScenario(name);
      const r = await load(noop.address, s, 'graceful');
      expectCompleted(r, countFor(s));
      expect(r.closes).toMatchObject({ style: 'graceful', resetByDriver: 0 });
      expect(r.statusCodeDistribution).toEqual({ OK: countFor(s) });
    }
  });

  it('ends the RPC itself right after answering the message that ends the response', async () => {
    const session = http2.connect(`http://${noop.address}`);
    try {
      const rpc = (steps: readonly Buffer[]) =>
        new Promise<{ answers: number; status: string | undefined }>((resolve, reject) => {
          // Never half-closed: only the server can end it.
          const st = session.request({ ':method': 'POST', ':path': PROCESS_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
          const reader = new FrameReader();
          let answers = 0;
          let status: string | undefined;
          st.on('trailers', (h) => (status = String(h['grpc-status'])));
          st.on('data', (c: Buffer) => {
            answers += reader.push(c).length;
            if (answers < steps.length) st.write(steps[answers]!);
          });
          st.on('error', reject);
          st.on('end', () => {
            st.close();
            resolve({ answers, status });
          });
          st.write(steps[0]!);
          setTimeout(() => {
            st.close(http2.constants.NGHTTP2_CANCEL);
            resolve({ answers, status: 'still open' });
          }, 2000).unref();
        });
      const frames = (name: string) => prepare(findScenario(name)).steps.map((x) => x.frame);
      // Response body ending the response (chat), and response headers with end_of_stream.
      expect(await rpc(frames('chat'))).toEqual({ answers: 4, status: '0' });
      const headersOnlyResponse = scenarioSteps(findScenario('chat')).slice(0, 3);
      headersOnlyResponse[2]!.message.response_headers!.end_of_stream = true;
      expect(await rpc(headersOnlyResponse.map((x) => frame(encodeRequest(x.message))))).toEqual({ answers: 3, status: '0' });
    } finally {
      session.close();
    }
  });

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
      expect(report).toMatchObject({ count: 50, errorDistribution: {}, closes: { style: 'envoy' }, sessions: { goaways: {} } });
      for (const key of ['total', 'average', 'fastest', 'slowest', 'rps', 'histogram', 'phases', 'closes', 'sessions', 'driver']) expect(report).toHaveProperty(key);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--hold: waits after the warm-up for the go-ahead, then measures over the same connection', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-driver-'));
    try {
      const out = path.join(dir, 'chat.json');
      let warmed = 0;
      let warmDone = false;
      await runDriver(['--target', noop.address, '--scenario', 'chat', '--count', '40', '--warmup', '20', '--concurrency', '1', '--out', out], async () => {
        warmed++;
        // Longer than the 40 exchanges take: a driver that did not wait would have exited by now.
        await new Promise((resolve) => setTimeout(resolve, 300));
        warmDone = true;
      });
      const report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
      expect(warmed).toBe(1);
      expect(warmDone).toBe(true);
      expect(report.count).toBe(40);
      expect(report.sessions).toMatchObject({ opened: 1, lost: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('open loop starts the asked number of exchanges', async () => {
    const r = await runLoad({ ...DEFAULT_LOAD, target: noop.address, scenario: 'chat', rps: 400, concurrency: 32, durationMs: 0, count: 100, warmup: 0 });
    expectCompleted(r, 100);
  });
});

describe('driver against tokenwarden', () => {
  let tw: TestServer;
  beforeAll(async () => {
    tw = await startTestServer();
  });
  afterAll(() => tw.stop());

  // The budget scenarios need their own server (below); the same traffic on this one is chat's.
  for (const s of SCENARIOS.filter((x) => !x.setup.budget && x.setup.store === 'memory')) {
    it(`${s.name}: every exchange completes and is recorded`, async () => {
      const before = tw.records.length;
      const r = await load(tw.address, s);
      expectCompleted(r, countFor(s));
      if (s.observability) expect(r.closes).toMatchObject({ endedByServer: countFor(s), resetByDriver: 0 });
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

  it('graceful close: tokenwarden ends every RPC itself, none waits for a reset', async () => {
    for (const name of ['non-llm', 'chat', 'chat-stream']) {
      const s = findScenario(name);
      const r = await load(tw.address, s, 'graceful');
      expectCompleted(r, countFor(s));
      expect(r.closes.resetByDriver).toBe(0);
      expect(r.statusCodeDistribution).toEqual({ OK: countFor(s) });
      // Ended right after the last answer, not after the 1 s Envoy would wait.
      expect(r.slowest).toBeLessThan(900e6);
    }
  });
});

describe('driver: HTTP/2 sessions under Envoy\'s resets', () => {
  /** Enough streams on one connection to pass nghttp2's burst of 1,000 resets. */
  const COUNT = 1500;
  const many = (target: string, close: CloseStyle) =>
    runLoad({ ...DEFAULT_LOAD, target, scenario: 'non-llm', concurrency: 16, connections: 1, durationMs: 0, count: COUNT, warmup: 0, close });

  it('without connection rotation, Envoy\'s close trips the rapid-reset limit: GOAWAY(INTERNAL_ERROR), failed exchanges, a new connection', async () => {
    const tw = await startTestServer((c) => {
      c.grpc.rotate_connections = false;
    });
    try {
      const r = await many(tw.address, 'envoy');
      expect(r.count).toBe(COUNT);
      expect(r.sessions.goaways.INTERNAL_ERROR).toBeGreaterThanOrEqual(1);
      expect(failed(r)).toBeGreaterThan(0);
      expect(r.sessions.opened).toBeGreaterThanOrEqual(2);
      expect(r.closes.resetByDriver).toBeGreaterThan(0);
      expect(endedByServer(r) + r.closes.resetByDriver + failed(r)).toBe(COUNT);
    } finally {
      await tw.stop();
    }
  });

  it('without connection rotation, the graceful close resets nothing: no GOAWAY, nothing failed', async () => {
    const tw = await startTestServer((c) => {
      c.grpc.rotate_connections = false;
    });
    try {
      const r = await many(tw.address, 'graceful');
      expect(r.errorDistribution).toEqual({});
      expect(r.closes.resetByDriver).toBe(0);
      expect(endedByServer(r)).toBe(COUNT);
      expect(r.sessions).toMatchObject({ opened: 1, goaways: {}, lost: 0 });
    } finally {
      await tw.stop();
    }
  });

  it('the no-op server rotates its connections like tokenwarden: Envoy\'s close costs graceful GOAWAYs only', async () => {
    const noop = await startNoopServer('127.0.0.1:0');
    try {
      const r = await many(noop.address, 'envoy');
      expect(r.errorDistribution).toEqual({});
      expect(r.closes.resetByDriver).toBe(COUNT);
      expect(Object.keys(r.sessions.goaways)).toEqual(['NO_ERROR']);
      expect(r.sessions.opened).toBeGreaterThanOrEqual(2);
    } finally {
      await noop.stop();
    }
  });
});

describe('driver against tokenwarden: churn and budget scenarios', () => {
  it('churn-10k: each exchange is recorded under its own consumer', async () => {
    const tw = await startTestServer();
    try {
      const s = findScenario('churn-10k');
      const r = await load(tw.address, s);
      expectCompleted(r, countFor(s));
      const records = await tw.waitForRecords(countFor(s), 20_000);
      const consumers = new Set(records.map((x) => x.consumer?.id));
      expect(consumers.size).toBe(countFor(s));
      expect(consumers.has('bench-consumer-0')).toBe(true);
    } finally {
      await tw.stop();
    }
  });

  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.close());

  for (const name of ['budget-memory', 'budget-redis']) {
    it(`${name}: one admitted ledger decision per exchange, nothing refused`, async () => {
      const s = findScenario(name);
      const { budgets } = parseConfig(BENCH_BUDGETS_YAML, 'bench');
      const tw = await startTestServer((c) => {
        c.budgets = budgets;
        // What is counted here is decisions, not their speed: a loaded CI machine must not turn a
        // slow Redis round trip into a store error.
        c.governance.ledger_timeout_ms = 2_000;
        if (s.setup.store === 'redis') {
          c.store.type = 'redis';
          c.store.redis.url = redis.url;
        }
      });
      try {
        const r = await load(tw.address, s);
        expectCompleted(r, countFor(s));
        expect(r.answers).toEqual(expectedAnswers(s));
        const records = await tw.waitForRecords(countFor(s), 20_000);
        expect(records.every((x) => x.blockedBy.length === 0)).toBe(true);
        // The budget is far from its limit: once its counters were seen, prompts are reserved at their
        // ceiling and never tokenised.
        expect(records.filter((x) => x.promptEstimate !== null).length).toBeLessThan(countFor(s) / 2);
        const decisions = (await tw.server.metrics.budgetDecisions.get()).values;
        expect(decisions.map((v) => [v.labels.budget, v.labels.decision, v.value])).toEqual([['bench-enforce', 'admitted', countFor(s)]]);
        expect((await tw.server.metrics.budgetStoreErrors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);
      } finally {
        await tw.stop();
      }
    });
  }
});
