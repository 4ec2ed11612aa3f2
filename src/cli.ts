#!/usr/bin/env node
/**
 * The `tokenwarden` command. Exit codes: 0 success (including a clean shutdown), 1 startup or runtime
 * failure, 2 usage or configuration error.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, constants } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue } from './config/errors.js';
import { applyOverrides, FINGERPRINT_SECRET_ENV, loadConfigFile, parseConfig, type ConfigOverride } from './config/load.js';
import { parseAddress } from './config/schema.js';
import type { TokenwardenConfig } from './config/types.js';
import { newFingerprintSecret } from './store/fingerprint-secret.js';
import { createReloader, fileFingerprint, watchConfig, type ReloadResult } from './config/watch.js';
import { createLogger, type Logger } from './log.js';
import type { TokenwardenServer } from './server.js';

const USAGE = `Usage: tokenwarden <command> [options]

Commands:
  serve                    Run the ext_proc gRPC server and the admin HTTP server
  validate-config FILE     Check a configuration file; prints OK or every error found
  demo                     Replay built-in sample LLM traffic into a running server, as Envoy would

Options for serve (flags override the configuration file):
  --config FILE            YAML configuration file (default: built-in defaults)
  --grpc-address ADDRESS   host:port, [ipv6]:port or unix:/path      (grpc.address)
  --admin-address ADDRESS  host:port, or "" to disable the admin API  (admin.address)
  --log-level LEVEL        debug, info, warn or error                 (logging.level)
  --no-watch               Reload --config only on SIGHUP, not when the file changes
  --workers N              Worker processes sharing the gRPC address: a number, or "auto" for one
                           per CPU (default 1). Use with store.type: redis; see the README

Options for demo:
  --target ADDRESS         The server's gRPC address: host:port, [ipv6]:port or unix:/path
                           (default 127.0.0.1:50051)
  --count N                Exchanges to send, cycling through the samples (default: each once)

Other options:
  -h, --help               Show this help
  -V, --version            Print the version

Environment:
  ${FINGERPRINT_SECRET_ENV}   HMAC key for API-key fingerprints; overrides the file. Without
                           one, a random key is generated (and shared through Redis)

Exit codes: 0 success, 1 startup or runtime failure, 2 usage or configuration error.
SIGTERM or SIGINT shut down gracefully (grpc.shutdown_grace_ms); a second signal exits at once.
SIGHUP (and, unless --no-watch, any change to the --config file) re-validates the whole file and
applies its budgets and budget_templates without losing counters; other sections need a restart.
`;

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'validate'; file: string }
  | { kind: 'serve'; configFile: string | undefined; overrides: ConfigOverride[]; watch: boolean; workers: number }
  | { kind: 'demo'; target: string | undefined; count: number | undefined };

/** parseArgs reports bad flags as TypeErrors with ERR_PARSE_ARGS_* codes; make them usage errors. */
function usageErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError((error as Error).message);
    throw error;
  }
}

const SERVE_FLAGS: ReadonlyArray<[flag: string, path: string]> = [
  ['grpc-address', 'grpc.address'],
  ['admin-address', 'admin.address'],
  ['log-level', 'logging.level'],
];

function parseCommandLine(argv: readonly string[]): Command {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      throw new UsageError('a command is required');
    case '-h':
    case '--help':
    case 'help':
      return { kind: 'help' };
    case '-V':
    case '--version':
      return { kind: 'version' };
    case 'validate-config': {
      const { values, positionals } = usageErrors(() =>
        parseArgs({ args: [...rest], options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }),
      );
      if (values.help === true) return { kind: 'help' };
      const [file, ...extra] = positionals;
      if (file === undefined || file === '') throw new UsageError('validate-config needs a FILE');
      if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0] ?? ''}`);
      return { kind: 'validate', file };
    }
    case 'serve': {
      const { values } = usageErrors(() =>
        parseArgs({
          args: [...rest],
          options: {
            help: { type: 'boolean', short: 'h' },
            config: { type: 'string' },
            'grpc-address': { type: 'string' },
            'admin-address': { type: 'string' },
            'log-level': { type: 'string' },
            'no-watch': { type: 'boolean' },
            workers: { type: 'string' },
          },
          allowPositionals: false,
          strict: true,
        }),
      );
      if (values.help === true) return { kind: 'help' };
      if (values.config === '') throw new UsageError('--config needs a FILE');
      const overrides: ConfigOverride[] = [];
      for (const [flag, path] of SERVE_FLAGS) {
        const value = values[flag as keyof typeof values];
        if (typeof value === 'string') overrides.push({ path, value, origin: `--${flag}` });
      }
      const workers = values.workers === undefined ? 1 : parseWorkers(values.workers);
      return { kind: 'serve', configFile: values.config, overrides, watch: values['no-watch'] !== true, workers };
    }
    case 'demo':
      return parseDemo(rest);
    default:
      throw new UsageError(command.startsWith('-') ? `unknown option: ${command}` : `unknown command: ${command}`);
  }
}

const MAX_WORKERS = 256;

/** `--workers`: "auto" = the CPUs this process may use, else a whole number. */
function parseWorkers(value: string): number {
  if (value === 'auto') return availableParallelism();
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_WORKERS)) throw new UsageError(`--workers must be "auto" or a whole number from 1 to ${MAX_WORKERS}, got "${value}"`);
  return n;
}

const MAX_DEMO_COUNT = 1_000_000;

function parseDemo(args: readonly string[]): Command {
  const { values } = usageErrors(() =>
    parseArgs({
      args: [...args],
      options: { help: { type: 'boolean', short: 'h' }, target: { type: 'string' }, count: { type: 'string' } },
      allowPositionals: false,
      strict: true,
    }),
  );
  if (values.help === true) return { kind: 'help' };
  if (values.target !== undefined) {
    const parsed = parseAddress(values.target, true);
    if (typeof parsed === 'string') throw new UsageError(`--target: ${parsed}`);
  }
  let count: number | undefined;
  if (values.count !== undefined) {
    count = /^\d+$/.test(values.count) ? Number(values.count) : NaN;
    if (!(count >= 1 && count <= MAX_DEMO_COUNT)) throw new UsageError(`--count must be a whole number from 1 to ${MAX_DEMO_COUNT}, got "${values.count}"`);
  }
  return { kind: 'demo', target: values.target, count };
}

async function demo(target: string | undefined, count: number | undefined): Promise<number> {
  // Loaded lazily, like the server: the other commands need none of the gRPC client.
  const { DemoError, runDemo } = await import('./demo/run.js');
  try {
    await runDemo({ target, count });
  } catch (error) {
    if (!(error instanceof DemoError)) throw error;
    process.stderr.write(`tokenwarden demo: ${error.message}\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

function readVersion(): string {
  // Same relative location from src/cli.ts and dist/cli.js.
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}

function printConfigError(error: ConfigError): void {
  const lines = error.issues.map((issue) => `  ${formatIssue(issue)}\n`).join('');
  process.stderr.write(`tokenwarden: invalid configuration:\n${lines}`);
}

function validate(file: string): number {
  try {
    loadConfigFile(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    printConfigError(error);
    return EXIT_USAGE;
  }
  process.stdout.write('OK\n');
  return EXIT_OK;
}

/** Which configured address a bind failure is about: the error's own fields, else the one its text names. */
function failedAddress(error: unknown, config: TokenwardenConfig): string {
  const { address, port } = error as { address?: unknown; port?: unknown };
  if (typeof address === 'string' && typeof port === 'number') return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  const message = error instanceof Error ? error.message : String(error);
  const configured = [config.grpc.address, config.admin.address].filter((candidate) => candidate !== '');
  const named = configured.filter((candidate) => {
    const parsed = parseAddress(candidate, true);
    if (typeof parsed === 'string') return false;
    return parsed.kind === 'unix' ? message.includes(parsed.path) : new RegExp(`:${parsed.port}(?!\\d)`).test(message);
  });
  return (named.length > 0 ? named : configured).join(' or ');
}

function describeStartupError(error: unknown, config: TokenwardenConfig): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(message)) {
    return `tokenwarden: cannot listen on ${failedAddress(error, config)}: address already in use`;
  }
  return `tokenwarden: failed to start: ${message}`;
}

/** Resolves with the first SIGTERM/SIGINT; a second one exits immediately. */
function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        process.stderr.write(`tokenwarden: ${signal} received again; exiting without waiting\n`);
        process.exit(128 + (constants.signals[signal] ?? 0));
      }
      received = true;
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Reload outcomes as metrics. */
function reloadMetrics(server: TokenwardenServer): (result: ReloadResult) => void {
  const { configReloads, configLastReloadSuccessful } = server.metrics;
  configLastReloadSuccessful.set(1);
  return (result) => {
    configReloads.inc({ result });
    configLastReloadSuccessful.set(result === 'refused' ? 0 : 1);
  };
}

interface Reloading {
  /** Re-read the file now (`trigger` is named in the log line). */
  reload(trigger: string): void;
  stop(): void;
}

/**
 * Hot reload of budgets, templates and the catalog from the configuration file: `reload` (used for SIGHUP) and,
 * with `watch`, whenever the file changes.
 */
async function startReloading(options: {
  server: TokenwardenServer;
  config: TokenwardenConfig;
  configFile: string | undefined;
  load: () => TokenwardenConfig;
  log: Logger;
  watch: boolean;
  /** The file's fingerprint from before it was loaded at startup. */
  baseline: string | undefined;
}): Promise<Reloading> {
  const { server, configFile, log } = options;
  if (configFile === undefined) {
    return { reload: (trigger) => log.warn(`${trigger} ignored: tokenwarden was started without --config, there is no file to reload`), stop: () => {} };
  }
  const reload = createReloader({
    file: configFile,
    initial: options.config,
    load: options.load,
    apply: (budgets, templates, catalog) => {
      // Budgets first: they can refuse (duplicate ids), and then nothing is applied.
      server.reloadBudgets(budgets, templates);
      server.reloadCatalog(catalog);
    },
    log,
    done: reloadMetrics(server),
  });
  const stop = options.watch
    ? watchConfig(configFile, () => reload('file change'), options.baseline === undefined ? {} : { baseline: options.baseline })
    : () => {};
  return { reload, stop };
}

async function serve(configFile: string | undefined, cliOverrides: readonly ConfigOverride[], watch: boolean, workers: number): Promise<number> {
  // With --workers, this process is either the primary (which forks and supervises) or a worker.
  const clustering = workers > 1 ? await import('./cluster.js') : null;
  const worker = clustering?.isWorker() === true;
  const overrides = worker
    ? [...cliOverrides, { path: 'admin.address', value: clustering?.workerAdminAddress() ?? '', origin: 'the --workers primary' }]
    : cliOverrides;
  // Taken before loading, so that a change made while the server starts is picked up by the watcher.
  const baseline = configFile === undefined || !watch ? undefined : fileFingerprint(configFile);
  // Reloads read the file exactly as startup does, command-line overrides included.
  const load = (): TokenwardenConfig =>
    applyOverrides(configFile === undefined ? parseConfig('', 'built-in defaults') : loadConfigFile(configFile), overrides);
  let config: TokenwardenConfig;
  try {
    config = load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    printConfigError(error);
    return EXIT_USAGE;
  }
  if (clustering && !worker) {
    // Without a configured secret and without Redis to share one, the workers (forked with this
    // environment, restarted ones too) share one generated for this primary.
    if (config.consumer.fingerprint_secret === '' && config.store.type === 'memory') process.env[FINGERPRINT_SECRET_ENV] = newFingerprintSecret();
    return clustering.runPrimary({ workers, config, log: createLogger(config.logging.level) });
  }

  // Installed before start() so that a signal during startup still leads to a graceful shutdown (and
  // SIGHUP, whose default action would end the process, to a reload once started).
  const stopSignal: Promise<string> = clustering && worker ? Promise.race([firstSignal(), clustering.stopRequested()]) : firstSignal();
  let reloading: Reloading | undefined;
  let hangupWhileStarting = false;
  process.on('SIGHUP', () => {
    if (reloading === undefined) hangupWhileStarting = true;
    else reloading.reload('SIGHUP');
  });
  const log = createLogger(config.logging.level);
  let server;
  let ready;
  try {
    // Loaded lazily: validate-config, --help and --version need none of the server's dependencies.
    const { createServer } = await import('./server.js');
    server = createServer(config, { logger: log });
    ready = await server.start();
    reloading = await startReloading({ server, config, configFile, load, log, watch, baseline });
  } catch (error) {
    if (error instanceof ConfigError) {
      printConfigError(error);
      return EXIT_USAGE;
    }
    process.stderr.write(`${describeStartupError(error, config)}\n`);
    return EXIT_FAILURE;
  }
  if (clustering && worker) clustering.announceReady(server, ready);
  else process.stdout.write(`tokenwarden ready grpc=${ready.grpcAddress} admin=${ready.adminAddress ?? 'disabled'}\n`);

  if (hangupWhileStarting) reloading.reload('SIGHUP');

  const signal = await stopSignal;
  reloading.stop();
  const grace = config.grpc.shutdown_grace_ms;
  process.stderr.write(`tokenwarden: ${signal} received; shutting down (grace ${grace} ms)\n`);
  try {
    await server.shutdown(grace);
  } catch (error) {
    process.stderr.write(`tokenwarden: shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

async function main(argv: readonly string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`tokenwarden: ${error.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return EXIT_OK;
    case 'version':
      process.stdout.write(`${readVersion()}\n`);
      return EXIT_OK;
    case 'validate':
      return validate(command.file);
    case 'serve':
      return serve(command.configFile, command.overrides, command.watch, command.workers);
    case 'demo':
      return demo(command.target, command.count);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`tokenwarden: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(EXIT_FAILURE);
  },
);
