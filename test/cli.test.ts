import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/config/${name}`, import.meta.url));

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: { stdout: string; stderr: string }; exited: Promise<Finished> } {
  const cleanEnv = { ...process.env };
  delete cleanEnv.TOKENWARDEN_FINGERPRINT_SECRET;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: root,
    env: { ...cleanEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  const exited = new Promise<Finished>((resolve) => child.on('close', (code) => resolve({ code, ...output })));
  return { child, output, exited };
}

const run = (args: string[], env?: Record<string, string>): Promise<Finished> => start(args, env).exited;

/** A port that was free a moment ago (the CLI has no "pick a free port" mode). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves with the ready line, or rejects with the output if the process exits first. */
function readyLine(started: ReturnType<typeof start>): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const line = started.output.stdout.split('\n').find((l) => l.startsWith('tokenwarden ready'));
      if (line !== undefined) resolve(line);
    };
    started.child.stdout?.on('data', check);
    void started.exited.then((done) => reject(new Error(`exited with ${done.code} before ready:\n${done.stderr}`)));
  });
}

describe('tokenwarden CLI', () => {
  it('--help prints the usage and exits 0', async () => {
    const result = await run(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: tokenwarden <command>');
    expect(result.stdout).toContain('validate-config FILE');
    expect(result.stdout).toContain('--grpc-address');
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const result = await run(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });

  it('without a command prints the usage and exits 2', async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('a command is required');
    expect(result.stderr).toContain('Usage: tokenwarden');
  });

  it('an unknown command exits 2', async () => {
    const result = await run(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command: frobnicate');
    expect(result.stderr).toContain('Usage: tokenwarden');
  });

  it('an unknown flag exits 2 with the usage', async () => {
    const result = await run(['serve', '--no-such-flag']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("'--no-such-flag'");
    expect(result.stderr).toContain('Usage: tokenwarden');
  });

  it('validate-config prints OK for a valid file', async () => {
    const result = await run(['validate-config', fixture('valid/partial.yaml')]);
    expect(result).toMatchObject({ code: 0, stdout: 'OK\n' });
  });

  it('validate-config prints every error with file:line:column and key path, and exits 2', async () => {
    const file = fixture('broken/several-errors.yaml');
    const result = await run(['validate-config', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${file}:2:12: grpc.address:`);
    expect(result.stderr).toContain(`${file}:10:10: logging.level:`);
    expect(result.stderr.match(new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g'))).toHaveLength(6);
  });

  it('validate-config resolves fingerprint_secret_env from the environment', async () => {
    const file = fixture('valid/full.yaml');
    expect((await run(['validate-config', file])).code).toBe(2);
    expect((await run(['validate-config', file], { TW_TEST_FINGERPRINT_SECRET: 'x' })).code).toBe(0);
  });

  it('validate-config without a file exits 2', async () => {
    const result = await run(['validate-config']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('validate-config needs a FILE');
  });

  it('serve refuses an invalid configuration file with exit code 2', async () => {
    const result = await run(['serve', '--config', fixture('broken/bad-enum.yaml')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('logging.level');
  });

  it('serve refuses invalid flag values with exit code 2, naming the flag', async () => {
    const result = await run(['serve', '--grpc-address', 'localhost', '--log-level', 'loud']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--grpc-address: grpc.address:');
    expect(result.stderr).toContain('--log-level: logging.level:');
  });

  it('serve starts, prints one ready line, and exits 0 on SIGTERM', async () => {
    const grpcAddress = `127.0.0.1:${await freePort()}`;
    const adminAddress = `127.0.0.1:${await freePort()}`;
    const server = start(['serve', '--grpc-address', grpcAddress, '--admin-address', adminAddress]);
    expect(await readyLine(server)).toBe(`tokenwarden ready grpc=${grpcAddress} admin=${adminAddress}`);
    server.child.kill('SIGTERM');
    const result = await server.exited;
    expect(result.code).toBe(0);
    // No secret configured: a generated one, announced (never shown) once.
    expect(result.stderr.match(/random secret of this process/g)).toHaveLength(1);
  });

  it('serve exits 0 on SIGINT too, with the admin server disabled and no generated-secret warning', async () => {
    const grpcAddress = `127.0.0.1:${await freePort()}`;
    const server = start(['serve', '--grpc-address', grpcAddress, '--admin-address', ''], {
      TOKENWARDEN_FINGERPRINT_SECRET: 'a-real-secret',
    });
    expect(await readyLine(server)).toBe(`tokenwarden ready grpc=${grpcAddress} admin=disabled`);
    server.child.kill('SIGINT');
    const result = await server.exited;
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain('random secret');
    expect(result.stderr + result.stdout).not.toContain('a-real-secret');
  });

  it('serve refuses the published development fingerprint secret with exit code 2, without printing it', async () => {
    const result = await run(['serve', '--admin-address', ''], { TOKENWARDEN_FINGERPRINT_SECRET: 'tokenwarden-dev-insecure-secret' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('TOKENWARDEN_FINGERPRINT_SECRET: is the published development value');
    expect(result.stderr).not.toContain('tokenwarden-dev-insecure-secret');
  });

  it('serve exits 1 naming the address when the port is in use', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = `127.0.0.1:${(blocker.address() as { port: number }).port}`;
    try {
      const result = await run(['serve', '--grpc-address', busy, '--admin-address', '']);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`cannot listen on ${busy}: address already in use`);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});
