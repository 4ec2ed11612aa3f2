import { describe, expect, it } from 'vitest';
import {
  admissionsPerCore,
  capacityOf,
  commandStats,
  coresAt,
  diffSnapshots,
  fmt,
  MAX_NESTED_BUDGETS,
  nestedBudgetsYaml,
  nextRate,
  parseInfo,
  parseMonitorLine,
  procStatCpuUs,
  quantile,
  redisLoad,
  scriptSha,
  scriptUsec,
  snapshotOf,
  stepOk,
  tallyMonitor,
  unescapeMonitor,
  usPerAdmission,
  workloadCommands,
  type RateStep,
  type SearchOptions,
} from '../bench/capacity-model.js';
import { parseConfig } from '../src/config/load.js';
import { PolicySet } from '../src/governance/policy-set.js';

const INFO_BEFORE = [
  '# Stats',
  'total_connections_received:4',
  'total_commands_processed:100',
  '# CPU',
  'used_cpu_sys:1.500000',
  'used_cpu_user:2.250000',
  '# Clients',
  'connected_clients:3',
  '# Commandstats',
  'cmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

const INFO_AFTER = [
  'total_commands_processed:190',
  'used_cpu_sys:1.600000',
  'used_cpu_user:2.300000',
  'connected_clients:3',
  'cmdstat_evalsha:calls=14,usec=800,usec_per_call=57.14,rejected_calls=0,failed_calls=0',
  'cmdstat_hincrby:calls=80,usec=90,usec_per_call=1.12,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=6,usec=120,usec_per_call=20.00,rejected_calls=0,failed_calls=0',
].join('\r\n');

const step = (rate: number, over: Partial<RateStep> = {}): RateStep => ({
  rate,
  achieved: rate,
  p50Ms: 1,
  p99Ms: 5,
  errors: 0,
  redisCores: rate / 10_000,
  redisUsPerAdmission: 100,
  generatorCores: 0.3,
  ...over,
});

const SEARCH: SearchOptions = { start: 1_000, factor: 2, refinements: 2, max: 100_000, deadlineMs: 50 };

describe('bench capacity: Redis INFO', () => {
  it('reads fields, command stats, CPU and commands, and their difference', () => {
    const info = parseInfo(INFO_BEFORE);
    expect(info.total_commands_processed).toBe('100');
    expect(info['# Stats']).toBeUndefined();
    expect(commandStats(info).get('evalsha')).toEqual({ calls: 10, usec: 500 });
    const before = snapshotOf(info);
    expect(before).toMatchObject({ commands: 100, cpuSeconds: 3.75, clients: 3 });
    const delta = diffSnapshots(before, snapshotOf(parseInfo(INFO_AFTER)));
    expect(delta.commands).toBe(90);
    expect(delta.cpuUs).toBe(150_000);
    expect(delta.calls).toEqual({ evalsha: 4, hincrby: 80, info: 4 });
    expect(delta.usec.evalsha).toBe(300);
    expect(scriptUsec(delta)).toBe(300);
    // The bench's own INFO calls are not the workload's.
    expect(workloadCommands(delta)).toBe(86);
  });
});

describe('bench capacity: /proc/<pid>/stat', () => {
  it('adds utime and stime (clock ticks) even when the command name holds spaces and parens', () => {
    const fields = ['S', '1', '2', '3', '0', '-1', '4194560', '100', '0', '0', '0', '250', '50', '0', '0', '20', '0', '12'];
    expect(procStatCpuUs(`1234 (node) ${fields.join(' ')}`)).toBe(3_000_000);
    expect(procStatCpuUs(`1234 (my (odd) name) ${fields.join(' ')}`)).toBe(3_000_000);
    expect(() => procStatCpuUs('nonsense')).toThrow();
  });
});

describe('bench capacity: MONITOR', () => {
  const reserve = 'local reserve = 1';
  const finalise = 'local finalise = 1';
  const names = new Map([
    [scriptSha(reserve), 'RESERVE_LUA'],
    [scriptSha(finalise), 'FINALISE_LUA'],
  ]);

  it('parses client and script lines, with or without the leading +', () => {
    expect(parseMonitorLine('+1733300000.123456 [0 127.0.0.1:5555] "evalsha" "abc" "1" "k"')).toEqual({ source: '127.0.0.1:5555', command: 'evalsha', arg1: 'abc' });
    expect(parseMonitorLine('1733300000.123470 [0 lua] "ZADD" "k" "1" "m"')).toEqual({ source: 'lua', command: 'zadd', arg1: 'k' });
    expect(parseMonitorLine('1733300000.1 [0 unix:/tmp/r.sock] "ping"')).toEqual({ source: 'unix:/tmp/r.sock', command: 'ping', arg1: null });
    expect(parseMonitorLine('1733300000.1 [0 127.0.0.1:1] "get" "say \\"hi\\""')?.arg1).toBe('say \\"hi\\"');
    expect(parseMonitorLine('OK')).toBeNull();
    expect(parseMonitorLine('')).toBeNull();
  });

  it('undoes MONITOR quoting', () => {
    expect(unescapeMonitor('a\\"b\\\\c\\nd\\x41')).toBe('a"b\\c\ndA');
  });

  it('attributes each script call and the commands it ran, and counts other client commands', () => {
    const lines = [
      `1.0 [0 127.0.0.1:1] "evalsha" "${scriptSha(reserve)}" "1" "k"`,
      '1.1 [0 lua] "EXISTS" "k"',
      '1.2 [0 lua] "ZADD" "k" "1" "m"',
      `1.3 [0 127.0.0.1:2] "evalsha" "${scriptSha(finalise)}" "1" "k"`,
      '1.4 [0 lua] "SET" "d" "1"',
      // A NOSCRIPT fallback: EVAL with the source, named by its sha.
      `1.5 [0 127.0.0.1:1] "eval" "${reserve}" "1" "k"`,
      '1.6 [0 lua] "EXISTS" "k"',
      '1.7 [0 127.0.0.1:3] "evalsha" "ffffffffffffffffffffffffffffffffffffffff" "1" "x"',
      '1.8 [0 lua] "HSET" "x" "a" "1"',
      '1.9 [0 127.0.0.1:3] "get" "version"',
      // The bench's own commands, and a lua line with no script before it, count for nothing.
      '2.0 [0 127.0.0.1:9] "info" "stats"',
      '2.1 [0 lua] "GET" "orphan"',
    ];
    expect(tallyMonitor(lines, names)).toEqual({
      scripts: {
        // The EVAL ran one command: it returned at once.
        RESERVE_LUA: { calls: 2, inner: 3, atOnce: 1, atOnceInner: 1 },
        FINALISE_LUA: { calls: 1, inner: 1, atOnce: 1, atOnceInner: 1 },
        'sha:ffffffff': { calls: 1, inner: 1, atOnce: 1, atOnceInner: 1 },
      },
      other: { get: 1 },
    });
  });

  it('counts the calls that returned at once (a settlement sent again), the last one too', () => {
    const call = `1.0 [0 127.0.0.1:1] "evalsha" "${scriptSha(finalise)}" "1" "k"`;
    const lua = '1.1 [0 lua] "SET" "done" "1" "NX"';
    const lines = [call, lua, '1.2 [0 lua] "SMEMBERS" "k"', '1.3 [0 lua] "DEL" "k"', call, lua, call];
    expect(tallyMonitor(lines, names).scripts.FINALISE_LUA).toEqual({ calls: 3, inner: 4, atOnce: 2, atOnceInner: 1 });
  });
});

describe('bench capacity: the rate search', () => {
  it('judges a step by its p99, its errors and whether the rate was served', () => {
    expect(stepOk(step(1000), 50)).toBe(true);
    expect(stepOk(step(1000, { p99Ms: 50 }), 50)).toBe(false);
    expect(stepOk(step(1000, { errors: 1 }), 50)).toBe(false);
    expect(stepOk(step(1000, { achieved: 940 }), 50)).toBe(false);
    expect(stepOk(step(1000, { achieved: 960 }), 50)).toBe(true);
  });

  it('grows geometrically while steps pass, up to the maximum', () => {
    expect(nextRate([], SEARCH)).toBe(1000);
    expect(nextRate([step(1000)], SEARCH)).toBe(2000);
    expect(nextRate([step(1000), step(2000)], SEARCH)).toBe(4000);
    expect(nextRate([step(80_000)], SEARCH)).toBe(100_000);
    expect(nextRate([step(100_000)], SEARCH)).toBeNull();
  });

  it('bisects between the highest pass and the lowest failure, `refinements` times', () => {
    const fail = (rate: number) => step(rate, { p99Ms: 400 });
    const steps = [step(1000), step(2000), step(4000), fail(8000)];
    expect(nextRate(steps, SEARCH)).toBe(6000);
    steps.push(step(6000));
    expect(nextRate(steps, SEARCH)).toBe(7000);
    steps.push(fail(7000));
    expect(nextRate(steps, SEARCH)).toBeNull();
    expect(capacityOf(steps, 50)).toBe(6000);
    expect(nextRate([fail(1000)], { ...SEARCH, refinements: 0 })).toBeNull();
    // A first step that fails: bisect down towards zero.
    expect(nextRate([fail(1000)], SEARCH)).toBe(500);
  });

  it('takes no rate above a failure as the capacity, and 0 when nothing passed', () => {
    const steps = [step(1000), step(2000, { errors: 3 }), step(1500)];
    expect(capacityOf(steps, 50)).toBe(1500);
    expect(capacityOf([step(1000, { p99Ms: 80 })], 50)).toBe(0);
    expect(capacityOf([], 50)).toBe(0);
  });

  it('takes the Redis CPU per admission of the highest passing rate', () => {
    const steps = [step(1000, { redisUsPerAdmission: 130 }), step(4000, { redisUsPerAdmission: 60 }), step(8000, { redisUsPerAdmission: 50, p99Ms: 90 })];
    expect(usPerAdmission(steps, 50)).toBe(60);
    expect(usPerAdmission([step(1000, { errors: 1 })], 50)).toBeNull();
  });

  it('nearest-rank quantiles', () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(sorted, 0.5)).toBe(50);
    expect(quantile(sorted, 0.99)).toBe(99);
    expect(quantile(sorted, 1)).toBe(100);
    expect(quantile(new Float64Array(0), 0.99)).toBe(0);
  });
});

describe('bench capacity: the model', () => {
  it('one Redis core carries 1e6 / µs admissions per second', () => {
    expect(admissionsPerCore(50)).toBe(20_000);
    expect(admissionsPerCore(250)).toBe(4_000);
    expect(admissionsPerCore(0)).toBe(Infinity);
  });

  it('reads Redis cores off the passing steps: proportional below, linear between, null above', () => {
    const steps = [step(1000, { redisCores: 0.2 }), step(3000, { redisCores: 0.4 }), step(5000, { redisCores: 0.9, p99Ms: 200 })];
    expect(coresAt(steps, 500, 50)).toBeCloseTo(0.1);
    expect(coresAt(steps, 2000, 50)).toBeCloseTo(0.3);
    expect(coresAt(steps, 3000, 50)).toBeCloseTo(0.4);
    expect(coresAt(steps, 3001, 50)).toBeNull();
    expect(coresAt([], 10, 50)).toBeNull();
  });

  it('adds the ledger at N × R admissions and one flush stream per sidecar', () => {
    const costs = { requestPathCommands: 44, flushesPerSecond: 1, commandsPerFlush: 36, cpuUsPerFlush: 100 };
    const load = redisLoad(costs, { sidecars: 10, rps: 100 }, (rate) => (rate <= 5000 ? rate * 50e-6 : null));
    expect(load.admissionsPerSecond).toBe(1000);
    expect(load.commandsPerSecond).toBe(1000 * 44 + 10 * 36);
    expect(load.cores).toBeCloseTo(0.05 + 10 * 100e-6);
    expect(redisLoad(costs, { sidecars: 100, rps: 100 }, () => null).cores).toBeNull();
    expect(redisLoad(costs, { sidecars: 5, rps: 0 }, () => 0)).toEqual({ admissionsPerSecond: 0, commandsPerSecond: 0, cores: 0 });
  });

  it('formats unknown values as ?', () => {
    expect(fmt(NaN)).toBe('?');
    expect(fmt(12_345.6)).toBe('12,346');
    expect(fmt(0.123)).toBe('0.12');
  });
});

describe('bench capacity: nested budgets', () => {
  const subject = { consumer: 'bench-consumer', labels: {}, provider: 'openai', model: 'gpt-4o-mini', api: 'chat_completions' as const };

  it.each([1, 3, 5])('%i budget(s), all applying to the bench traffic, two limits each', (n) => {
    const config = parseConfig(`${nestedBudgetsYaml(n)}\n`, 'test');
    expect(config.budgets).toHaveLength(n);
    expect(config.budgets.every((b) => b.mode === 'enforce' && b.limits.length === 2)).toBe(true);
    expect(new PolicySet(config.budgets, []).applicable(subject).map((b) => b.id)).toEqual(config.budgets.map((b) => b.id));
  });

  it('refuses counts it cannot nest', () => {
    expect(() => nestedBudgetsYaml(0)).toThrow(RangeError);
    expect(() => nestedBudgetsYaml(MAX_NESTED_BUDGETS + 1)).toThrow(RangeError);
  });
});
