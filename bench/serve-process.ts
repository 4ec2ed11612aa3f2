/**
 * A `tokenwarden serve` process from the sources, with its gRPC and admin servers on free loopback
 * ports and the memory store, for the bench scripts that watch one server (memory.ts, soak.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/sidecar-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ServeProcess {
  grpc: string;
  admin: string;
  stop(): Promise<void>;
}

/** Starts it with a config file written into `dir`; resolves once it prints its ready line. */
export async function startServeProcess(dir: string, fingerprintSecret: string): Promise<ServeProcess> {
  const grpc = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, [`grpc: { address: "${grpc}" }`, `admin: { address: "${admin}" }`, `consumer: { fingerprint_secret: ${fingerprintSecret} }`, 'logging: { level: warn }', ''].join('\n'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file, '--no-watch'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('tokenwarden ready')) resolve();
    });
    void exited.then(() => reject(new Error('tokenwarden exited before it was ready')));
  });
  return {
    grpc,
    admin,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
