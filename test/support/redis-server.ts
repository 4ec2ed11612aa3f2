/**
 * A real redis-server (Debian's /usr/bin/redis-server, or $REDIS_SERVER) on a free loopback port, for
 * tests. No persistence unless asked: stop() and restart() lose the data; restart({ keepData: true })
 * saves it first (SHUTDOWN SAVE) and the new process loads it. The port stays the same across
 * restarts, so clients reconnect on their own. close() stops it and removes its directory; the
 * process is also killed if the test process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryPath, REDIS_SERVER } from './prerequisites.js';

export interface RedisServer {
  port: number;
  url: string;
  /** Ends the process (SIGTERM, nothing saved) and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops (if running) and starts a new process on the same port; keepData saves and reloads the dataset. */
  restart(opts?: { keepData?: boolean }): Promise<void>;
  /** Sends a signal (default SIGKILL) without waiting: an abrupt failure. restart() waits for the exit. */
  kill(signal?: NodeJS.Signals): void;
  /** Stops and removes the data directory. */
  close(): Promise<void>;
}

const BIN = binaryPath(REDIS_SERVER);
const START_TIMEOUT_MS = 10_000;

export async function startRedis(): Promise<RedisServer> {
  if (!existsSync(BIN)) throw new Error(`redis-server not found at ${BIN}: install it (apt-get install redis-server) or set REDIS_SERVER`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tw-redis-'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    const proc = spawn(BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    const collect = (b: Buffer): void => {
      output = (output + b.toString()).slice(-4096);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let gone = false;
    exited = new Promise((resolve) =>
      proc.once('exit', () => {
        gone = true;
        if (child === proc) child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answersPing(port))) {
      if (gone || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${port}:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async (): Promise<void> => {
    child?.kill('SIGTERM');
    await exited;
  };

  try {
    await start();
  } catch (err) {
    process.removeListener('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    async restart(opts = {}) {
      if (opts.keepData && child) {
        // On success the server closes the connection without a reply.
        const reply = await command(port, ['SHUTDOWN', 'SAVE']);
        if (reply.startsWith('-')) throw new Error(`SHUTDOWN SAVE failed: ${reply}`);
      }
      await stop();
      if (!opts.keepData) rmSync(join(dir, 'dump.rdb'), { force: true });
      await start();
    },
    kill(signal = 'SIGKILL') {
      child?.kill(signal);
    },
    async close() {
      await stop();
      process.removeListener('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Sends one RESP command and resolves with the first reply line ('' if the connection closed first). */
function command(port: number, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let reply = '';
    socket.on('data', (b) => {
      reply += b.toString();
      if (reply.includes('\r\n')) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => resolve(reply.split('\r\n')[0] ?? ''));
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function answersPing(port: number): Promise<boolean> {
  return (await command(port, ['PING'])) === '+PONG';
}
