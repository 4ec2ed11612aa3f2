/** Runs `tokenwarden serve` as a separate process (as deployed), for multi-process tests and benches. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Sidecar {
  child: ChildProcess;
  grpcAddress: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `tokenwarden serve --config FILE` and resolves once it printed its ready line. */
export function startSidecar(configFile: string, grpcAddress: string): Promise<Sidecar> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', configFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const sidecar = { child, grpcAddress, stderr: () => stderr, exited };
  return new Promise((resolve, reject) => {
    child.stdout.on('data', () => {
      if (stdout.includes('tokenwarden ready')) resolve(sidecar);
    });
    void exited.then((code) => reject(new Error(`tokenwarden exited with ${code} before ready:\n${stderr}`)));
  });
}
