import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';
import type { TokenwardenConfig } from '../src/config/types.js';
import { createReloader, diffSections, fileFingerprint, watchConfig, type ReloadResult } from '../src/config/watch.js';
import type { Budget, BudgetTemplate } from '../src/governance/types.js';
import type { Logger } from '../src/log.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const dirs: string[] = [];
const children: ChildProcess[] = [];
const stops: (() => void)[] = [];

afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tw-reload-'));
  dirs.push(dir);
  return dir;
}

/** Resolves once `condition` returns a value other than undefined/false; rejects with `describe()` after 15 s. */
async function waitFor<T>(condition: () => T | undefined | false | Promise<T | undefined | false>, describe: () => string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting; ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface Budgets {
  [id: string]: number;
}

/** A configuration with one enforce budget per entry: `total_tokens` per day. */
function yaml(budgets: Budgets, extra = ''): string {
  const entries = Object.entries(budgets).map(([id, max]) => `  - id: ${id}\n    mode: enforce\n    limits:\n      - { total_tokens: ${max}, per: day }\n`);
  return `budgets:\n${entries.join('')}${extra}`;
}

function logCapture(): { log: Logger; lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      lines.push({ level, msg, fields });
    };
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('diffSections', () => {
  const parse = (text: string): TokenwardenConfig => parseConfig(text, 'c.yaml', {});

  it('finds no change between two readings of the same file', () => {
    const text = `${yaml({ a: 1 })}budget_templates:\n  - { id: t, group_by: consumer, limits: [{ cost_usd: 1, per: month }] }\nmetrics: { consumer_labels: true }\n`;
    expect(diffSections(parse(text), parse(text))).toEqual({ live: [], restart: [] });
  });

  it('treats budgets and templates as live and names every other changed section as needing a restart', () => {
    const old = parse(yaml({ a: 1 }));
    const next = parse(`${yaml({ a: 2 })}budget_templates:\n  - { id: t, group_by: consumer, limits: [{ requests: 1, per: minute }] }\ngrpc: { address: "127.0.0.1:1" }\nmetrics: { consumer_labels: true }\n`);
    expect(diffSections(old, next)).toEqual({ live: ['budgets', 'budget_templates'], restart: ['grpc', 'metrics'] });
  });

  it('sees a changed nested value, and not a mere reordering of keys or an explicit default', () => {
    const base = parse('store: { type: memory, retention_hours: 10 }\n');
    expect(diffSections(base, parse('store: { retention_hours: 10, type: memory }\n'))).toEqual({ live: [], restart: [] });
    expect(diffSections(base, parse('store: { type: memory, retention_hours: 11 }\n')).restart).toEqual(['store']);
    expect(diffSections(parse(''), parse('logging: { level: info }\n'))).toEqual({ live: [], restart: [] });
  });
});

describe('createReloader', () => {
  const file = 'policy.yaml';
  function setup(initialText: string) {
    let text = initialText;
    const applied: { budgets: Budget[]; templates: BudgetTemplate[] }[] = [];
    const results: ReloadResult[] = [];
    let refuseApply: string | undefined;
    const { log, lines } = logCapture();
    const reload = createReloader({
      file,
      initial: parseConfig(initialText, file, {}),
      load: () => parseConfig(text, file, {}),
      apply: (budgets, templates) => {
        if (refuseApply !== undefined) throw new Error(refuseApply);
        applied.push({ budgets, templates });
      },
      log,
      done: (result) => results.push(result),
    });
    return {
      reload,
      applied,
      results,
      lines,
      write: (next: string) => (text = next),
      failApply: (message: string | undefined) => (refuseApply = message),
    };
  }

  it('applies changed budgets, and does nothing when they did not change', () => {
    const r = setup(yaml({ a: 100 }));
    expect(r.reload('SIGHUP')).toBe('unchanged');
    expect(r.applied).toHaveLength(0);

    r.write(yaml({ a: 200, b: 5 }));
    expect(r.reload('file change')).toBe('applied');
    expect(r.applied[0]?.budgets.map((b) => [b.id, b.limits[0]?.max])).toEqual([
      ['a', 200],
      ['b', 5],
    ]);
    expect(r.lines).toContainEqual(expect.objectContaining({ level: 'info', fields: expect.objectContaining({ trigger: 'file change', budgets: 2 }) }));

    // Compared with what is now in force, not with the startup file.
    expect(r.reload('SIGHUP')).toBe('unchanged');
    expect(r.applied).toHaveLength(1);
    expect(r.results).toEqual(['unchanged', 'applied', 'unchanged']);
  });

  it('refuses an invalid file as a whole, logging each problem with file:line:col and key path', () => {
    const r = setup(yaml({ a: 100 }));
    r.write(`${yaml({ a: 999 })}  - id: b\n    limits:\n      - { total_tokens: 1, per: fortnight }\n`);
    expect(r.reload('file change')).toBe('refused');
    expect(r.applied).toHaveLength(0);
    const error = r.lines.find((line) => line.level === 'error');
    expect(error?.msg).toContain('refused');
    expect(error?.fields['problems']).toEqual([expect.stringMatching(/^policy\.yaml:8:33: budgets\[1\]\.limits\[0\]\.per: /)]);
    expect(r.results).toEqual(['refused']);
  });

  it('names the sections that need a restart, and applies the budgets all the same', () => {
    const r = setup(yaml({ a: 100 }));
    r.write(`${yaml({ a: 300 })}grpc: { address: "127.0.0.1:1" }\nlogging: { level: debug }\n`);
    expect(r.reload('file change')).toBe('applied');
    const warning = r.lines.find((line) => line.level === 'warn');
    expect(warning?.msg).toContain('grpc, logging');
    expect(warning?.fields['sections']).toEqual(['grpc', 'logging']);

    // Still pending on the next reload: the server runs with the old grpc and logging sections.
    r.write(`${yaml({ a: 300 })}grpc: { address: "127.0.0.1:1" }\nlogging: { level: debug }\n# edited\n`);
    expect(r.reload('SIGHUP')).toBe('unchanged');
    expect(r.lines.filter((line) => line.level === 'warn')).toHaveLength(2);
  });

  it('keeps the old policy when the server refuses the budgets, and retries them on the next reload', () => {
    const r = setup(yaml({ a: 100 }));
    r.write(yaml({ a: 200 }));
    r.failApply('duplicate budget id "a"');
    expect(r.reload('file change')).toBe('refused');
    expect(r.lines.find((line) => line.level === 'error')?.fields['problems']).toEqual(['duplicate budget id "a"']);
    r.failApply(undefined);
    expect(r.reload('SIGHUP')).toBe('applied');
  });

  it('reports an unreadable file as refused', () => {
    const { log, lines } = logCapture();
    const reload = createReloader({
      file,
      initial: parseConfig('', file, {}),
      load: () => {
        throw new ConfigError([{ source: file, path: '', message: 'file not found' }]);
      },
      apply: () => {},
      log,
    });
    expect(reload('file change')).toBe('refused');
    expect(lines[0]?.fields['problems']).toEqual(['policy.yaml: file not found']);
  });
});

describe('fileFingerprint', () => {
  it('follows the content, not the timestamps, and gives missing files and non-files their own', () => {
    const dir = tempDir();
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'a: 1\n');
    const first = fileFingerprint(path);
    writeFileSync(path, 'a: 1\n');
    expect(fileFingerprint(path)).toBe(first);
    writeFileSync(path, 'a: 2\n');
    expect(fileFingerprint(path)).not.toBe(first);
    expect(fileFingerprint(join(dir, 'missing.yaml'))).toBe('error:ENOENT');
    expect(fileFingerprint(dir)).toMatch(/^not-a-file:/);
  });

  it('does not read a named pipe (which would block)', () => {
    const fifo = join(tempDir(), 'pipe');
    if (spawnSync('mkfifo', [fifo]).status !== 0) return;
    expect(fileFingerprint(fifo)).toMatch(/^not-a-file:/);
  });
});

describe('watchConfig', () => {
  function watched(path: string, options: Parameters<typeof watchConfig>[2] = { intervalMs: 50 }) {
    const seen = { changes: 0 };
    stops.push(watchConfig(path, () => (seen.changes += 1), options));
    const next = async (change: () => void): Promise<void> => {
      const before = seen.changes;
      change();
      await waitFor(() => seen.changes > before, () => `no change seen after ${before} changes`);
    };
    return { seen, next };
  }

  it('sees in-place writes, editor-style renames, deletion and re-creation', async () => {
    const dir = tempDir();
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'v: 1\n');
    const { next } = watched(path);
    await next(() => writeFileSync(path, 'v: 2\n'));
    await next(() => {
      writeFileSync(join(dir, '.c.yaml.swp'), 'v: 3\n');
      renameSync(join(dir, '.c.yaml.swp'), path);
    });
    await next(() => unlinkSync(path));
    await next(() => writeFileSync(path, 'v: 4\n'));
  });

  it('sees a Kubernetes ConfigMap update (the ..data symlink swapped to a new directory)', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'c.yaml'), 'v: 1\n');
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync(join('..data', 'c.yaml'), join(dir, 'c.yaml'));
    const { next } = watched(join(dir, 'c.yaml'));
    await next(() => {
      mkdirSync(join(dir, '..v2'));
      writeFileSync(join(dir, '..v2', 'c.yaml'), 'v: 2\n');
      symlinkSync('..v2', join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    });
  });

  it('reports a change made before it started when given the fingerprint of what was loaded', async () => {
    const path = join(tempDir(), 'c.yaml');
    writeFileSync(path, 'v: 1\n');
    const loaded = fileFingerprint(path);
    writeFileSync(path, 'v: 2\n');
    const { seen } = watched(path, { intervalMs: 50, baseline: loaded });
    await waitFor(() => seen.changes === 1, () => 'the earlier change was not reported');
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: `tokenwarden serve --config FILE`

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Serving {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  admin: string;
  exited: Promise<number | null>;
}

async function serve(file: string, flags: string[] = []): Promise<Serving> {
  const admin = `127.0.0.1:${await freePort()}`;
  const grpc = `127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file, '--grpc-address', grpc, '--admin-address', admin, ...flags], {
    cwd: root,
    env: { ...process.env, TOKENWARDEN_FINGERPRINT_SECRET: 'test-secret' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let ended = false;
  void exited.then(() => (ended = true));
  await waitFor(
    () => {
      if (ended) throw new Error(`serve exited before ready:\n${output.stderr}`);
      return output.stdout.includes('tokenwarden ready');
    },
    () => output.stderr,
  );
  return { child, output, admin, exited };
}

/** The total_tokens limit of every budget in force, by id, as the admin API shows it. */
async function limits(server: Serving): Promise<Budgets> {
  const response = await fetch(`http://${server.admin}/api/v1/budgets`);
  const body = (await response.json()) as { items: { id: string; limits: { total_tokens: number }[] }[] };
  return Object.fromEntries(body.items.map((item) => [item.id, item.limits[0]?.total_tokens ?? -1]));
}

async function metric(server: Serving, line: string): Promise<boolean> {
  return (await (await fetch(`http://${server.admin}/metrics`)).text()).split('\n').includes(line);
}

async function until(server: Serving, expected: Budgets): Promise<void> {
  let last: Budgets = {};
  await waitFor(
    async () => {
      last = await limits(server);
      return JSON.stringify(last) === JSON.stringify(expected);
    },
    () => `budgets ${JSON.stringify(last)}, expected ${JSON.stringify(expected)}\n${server.output.stderr}`,
  );
}

async function stopped(server: Serving): Promise<number | null> {
  server.child.kill('SIGTERM');
  return server.exited;
}

describe('tokenwarden serve --config: hot reload', () => {
  it('applies budgets from a changed file (ConfigMap swap, editor rename), refuses an invalid one, and names restart-only sections', async () => {
    // The layout of a Kubernetes ConfigMap volume: config.yaml -> ..data/config.yaml, ..data -> ..v1.
    const dir = tempDir();
    const file = join(dir, 'config.yaml');
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'config.yaml'), yaml({ 'team-a': 1000 }));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync(join('..data', 'config.yaml'), file);

    const server = await serve(file);
    expect(await limits(server)).toEqual({ 'team-a': 1000 });

    mkdirSync(join(dir, '..v2'));
    writeFileSync(join(dir, '..v2', 'config.yaml'), yaml({ 'team-a': 2000, 'team-b': 50 }));
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await until(server, { 'team-a': 2000, 'team-b': 50 });
    expect(await metric(server, 'tokenwarden_config_reloads_total{result="applied"} 1')).toBe(true);

    // An invalid edit: refused as a whole, with the startup loader's file:line:col messages.
    writeFileSync(file, `${yaml({ 'team-a': 1 })}  - id: team-c\n    limits:\n      - { total_tokens: 1, per: fortnight }\n`);
    await waitFor(() => server.output.stderr.includes('configuration reload refused'), () => server.output.stderr);
    expect(server.output.stderr).toContain(`${file}:8:33: budgets[1].limits[0].per: expected one of minute`);
    expect(await limits(server)).toEqual({ 'team-a': 2000, 'team-b': 50 });
    expect(await metric(server, 'tokenwarden_config_last_reload_successful 0')).toBe(true);

    // An editor's write-and-rename (which replaces the symlink), also changing a restart-only section.
    writeFileSync(join(dir, '.config.yaml.tmp'), `${yaml({ 'team-a': 3000 })}metrics: { consumer_labels: true }\n`);
    renameSync(join(dir, '.config.yaml.tmp'), file);
    await until(server, { 'team-a': 3000 });
    await waitFor(() => server.output.stderr.includes('take effect only after a restart: metrics'), () => server.output.stderr);
    expect(await metric(server, 'tokenwarden_config_last_reload_successful 1')).toBe(true);

    expect(await stopped(server)).toBe(0);
  });

  it('with --no-watch reloads on SIGHUP', async () => {
    const file = join(tempDir(), 'config.yaml');
    writeFileSync(file, yaml({ org: 10 }));
    const server = await serve(file, ['--no-watch']);
    writeFileSync(file, yaml({ org: 20 }));
    server.child.kill('SIGHUP');
    await until(server, { org: 20 });
    expect(server.output.stderr).toMatch(/"msg":"configuration reloaded[^\n]*"trigger":"SIGHUP"/);
    expect(await stopped(server)).toBe(0);
  });
});
