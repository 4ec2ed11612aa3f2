/**
 * The pure parts of the capacity bench (bench/capacity.ts): reading Redis INFO, /proc/<pid>/stat and
 * MONITOR output, attributing Redis commands to tokenwarden's scripts, the open-loop rate search for
 * the ledger's capacity, and the arithmetic of the capacity model. No I/O here (tested in
 * test/bench-capacity.test.ts).
 */
import { createHash } from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// Redis INFO

/** `INFO` text as fields (`k:v` lines; section headers and blank lines skipped). */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

export interface CommandStat {
  calls: number;
  /** Redis's own time in the command, µs (a script's includes the commands it runs). */
  usec: number;
}

/** `INFO commandstats` fields (`cmdstat_evalsha:calls=3,usec=120,...`) by command name (lower case). */
export function commandStats(info: Record<string, string>): Map<string, CommandStat> {
  const out = new Map<string, CommandStat>();
  for (const [key, value] of Object.entries(info)) {
    if (!key.startsWith('cmdstat_')) continue;
    const fields = Object.fromEntries(value.split(',').map((kv) => kv.split('=') as [string, string]));
    out.set(key.slice('cmdstat_'.length).toLowerCase(), { calls: Number(fields.calls ?? 0), usec: Number(fields.usec ?? 0) });
  }
  return out;
}

/** What the bench reads from one redis-server before and after a run. */
export interface RedisSnapshot {
  /** total_commands_processed: client commands AND the commands scripts run (Redis counts both). */
  commands: number;
  /** used_cpu_user + used_cpu_sys, seconds (every thread of the process). */
  cpuSeconds: number;
  /** connected_clients. */
  clients: number;
  stats: Map<string, CommandStat>;
}

/** A snapshot from the fields of `INFO stats`, `INFO cpu`, `INFO clients` and `INFO commandstats` (any mix). */
export function snapshotOf(info: Record<string, string>): RedisSnapshot {
  return {
    commands: Number(info.total_commands_processed ?? 0),
    cpuSeconds: Number(info.used_cpu_user ?? 0) + Number(info.used_cpu_sys ?? 0),
    clients: Number(info.connected_clients ?? 0),
    stats: commandStats(info),
  };
}

export interface RedisDelta {
  commands: number;
  cpuUs: number;
  /** Calls per command between the snapshots (commands not called are left out). */
  calls: Record<string, number>;
  /** Redis's time in each command, µs (a script's includes the commands it ran). */
  usec: Record<string, number>;
}

export function diffSnapshots(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const calls: Record<string, number> = {};
  const usec: Record<string, number> = {};
  for (const [cmd, s] of after.stats) {
    const n = s.calls - (before.stats.get(cmd)?.calls ?? 0);
    if (n > 0) {
      calls[cmd] = n;
      usec[cmd] = s.usec - (before.stats.get(cmd)?.usec ?? 0);
    }
  }
  return { commands: after.commands - before.commands, cpuUs: Math.round((after.cpuSeconds - before.cpuSeconds) * 1e6), calls, usec };
}

/** Commands the bench itself sends to read a server (INFO, MONITOR, PING...): not the workload's. */
export const BENCH_COMMANDS = new Set(['info', 'monitor', 'ping', 'client', 'config', 'flushall', 'dbsize', 'cluster', 'command', 'hello']);

/** Redis's time inside scripts (EVALSHA and EVAL, the commands they ran included), µs. */
export const scriptUsec = (delta: RedisDelta): number => (delta.usec.evalsha ?? 0) + (delta.usec.eval ?? 0);

/** The workload's share of a delta: the bench's own INFO (and the like) calls taken out. */
export function workloadCommands(delta: RedisDelta): number {
  let own = 0;
  for (const [cmd, n] of Object.entries(delta.calls)) if (BENCH_COMMANDS.has(cmd)) own += n;
  return delta.commands - own;
}

// ---------------------------------------------------------------------------------------------
// /proc

/** Linux's USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on every mainstream kernel). */
export const USER_HZ = 100;

/** utime + stime of a /proc/<pid>/stat line, µs (all threads; the comm field may hold spaces and parens). */
export function procStatCpuUs(text: string): number {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are rest[11] and rest[12].
  const ticks = Number(rest[11]) + Number(rest[12]);
  if (!Number.isFinite(ticks)) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  return (ticks * 1e6) / USER_HZ;
}

// ---------------------------------------------------------------------------------------------
// MONITOR

export interface MonitorLine {
  /** `lua` for a command a script ran, else the client's address. */
  source: string;
  /** Lower case. */
  command: string;
  /** The first argument (a script's sha for EVALSHA), if any. */
  arg1: string | null;
}

/**
 * One line of MONITOR output: `+1733300000.123456 [0 127.0.0.1:5555] "evalsha" "ab12..." "1" ...` or
 * `1733300000.123470 [0 lua] "ZADD" ...` (redis-cli drops the `+`). Null for anything else (OK).
 */
export function parseMonitorLine(line: string): MonitorLine | null {
  const m = /^\+?\d+\.\d+ \[\d+ ([^\]]+)\] "((?:[^"\\]|\\.)*)"(?: "((?:[^"\\]|\\.)*)")?/.exec(line);
  if (!m) return null;
  return { source: m[1]!, command: m[2]!.toLowerCase(), arg1: m[3] ?? null };
}

/** sha1 of a Lua script, as EVALSHA names it. */
export const scriptSha = (lua: string): string => createHash('sha1').update(lua).digest('hex');

export interface ScriptTally {
  /** Client calls (EVALSHA, or EVAL after a NOSCRIPT). */
  calls: number;
  /** Commands the script ran, over all its calls. */
  inner: number;
  /**
   * Calls that ran at most one command: returned at once (a settlement sent again finds its `done`
   * marker, a batch sent again its batch id), and how many commands those ran.
   */
  atOnce: number;
  atOnceInner: number;
}

export interface MonitorTally {
  /** By script name (unknown scripts as `sha:<first 8>`). */
  scripts: Record<string, ScriptTally>;
  /** Client commands that are not scripts, by command (the bench's own left out). */
  other: Record<string, number>;
}

/**
 * Attributes MONITOR lines: each script call (by sha, or EVAL by its source's sha) and the `lua`
 * lines that follow it (a script runs atomically: Redis logs the call, then what it ran, with
 * nothing in between).
 */
export function tallyMonitor(lines: Iterable<string>, names: ReadonlyMap<string, string>): MonitorTally {
  const scripts: Record<string, ScriptTally> = {};
  const other: Record<string, number> = {};
  let current: ScriptTally | null = null;
  let currentInner = 0;
  const close = (): void => {
    if (current && currentInner <= 1) {
      current.atOnce++;
      current.atOnceInner += currentInner;
    }
    current = null;
    currentInner = 0;
  };
  for (const raw of lines) {
    const line = parseMonitorLine(raw);
    if (!line) continue;
    if (line.source === 'lua') {
      if (current) {
        current.inner++;
        currentInner++;
      }
      continue;
    }
    close();
    if (line.command === 'evalsha' || line.command === 'eval') {
      const sha = line.command === 'eval' ? scriptSha(unescapeMonitor(line.arg1 ?? '')) : (line.arg1 ?? '');
      const name = names.get(sha) ?? `sha:${sha.slice(0, 8)}`;
      current = scripts[name] ??= { calls: 0, inner: 0, atOnce: 0, atOnceInner: 0 };
      current.calls++;
    } else if (!BENCH_COMMANDS.has(line.command)) {
      other[line.command] = (other[line.command] ?? 0) + 1;
    }
  }
  close();
  return { scripts, other };
}

/** MONITOR's quoting (sdscatrepr): \" \\ \n \r \t \a \b and \xNN. */
export function unescapeMonitor(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' } as Record<string, string>)[e] ?? e;
  });
}

// ---------------------------------------------------------------------------------------------
// Latency samples

/** The q-quantile (0..1) of `sorted` (ascending), nearest rank; 0 when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

// ---------------------------------------------------------------------------------------------
// The rate search

/** One open-loop step of the ledger load. */
export interface RateStep {
  /** Admissions offered per second. */
  rate: number;
  /** Admissions decided per second (reservations answered over the step's wall time). */
  achieved: number;
  /** Reservation latency from its scheduled start, ms. */
  p50Ms: number;
  p99Ms: number;
  /** Reservations that failed or were not answered. */
  errors: number;
  /** Redis CPU over the step, cores (1 = one core busy all the time). */
  redisCores: number;
  /** Redis CPU per admission (its reservation and its settlement), µs. */
  redisUsPerAdmission: number;
  /** The load generator's own CPU, cores. */
  generatorCores: number;
}

/** Achieved below this share of the offered rate: the step did not keep up. */
export const KEEP_UP = 0.95;

/** The step met the deadline: p99 under it, no errors, and the offered rate was served. */
export function stepOk(step: RateStep, deadlineMs: number): boolean {
  return step.errors === 0 && step.p99Ms < deadlineMs && step.achieved >= KEEP_UP * step.rate;
}

export interface SearchOptions {
  start: number;
  /** Multiply the rate by this while steps pass. */
  factor: number;
  /** Bisections between the last passing and the first failing rate. */
  refinements: number;
  /** Never offer more than this. */
  max: number;
  deadlineMs: number;
}

/**
 * The next rate to offer after `steps` (in the order they ran), or null when the search is done:
 * grow geometrically from `start` while steps pass; after the first failure, bisect between the
 * highest passing and the lowest failing rate `refinements` times. Rates are rounded to tens.
 */
export function nextRate(steps: readonly RateStep[], o: SearchOptions): number | null {
  if (steps.length === 0) return o.start;
  const passing = steps.filter((s) => stepOk(s, o.deadlineMs)).map((s) => s.rate);
  const failing = steps.filter((s) => !stepOk(s, o.deadlineMs)).map((s) => s.rate);
  if (failing.length === 0) {
    const last = steps[steps.length - 1]!.rate;
    if (last >= o.max) return null;
    return Math.min(o.max, round10(last * o.factor));
  }
  const firstFailure = steps.findIndex((s) => !stepOk(s, o.deadlineMs));
  if (steps.length - 1 - firstFailure >= o.refinements) return null;
  const lo = passing.length > 0 ? Math.max(...passing.filter((r) => r < Math.min(...failing)), 0) : 0;
  const hi = Math.min(...failing);
  const mid = round10((lo + hi) / 2);
  if (mid <= lo || mid >= hi) return null;
  return mid;
}

const round10 = (n: number): number => Math.max(10, Math.round(n / 10) * 10);

/** The largest offered rate that passed and has no failing rate below it (0 if none). */
export function capacityOf(steps: readonly RateStep[], deadlineMs: number): number {
  const lowestFailure = Math.min(...steps.filter((s) => !stepOk(s, deadlineMs)).map((s) => s.rate), Infinity);
  return Math.max(0, ...steps.filter((s) => stepOk(s, deadlineMs) && s.rate < lowestFailure).map((s) => s.rate));
}

/**
 * Redis CPU per admission for the model: that of the highest passing rate, where Redis is busiest
 * while still meeting the deadline. At lower rates an admission costs Redis more (each command wakes
 * it up and is read and answered by its own syscalls; near capacity auto-pipelined commands share
 * them), so this is the cost that sets the ceiling. Null without passing steps.
 */
export function usPerAdmission(steps: readonly RateStep[], deadlineMs: number): number | null {
  const passing = steps.filter((s) => stepOk(s, deadlineMs)).sort((a, b) => b.rate - a.rate);
  return passing[0]?.redisUsPerAdmission ?? null;
}

// ---------------------------------------------------------------------------------------------
// The model

/** Admissions per second one Redis core carries at `us` µs of Redis CPU each (100% busy: the ceiling). */
export const admissionsPerCore = (us: number): number => (us > 0 ? 1e6 / us : Infinity);

/**
 * Redis CPU (cores) at `rate` admissions/s, read off the ledger steps that met the deadline: linear
 * between measured rates, proportional below the lowest (an overestimate: per-admission cost falls as
 * the rate grows); null above the highest passing rate (past what one shard carried here).
 */
export function coresAt(steps: readonly RateStep[], rate: number, deadlineMs: number): number | null {
  const pts = steps.filter((s) => stepOk(s, deadlineMs)).sort((a, b) => a.rate - b.rate);
  const first = pts[0];
  if (!first || rate > pts[pts.length - 1]!.rate) return null;
  if (rate <= first.rate) return (first.redisCores * rate) / first.rate;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!;
    const b = pts[i]!;
    if (rate <= b.rate) return a.redisCores + ((b.redisCores - a.redisCores) * (rate - a.rate)) / (b.rate - a.rate);
  }
  return null;
}

/** What the sidecars measured: commands per exchange and the inventory's flushes. */
export interface ExchangeCosts {
  /** Commands Redis runs per admitted exchange for the ledger (the two script calls + the commands inside). */
  requestPathCommands: number;
  /** Inventory flushes per second per sidecar (one batch script each; about 1/s at the default flush_interval_ms). */
  flushesPerSecond: number;
  /** Commands Redis runs per flush (the script call + the commands inside), at the measured batch size. */
  commandsPerFlush: number;
  /** Redis CPU per flush, µs. */
  cpuUsPerFlush: number;
}

export interface Load {
  sidecars: number;
  /** Exchanges per second per sidecar. */
  rps: number;
}

export interface RedisLoad {
  admissionsPerSecond: number;
  commandsPerSecond: number;
  /** Redis CPU, cores; null past the measured capacity of one shard. */
  cores: number | null;
}

/**
 * Redis load of N sidecars at R exchanges/s each: the ledger at N×R admissions/s (commands from
 * the accounting, CPU off the measured ledger curve) plus one flush stream per sidecar.
 */
export function redisLoad(c: ExchangeCosts, l: Load, ledgerCores: (rate: number) => number | null): RedisLoad {
  const admissions = l.sidecars * l.rps;
  const flushes = l.rps > 0 ? l.sidecars * c.flushesPerSecond : 0;
  const ledger = ledgerCores(admissions);
  return {
    admissionsPerSecond: admissions,
    commandsPerSecond: admissions * c.requestPathCommands + flushes * c.commandsPerFlush,
    cores: ledger === null ? null : ledger + (flushes * c.cpuUsPerFlush) / 1e6,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** 12345.6 -> "12,346"; small values keep one or two decimals; NaN (unknown) -> "?". */
export function fmt(n: number, decimals?: number): string {
  if (Number.isNaN(n)) return '?';
  if (!Number.isFinite(n)) return '∞';
  const d = decimals ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** A fixed-width text table: first column left-aligned, the others right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

// ---------------------------------------------------------------------------------------------
// The nested budgets

/** The nesting levels, outermost first: each selects the bench traffic (OpenAI chat from `bench-consumer`). */
const LEVELS = [
  ['org', 'providers: [openai]'],
  ['team', "consumers: ['bench-*']"],
  ['app', 'consumers: [bench-consumer]'],
  ['model-family', "models: ['gpt-4o*']"],
  ['chat-api', 'apis: [chat_completions]'],
] as const;

export const MAX_NESTED_BUDGETS = LEVELS.length;

/**
 * tokenwarden's `budgets:` section with `n` nested enforce budgets (org > team > app > ...) that all
 * apply to the bench's traffic, each with the bench budget's two limits (tokens and requests per day,
 * never reached): a decision touches 2n counters, in one script call.
 */
export function nestedBudgetsYaml(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > LEVELS.length) throw new RangeError(`budgets per request must be 1..${LEVELS.length}, got ${n}`);
  const lines = ['budgets:'];
  for (const [id, select] of LEVELS.slice(0, n)) {
    lines.push(
      `  - id: bench-${id}`,
      '    mode: enforce',
      `    select: { ${select} }`,
      '    limits:',
      '      - { total_tokens: 1000000000000, per: day }',
      '      - { requests: 1000000000, per: day }',
    );
  }
  return lines.join('\n');
}
