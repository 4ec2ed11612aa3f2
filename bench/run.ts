/**
 * The short benchmark (`npm run bench`, 2-3 minutes on 2 cores): for each scenario, the load
 * driver (its own process) runs against the no-op ext_proc server and against tokenwarden (admin API on loopback for its /metrics;
 * memory store, or a redis-server started for the scenarios that ask for it, and the bench budget
 * for the budget scenarios), one after the other on the same machine, and a table puts them side by
 * side. Then, for the scenarios with latency targets, both servers run again in an open loop at half
 * the no-op's maximum rate, where queueing no longer hides the work: the p99 of each phase over the
 * no-op's is the latency tokenwarden adds. Reports in ghz's JSON format go to
 * .bench-out/SCENARIO.{noop,tokenwarden}[.open].json.
 *
 * The driver ends every RPC as Envoy does (`--close`, default `envoy`: END_STREAM then RST_STREAM
 * unless the server already ended it; `graceful`: Envoy's ext_proc_graceful_grpc_close), and a line
 * under each scenario says, per server, how many exchanges the server ended itself, how many the
 * driver reset, and the GOAWAYs the driver's connections received.
 *
 *   npx tsx bench/run.ts [--duration 3s] [--concurrency 16] [--close envoy|graceful] [--scenario chat,chat-stream] [--out-dir .bench-out]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseCloseStyle, parseDuration } from './driver/args.js';
import type { BenchReport } from './driver/report.js';
import { procStatCpuUs } from './capacity-model.js';
import { quantileBound, scrapePhaseBuckets, type PhaseBuckets } from './server-phases.js';
import { findScenario, PHASES, SCENARIOS, type Phase, type Scenario, type ServerSetup } from './driver/scenarios.js';
import { runDriver, setupKey, startServer, startTokenwarden, stopTokenwarden, type Server, type Tokenwarden } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = ['--import', 'tsx'];

/** The server's own CPU time (utime + stime of every thread: event loop, tokenizer worker, GC, libuv), µs. */
function cpuUs(server: Server): number {
  try {
    return procStatCpuUs(readFileSync(`/proc/${server.child.pid}/stat`, 'utf8'));
  } catch {
    return NaN;
  }
}

/** Exchanges the driver ran against a server: its warm-up (whose CPU the server spent too) and the measured ones. */
const WARMUP = 100;

const ms = (ns: number): string => (ns / 1e6).toFixed(2);
const p = (r: BenchReport, q: number): number => r.latencyDistribution.find((l) => l.percentage === q)?.latency ?? 0;

/** How one server's RPCs ended: "ended by server N / reset by driver N / GOAWAY CODE N, ...". */
function closeFigures(r: BenchReport): string {
  const c = r.closes;
  const goaways = Object.entries(r.sessions.goaways).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
  const refused = r.sessions.refusedReplayed > 0 ? ` (${r.sessions.refusedReplayed} streams refused by a closing connection, replayed)` : '';
  return `ended by server ${c.endedByServer + c.endedAfterHalfClose} / reset by driver ${c.resetByDriver} / GOAWAYs ${goaways}${refused}`;
}

/** The line under a scenario's row: both servers' close figures. */
const closeLine = (n: BenchReport, t: BenchReport): string => `  └ noop: ${closeFigures(n)}; tw: ${closeFigures(t)}`;

/** Failed exchanges over the reports. */
const errorCount = (...reports: BenchReport[]): number => reports.flatMap((r) => Object.values(r.errorDistribution)).reduce((a, b) => a + b, 0);

/**
 * Streaming scenarios (several response body chunks, each answered): tokenwarden's p99 round trip
 * per chunk minus the no-op's, ns. Null for the others (one chunk is a phase, not a stream; in
 * observability mode nothing is answered, so nothing is timed).
 */
function chunkP99Delta(s: Scenario, n: BenchReport, t: BenchReport): number | null {
  if (s.observability || s.responseChunks.length < 2) return null;
  const nb = n.phases.response_body;
  const tb = t.phases.response_body;
  return nb && tb ? tb.p99 - nb.p99 : null;
}

/**
 * Scenarios re-run in an open loop at half the no-op's maximum: the targets on added latency are
 * per phase at 50% load (chat), per stream chunk (chat-stream) and per budget decision (budget-redis).
 */
const OPEN_LOOP_SCENARIOS = new Set(['chat', 'chat-stream', 'budget-redis']);
/** Exchanges an open loop may have in flight before new ones wait (they still count from their schedule). */
const OPEN_LOOP_MAX_IN_FLIGHT = '256';

/** tokenwarden's p99 round trip of `phase` minus the no-op's, ns; null when either lacks the phase. */
function phaseP99Delta(phase: Phase, n: BenchReport, t: BenchReport): number | null {
  const a = n.phases[phase];
  const b = t.phases[phase];
  return a && b ? b.p99 - a.p99 : null;
}

function row(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '3s' },
      concurrency: { type: 'string', default: '16' },
      close: { type: 'string', default: 'envoy' },
      scenario: { type: 'string' },
      'out-dir': { type: 'string', default: '.bench-out' },
    },
    strict: true,
  });
  parseDuration(values.duration);
  const close = parseCloseStyle(values.close);
  const names = values.scenario ? values.scenario.split(',') : SCENARIOS.map((s) => s.name);
  const outDir = path.resolve(ROOT, values['out-dir']);
  mkdirSync(outDir, { recursive: true });

  const configDir = mkdtempSync(path.join(tmpdir(), 'tw-bench-'));
  let noop: Server | null = null;
  let tw: Tokenwarden | null = null;
  const stopAll = (): void => {
    noop?.child.kill('SIGTERM');
    tw?.server.child.kill('SIGTERM');
    tw?.redis?.kill('SIGTERM');
  };
  /** The tokenwarden for `setup`: one per setup, replaced (with its redis-server) when the next scenario needs another. */
  const tokenwardenFor = async (setup: ServerSetup): Promise<Tokenwarden> => {
    if (tw?.key !== setupKey(setup)) {
      if (tw) await stopTokenwarden(tw);
      tw = null;
      tw = await startTokenwarden(setup, configDir);
    }
    return tw;
  };
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    noop = await startServer('noop', [...TSX, 'bench/noop-server.ts', '0']);
    const widths = [17, 8, 8, 8, 8, 8, 8, 7, 8, 8, 7, 9, 8, 8, 7];
    const lines = [
      row(['scenario', 'noop/s', 'p50 ms', 'p99 ms', 'tw/s', 'p50 ms', 'p99 ms', 'ratio', 'noop µs', 'tw µs', 'cpu ×', 'chunk µs', 'srv req', 'srv resp', 'errors'], widths),
    ];
    process.stdout.write(`${lines[0]}\n`);
    const summary: Record<string, unknown>[] = [];
    const openLoop: { scenario: Scenario; rps: number }[] = [];
    for (const name of names) {
      const scenario = findScenario(name);
      const reports: Partial<Record<Server['name'], BenchReport>> = {};
      const cpuPerExchange: Partial<Record<Server['name'], number>> = {};
      let serverPhases: [PhaseBuckets, PhaseBuckets] | null = null;
      try {
        for (const server of [noop, (await tokenwardenFor(scenario.setup)).server]) {
          const out = path.join(outDir, `${name}.${server.name}.json`);
          const before = server.admin ? await scrapePhaseBuckets(server.admin) : null;
          const cpuBefore = cpuUs(server);
          await runDriver(['--target', server.address, '--scenario', name, '--duration', values.duration, '--concurrency', values.concurrency, '--close', close, '--warmup', String(WARMUP), '--out', out]);
          const cpuAfter = cpuUs(server);
          const report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
          reports[server.name] = report;
          // Scraped after the CPU reading: the scrape's own cost is not the exchanges'.
          if (before && server.admin) serverPhases = [before, await scrapePhaseBuckets(server.admin)];
          cpuPerExchange[server.name] = (cpuAfter - cpuBefore) / (report.count + WARMUP);
        }
      } catch (e) {
        process.stdout.write(`${name.padEnd(widths[0]!)}  failed: ${(e as Error).message}\n`);
        continue;
      }
      const n = reports.noop!;
      const t = reports.tokenwarden!;
      const errors = errorCount(n, t);
      const ratio = n.rps > 0 ? t.rps / n.rps : 0;
      const chunk = chunkP99Delta(scenario, n, t);
      const srv = (phase: Phase): number | null => (serverPhases ? quantileBound(serverPhases[0], serverPhases[1], phase, 0.99) : null);
      const srvReq = srv('request_body');
      const srvResp = srv('response_body');
      const bound = (sec: number | null): string => (sec === null ? '-' : sec === Infinity ? '>250000' : `≤${Math.round(sec * 1e6)}`);
      const [noopCpu, twCpu] = [cpuPerExchange.noop ?? NaN, cpuPerExchange.tokenwarden ?? NaN];
      const cpuRatio = twCpu / noopCpu;
      const line = row(
        [name, n.rps.toFixed(0), ms(p(n, 50)), ms(p(n, 99)), t.rps.toFixed(0), ms(p(t, 50)), ms(p(t, 99)), ratio.toFixed(2), noopCpu.toFixed(0), twCpu.toFixed(0), cpuRatio.toFixed(2), chunk === null ? '-' : (chunk / 1e3).toFixed(0), bound(srvReq), bound(srvResp), String(errors)],
        widths,
      );
      const closes = closeLine(n, t);
      lines.push(line, closes);
      process.stdout.write(`${line}\n${closes}\n`);
      const figures = (r: BenchReport) => ({ rps: r.rps, p50: p(r, 50), p99: p(r, 99), driverCores: r.driver.coresUsed, closes: r.closes, sessions: r.sessions });
      summary.push({ scenario: name, noop: { ...figures(n), cpuPerExchangeUs: noopCpu }, tokenwarden: { ...figures(t), cpuPerExchangeUs: twCpu }, ratio, cpuRatio, chunkP99DeltaNs: chunk, serverP99UpperBoundSeconds: { request_body: srvReq, response_body: srvResp }, errors });
      if (OPEN_LOOP_SCENARIOS.has(name) && n.rps > 0) openLoop.push({ scenario, rps: Math.max(1, Math.round(n.rps / 2)) });
    }
    const open: Record<string, unknown>[] = [];
    if (openLoop.length > 0) {
      const ow = [17, 7, 10, 10, 10, 10, 9, 9, 7];
      const head = row(['at 50% load', 'rps', 'req hdr', 'req body', 'resp hdr', 'resp body', 'noop p99', 'tw p99', 'errors'], ow);
      lines.push('', head);
      process.stdout.write(`\n${head}\n`);
      for (const { scenario, rps } of openLoop) {
        const reports: Partial<Record<Server['name'], BenchReport>> = {};
        try {
          for (const server of [noop, (await tokenwardenFor(scenario.setup)).server]) {
            const out = path.join(outDir, `${scenario.name}.${server.name}.open.json`);
            await runDriver(['--target', server.address, '--scenario', scenario.name, '--duration', values.duration, '--rps', String(rps), '--concurrency', OPEN_LOOP_MAX_IN_FLIGHT, '--close', close, '--warmup', '100', '--out', out]);
            reports[server.name] = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
          }
        } catch (e) {
          process.stdout.write(`${scenario.name.padEnd(ow[0]!)}  failed: ${(e as Error).message}\n`);
          continue;
        }
        const n = reports.noop!;
        const t = reports.tokenwarden!;
        const deltas = PHASES.map((ph) => phaseP99Delta(ph, n, t));
        const errors = errorCount(n, t);
        const us = (d: number | null): string => (d === null ? '-' : `${(d / 1e3).toFixed(0)}`);
        const line = row([scenario.name, String(rps), ...deltas.map(us), ms(p(n, 99)), ms(p(t, 99)), String(errors)], ow);
        const closes = closeLine(n, t);
        lines.push(line, closes);
        process.stdout.write(`${line}\n${closes}\n`);
        open.push({ scenario: scenario.name, rps, phaseP99DeltaNs: Object.fromEntries(PHASES.map((ph, i) => [ph, deltas[i]])), noopP99: p(n, 99), tokenwardenP99: p(t, 99), errors, closes: { noop: n.closes, tokenwarden: t.closes }, sessions: { noop: n.sessions, tokenwarden: t.sessions } });
      }
    }
    writeFileSync(path.join(outDir, 'summary.json'), `${JSON.stringify({ date: new Date().toISOString(), duration: values.duration, concurrency: Number(values.concurrency), close, scenarios: summary, openLoop: open }, null, 2)}\n`);
    process.stdout.write(
      `\nratio = tokenwarden rps / no-op rps (closed loop, concurrency ${values.concurrency}, close ${close}); ` +
        `noop µs / tw µs = each server's own CPU time (every thread, /proc/<pid>/stat) per exchange over the run and its warm-up; cpu × = tw µs / noop µs; ` +
        `chunk µs = tokenwarden p99 per response body chunk - no-op's (streaming scenarios).\n` +
        `srv req / srv resp = tokenwarden's own p99 from receiving a request_body / response_body message to writing its answer ` +
        `(its phase histogram: the bucket's upper bound, µs), i.e. the budget decision and the per-chunk work without the loopback trip.\n` +
        `at 50% load: open loop at half the no-op's max rate; each phase = tokenwarden's p99 round trip minus the no-op's, µs ` +
        `(resp body: per chunk); p99 ms = whole exchange.\n` +
        `└ = how the RPCs ended (close ${close}): ended by the server (its OK trailers came first, or after the driver's END_STREAM in the graceful style) / ` +
        `reset by the driver after the last answer (END_STREAM + RST_STREAM(CANCEL), not an error) / GOAWAYs the driver's connections received, by code ` +
        `(NO_ERROR: the server rotated the connection; INTERNAL_ERROR: Node's rapid-reset limit, its exchanges failed); ` +
        `streams Node refused unsent when a GOAWAY arrived are replayed on the new connection, as Envoy's pool would. Reports in ${path.relative(ROOT, outDir) || '.'}/\n`,
    );
  } finally {
    noop?.child.kill('SIGTERM');
    if (tw) await stopTokenwarden(tw);
    rmSync(configDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
