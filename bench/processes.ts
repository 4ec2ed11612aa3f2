/**
 * The processes the bench scripts start: the no-op and tokenwarden servers (ready when they print
 * their ready line), a tokenwarden for a scenario's ServerSetup with the redis-server it asks for,
 * and the load driver.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_BUDGETS_YAML, type ServerSetup } from './driver/scenarios.js';
import { startRedis, type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/sidecar-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = ['--import', 'tsx'];

export interface Server {
  name: 'noop' | 'tokenwarden';
  child: ChildProcess;
  address: string;
  /** tokenwarden's admin API (its /metrics), on loopback. */
  admin: string | null;
  exited: Promise<void>;
}

/** Where and how a server process is started: another checkout (its dist/ or sources), under a wrapper such as valgrind. */
export interface Launch {
  /** The checkout to run (default: this one). */
  cwd?: string;
  /** A command that runs node, e.g. ['valgrind', '--tool=callgrind']. */
  wrapper?: readonly string[];
}

/** Spawns a server and resolves with the address from its ready line ("... ready grpc=HOST:PORT"). */
export function startServer(name: Server['name'], args: string[], launch: Launch = {}): Promise<Server> {
  const [command, ...before] = launch.wrapper?.length ? [...launch.wrapper, process.execPath] : [process.execPath];
  const child = spawn(command!, [...before, ...args], { cwd: launch.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      const m = / ready grpc=(\S+)(?: admin=(\S+))?/.exec(stdout);
      if (m) resolve({ name, child, address: m[1]!, admin: m[2] && m[2] !== 'disabled' ? m[2] : null, exited });
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before ready:\n${stderr}`)));
  });
}

function tokenwardenArgs(root: string, port: number, adminPort: number, configFile: string): string[] {
  // The built CLI when present (what users deploy), else the sources through tsx.
  const entry = existsSync(path.join(root, 'dist/cli.js')) ? ['dist/cli.js'] : [...TSX, 'src/cli.ts'];
  return [...entry, 'serve', '--config', configFile, '--grpc-address', `127.0.0.1:${port}`, '--admin-address', `127.0.0.1:${adminPort}`, '--log-level', 'warn', '--no-watch'];
}

/** A tokenwarden process for one ServerSetup, with the redis-server it uses when the setup asks. */
export interface Tokenwarden {
  key: string;
  server: Server;
  redis: RedisServer | null;
}

export const setupKey = (s: ServerSetup): string => `${s.store}${s.budget ? '-budget' : ''}`;

/** `nodeArgs` go to node before the script (e.g. `--cpu-prof`). */
export async function startTokenwarden(setup: ServerSetup, configDir: string, nodeArgs: readonly string[] = [], launch: Launch = {}): Promise<Tokenwarden> {
  const key = setupKey(setup);
  const redis = setup.store === 'redis' ? await startRedis() : null;
  try {
    const file = path.join(configDir, `${key}.yaml`);
    const store = redis ? `{ type: redis, redis: { url: "${redis.url}" } }` : '{ type: memory }';
    writeFileSync(file, [`store: ${store}`, ...(setup.budget ? [BENCH_BUDGETS_YAML] : [])].join('\n') + '\n');
    const args = [...nodeArgs, ...tokenwardenArgs(launch.cwd ?? ROOT, await freePort(), await freePort(), file)];
    return { key, server: await startServer('tokenwarden', args, launch), redis };
  } catch (e) {
    await redis?.close();
    throw e;
  }
}

export async function stopTokenwarden(tw: Tokenwarden): Promise<void> {
  tw.server.child.kill('SIGTERM');
  await tw.server.exited;
  await tw.redis?.close();
}

/**
 * Runs the load driver (its own process) to completion. With `onWarm`, the driver holds after its
 * warm-up (`--hold`): `onWarm` runs, then the measured run goes on over the same connections.
 */
export function runDriver(args: string[], onWarm?: () => void | Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const held = onWarm !== undefined;
    const child = spawn(process.execPath, [...TSX, 'bench/driver/main.ts', ...args, ...(held ? ['--hold'] : [])], {
      cwd: ROOT,
      stdio: [held ? 'pipe' : 'ignore', held ? 'pipe' : 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    if (held) {
      let stdout = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        if (!stdout.includes('warm\n')) return;
        stdout = '';
        Promise.resolve()
          .then(onWarm)
          .then(
            () => child.stdin!.end('go\n'),
            (e: unknown) => {
              child.kill();
              reject(e instanceof Error ? e : new Error(String(e)));
            },
          );
      });
    }
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`driver exited ${code}: ${stderr.trim()}`))));
  });
}

/** A server a diagnostic runs a scenario against: tokenwarden for the scenario's setup, or the no-op. */
export interface ServerUnderTest {
  server: Server;
  /** Stops it (and its redis-server); a profile given by `nodeArgs` is written as it exits. */
  stop(): Promise<void>;
}

/** `nodeArgs` go to node before the script (a profiler, a preloaded module). */
export async function startServerUnderTest(noop: boolean, setup: ServerSetup, nodeArgs: readonly string[], launch: Launch = {}): Promise<ServerUnderTest> {
  if (noop) {
    const server = await startServer('noop', [...nodeArgs, ...TSX, 'bench/noop-server.ts', '0'], launch);
    return {
      server,
      stop: async () => {
        server.child.kill('SIGTERM');
        await server.exited;
      },
    };
  }
  const configDir = mkdtempSync(path.join(tmpdir(), 'tw-bench-'));
  const removeConfig = (): void => rmSync(configDir, { recursive: true, force: true });
  try {
    const tw = await startTokenwarden(setup, configDir, nodeArgs, launch);
    return {
      server: tw.server,
      stop: async () => {
        await stopTokenwarden(tw);
        removeConfig();
      },
    };
  } catch (e) {
    removeConfig();
    throw e;
  }
}
