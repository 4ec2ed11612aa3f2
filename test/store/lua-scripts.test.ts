/** The Redis scripts live in src/store/lua/*.lua: each is used, agrees with its encoder, and ships in dist/. */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeFinalise, encodeReserve, FINALISE_ARGS, ITEM_ARGS, LedgerKeys } from '../../src/ledger/script.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LUA_DIR = path.join(ROOT, 'src/store/lua');
const scripts = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));

describe('Redis scripts', () => {
  it('are each loaded by the code', () => {
    const code = ['src/store', 'src/ledger', 'src/registry', 'src/inventory']
      .flatMap((dir) => readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(path.join(ROOT, dir, f), 'utf8')))
      .join('\n');
    expect(scripts.length).toBeGreaterThan(5);
    for (const f of scripts) expect(code, f).toContain(`loadLua('${f.replace(/\.lua$/, '')}')`);
  });

  it('read as many arguments per counter as the encoders write', () => {
    expect(readFileSync(path.join(LUA_DIR, 'ledger-reserve.lua'), 'utf8')).toContain(`local ITEM_ARGS = ${ITEM_ARGS}\n`);
    expect(readFileSync(path.join(LUA_DIR, 'ledger-finalise.lua'), 'utf8')).toContain(`local FINALISE_ARGS = ${FINALISE_ARGS}\n`);
    const item = { counter: 'c', budgetId: 'b', max: 10, amount: 1, enforce: true, windowEndMs: 2_000_000 };
    const one = encodeReserve(new LedgerKeys('tw'), { requestId: 'r', leaseMs: 1000, items: [item], consumer: 'a', nowMs: 1_000_000 }, 1000).args;
    const two = encodeReserve(new LedgerKeys('tw'), { requestId: 'r', leaseMs: 1000, items: [item, item], consumer: 'a', nowMs: 1_000_000 }, 1000).args;
    expect(two.length - one.length).toBe(ITEM_ARGS);
    const settled = (n: number) => encodeFinalise('r', { requestId: 'r', actual: Object.fromEntries([...Array(n).keys()].map((i) => [`c${i}`, 1])) }, 1_000_000);
    expect(settled(2).length - settled(1).length).toBe(FINALISE_ARGS);
  });

  it('are copied into dist/ by the build, next to the compiled code that reads them', () => {
    const build = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { build: string } }).scripts.build;
    const copy = /node -e "(.*)"$/.exec(build)?.[1];
    expect(copy, 'the build script ends with the copy of the .lua files').toBeDefined();
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-lua-'));
    try {
      cpSync(LUA_DIR, path.join(dir, 'src/store/lua'), { recursive: true });
      writeFileSync(path.join(dir, 'src/store/lua.ts'), '');
      execFileSync(process.execPath, ['-e', copy!.replace(/\\"/g, '"')], { cwd: dir });
      for (const f of scripts) expect(existsSync(path.join(dir, 'dist/store/lua', f)), f).toBe(true);
      expect(existsSync(path.join(dir, 'dist/store/lua.ts'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
