/**
 * Building blocks for tests that run several redis-server processes (test/support/redis-cluster.ts,
 * test/support/redis-sentinel.ts): free loopback ports, a one-shot RESP client for admin commands,
 * and a redis-server process handle that knows its own log and is killed if the test process exits.
 *
 * Never touches a Redis it did not start: every process gets ports the OS just handed out, and a
 * started process is only accepted once the server answering on its port reports its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { binaryPath, REDIS_SERVER } from './prerequisites.js';

export const REDIS_SERVER_BIN = binaryPath(REDIS_SERVER);
/** redis-cli: $REDIS_CLI, else next to redis-server (Debian installs both in /usr/bin). */
export const REDIS_CLI_BIN = process.env.REDIS_CLI || join(dirname(REDIS_SERVER_BIN), 'redis-cli');

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_KEEP_CHARS = 16_384;

// ---------------------------------------------------------------------------------------------
// Ports

/** A port the OS considers free on 127.0.0.1 right now (it may be taken again before it is used). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** n distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

// ---------------------------------------------------------------------------------------------
// A one-shot RESP2 client

export type Reply = string | number | null | Error | Reply[];

export class RedisReplyError extends Error {}

const ADMIN_TIMEOUT_MS = 3_000;

/**
 * Sends one command to 127.0.0.1:port on a fresh connection and resolves with the whole reply
 * (bulk and simple strings as strings, arrays as arrays, nested errors as Error values). A top-level
 * error reply rejects with RedisReplyError; a refused connection, a closed one or no reply within
 * timeoutMs rejects with an Error naming the port and the command.
 */
export function redisCommand(port: number, args: readonly (string | number)[], timeoutMs = ADMIN_TIMEOUT_MS): Promise<Reply> {
  const what = `${args.slice(0, 3).join(' ')} on 127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, reply?: Reply): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply ?? null);
    };
    const timer = setTimeout(() => finish(new Error(`no reply within ${timeoutMs} ms to ${what}`)), timeoutMs);
    socket.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      let parsed: { value: Reply; end: number } | undefined;
      try {
        parsed = parseReply(buf, 0);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (!parsed) return;
      if (parsed.value instanceof Error) finish(new RedisReplyError(`${parsed.value.message} (${what})`));
      else finish(null, parsed.value);
    });
    socket.on('error', (err) => finish(new Error(`${err.message} (${what})`)));
    socket.on('close', () => finish(new Error(`connection closed before a reply to ${what}`)));
    const parts = args.map(String);
    socket.write(`*${parts.length}\r\n${parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/** Parses one reply at pos; undefined while it is incomplete. */
function parseReply(buf: Buffer, pos: number): { value: Reply; end: number } | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RedisReplyError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/** `INFO <section>` as fields. */
export async function info(port: number, section: string): Promise<Record<string, string>> {
  const text = await redisCommand(port, ['INFO', section]);
  return parseFields(String(text), ':');
}

/** `k:v` (or `k=v`) lines, as CLUSTER INFO and INFO answer. */
export function parseFields(text: string, sep: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(sep);
    if (at > 0 && !line.startsWith('#')) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

/** A flat RESP2 [k1, v1, k2, v2, ...] array (SENTINEL MASTER, CLUSTER SHARDS) as an object. */
export function pairs(reply: Reply): Record<string, Reply> {
  const out: Record<string, Reply> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Waiting

/**
 * Polls check() until it returns true; past the deadline throws an Error with `what`, the last
 * reason check gave (its thrown error, or the string it returned), and the given logs.
 */
export async function waitFor(
  what: string,
  check: () => Promise<true | string>,
  opts: { timeoutMs: number; logs?: () => string; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await check();
      if (r === true) return;
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      const logs = opts.logs?.() ?? '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}${logs ? `\n${logs}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

// ---------------------------------------------------------------------------------------------
// A redis-server process

export interface RedisProcess {
  /** What logs and errors call it (e.g. `cluster node 2`, `sentinel 1`). */
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  readonly running: boolean;
  readonly pid: number | undefined;
  /** The last lines of its output (all runs), each prefixed with its name. */
  log(lines?: number): string;
  /** Sends a signal (default SIGKILL) without waiting: an abrupt failure. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the current process (if any) has exited. */
  exited(): Promise<void>;
  /** SIGTERM, SIGKILL if still alive after a few seconds; resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again with the same arguments and port (after stop or kill; waits for the old exit). */
  restart(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  /** How many free ports the process needs; the first is the one it serves (and answers PING on). */
  ports: number;
  /** The arguments for these ports (may write files, e.g. a config: it is called again on a retry). */
  args(ports: number[]): string[];
}

/** Processes started here and still running: killed if the test process exits first. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Starts redis-server on free ports and waits until it answers as itself (INFO's process_id is the
 * child's pid). A port taken between choosing and binding it is retried with new ports; any other
 * failure to start throws with the end of the process's log.
 */
export async function spawnRedis(opts: SpawnOptions): Promise<RedisProcess> {
  if (!existsSync(REDIS_SERVER_BIN)) throw new Error(`redis-server not found at ${REDIS_SERVER_BIN}: install it (apt-get install redis-server) or set REDIS_SERVER`);
  installExitHook();
  let output = '';
  const collect = (b: Buffer): void => {
    output = (output + b.toString()).slice(-LOG_KEEP_CHARS);
  };
  let child: ChildProcess | null = null;
  let exitedP: Promise<void> = Promise.resolve();
  let args: string[] = [];
  let port = 0;

  const launch = async (): Promise<void> => {
    const proc = spawn(REDIS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    live.add(proc);
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let gone = false;
    exitedP = new Promise((resolve) => {
      const done = (): void => {
        gone = true;
        live.delete(proc);
        if (child === proc) child = null;
        resolve();
      };
      proc.once('exit', done);
      // A binary that cannot be executed emits 'error' and may never emit 'exit'.
      proc.once('error', (err) => {
        output += `\n[spawn error] ${err.message}\n`;
        done();
      });
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (gone) throw new StartError(`${opts.name} (redis-server ${args.join(' ')}) exited during startup`, output);
      const pid = await info(port, 'server')
        .then((f) => Number(f.process_id))
        .catch(() => undefined);
      if (pid === proc.pid) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exitedP;
        throw new StartError(`${opts.name} did not answer on port ${port} within ${START_TIMEOUT_MS} ms${pid ? ` (another process, pid ${pid}, did)` : ''}`, output);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(opts.ports);
    port = ports[0]!;
    args = opts.args(ports);
    try {
      await launch();
      break;
    } catch (err) {
      const inUse = /address already in use/i.test(output);
      if (!(err instanceof StartError) || !inUse || attempt >= 3) throw new Error(`${(err as Error).message}\n${tail(output, 30, opts.name)}`);
      output += `\n[port taken, retrying with new ports]\n`;
    }
  }

  const handle: RedisProcess = {
    name: opts.name,
    port,
    address: `127.0.0.1:${port}`,
    get running() {
      return child !== null;
    },
    get pid() {
      return child?.pid;
    },
    log: (lines = 30) => tail(output, lines, opts.name),
    kill(signal = 'SIGKILL') {
      child?.kill(signal);
    },
    exited: () => exitedP,
    async stop() {
      const proc = child;
      if (!proc) return exitedP;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exitedP;
      clearTimeout(timer);
    },
    async restart() {
      await handle.stop();
      try {
        await launch();
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${tail(output, 30, opts.name)}`);
      }
    },
  };
  return handle;
}

class StartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** The last `lines` lines of a log, each prefixed with `[name]`. */
export function tail(output: string, lines: number, name: string): string {
  const all = output.trimEnd().split('\n');
  return all
    .slice(-lines)
    .map((l) => `[${name}] ${l}`)
    .join('\n');
}

/** Kills every process (SIGKILL: nothing is kept) and waits for all of them to exit. */
export async function killAll(processes: readonly RedisProcess[]): Promise<void> {
  for (const p of processes) p.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exited()));
}
