/** Command-line options of the load driver (pure parsing, shared with bench/run.ts). */
import { parseArgs } from 'node:util';
import { CLOSE_STYLES, type CloseStyle } from './exchange.js';
import { DEFAULT_LOAD, type LoadOptions } from './load.js';

/** "5s", "250ms", "1m" or a bare number of milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: "${text}" (use e.g. 500ms, 5s, 1m)`);
  const n = Number(m[1]);
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
}

function wholeNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got "${text}"`);
  return n;
}

/** `--close envoy|graceful` (bench/driver/exchange.ts `CloseStyle`). */
export function parseCloseStyle(text: string | undefined, fallback: CloseStyle = DEFAULT_LOAD.close): CloseStyle {
  if (text === undefined) return fallback;
  if (!(CLOSE_STYLES as readonly string[]).includes(text)) throw new Error(`--close must be one of ${CLOSE_STYLES.join(', ')}, got "${text}"`);
  return text as CloseStyle;
}

/** `hold`: after the warm-up, print "warm" and wait for a line on stdin before measuring. */
export type DriverArgs = LoadOptions & { out: string | null; list: boolean; hold: boolean };

export function parseDriverArgs(argv: readonly string[]): DriverArgs {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      target: { type: 'string' },
      scenario: { type: 'string' },
      concurrency: { type: 'string' },
      rps: { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      timeout: { type: 'string' },
      close: { type: 'string' },
      out: { type: 'string' },
      list: { type: 'boolean' },
      hold: { type: 'boolean' },
    },
    strict: true,
  });
  const list = values.list === true;
  if (!list && (values.target === undefined || values.scenario === undefined)) throw new Error('--target and --scenario are required');
  return {
    target: values.target ?? '',
    scenario: values.scenario ?? '',
    concurrency: Math.max(1, wholeNumber('concurrency', values.concurrency, DEFAULT_LOAD.concurrency)),
    rps: wholeNumber('rps', values.rps, DEFAULT_LOAD.rps),
    durationMs: values.duration === undefined ? (values.count === undefined ? DEFAULT_LOAD.durationMs : 0) : parseDuration(values.duration),
    count: wholeNumber('count', values.count, DEFAULT_LOAD.count),
    warmup: wholeNumber('warmup', values.warmup, DEFAULT_LOAD.warmup),
    connections: Math.max(1, wholeNumber('connections', values.connections, DEFAULT_LOAD.connections)),
    timeoutMs: values.timeout === undefined ? DEFAULT_LOAD.timeoutMs : parseDuration(values.timeout),
    close: parseCloseStyle(values.close),
    out: values.out ?? null,
    list,
    hold: values.hold === true,
  };
}
