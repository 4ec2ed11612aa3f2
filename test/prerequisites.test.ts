/**
 * npm test's pretest decision (scripts/test-prerequisites.ts): what is present → nothing to do,
 * install Debian's packages, or one sentence saying what is missing and how to get it. The real
 * apt-get path is not run here.
 */
import { describe, expect, it } from 'vitest';
import { binaryPath, CHROMIUM, isExecutable, plan, PREREQUISITES, REDIS_SERVER, type Facts } from './support/prerequisites.js';

const debianRoot: Facts = { missing: [], env: {}, root: true, apt: true, installed: false };

function failure(f: Partial<Facts>): string {
  const p = plan({ ...debianRoot, ...f });
  if (p.action !== 'fail') throw new Error(`expected a failure, got ${JSON.stringify(p)}`);
  // One sentence: a single line, one final period, no sentence break inside.
  expect(p.message).not.toContain('\n');
  expect(p.message).toMatch(/^npm test cannot run: .*\.$/);
  expect(p.message.slice(0, -1)).not.toMatch(/\.\s+[A-Z]/);
  return p.message;
}

describe('test prerequisites', () => {
  it('looks where the tests look: the environment variable when set, else Debian’s path', () => {
    expect(PREREQUISITES).toEqual([REDIS_SERVER, CHROMIUM]);
    expect(binaryPath(CHROMIUM, {})).toBe('/usr/bin/chromium');
    expect(binaryPath(CHROMIUM, { CHROMIUM_PATH: '' })).toBe('/usr/bin/chromium');
    expect(binaryPath(CHROMIUM, { CHROMIUM_PATH: '/opt/chrome/chrome' })).toBe('/opt/chrome/chrome');
    expect(binaryPath(REDIS_SERVER, {})).toBe('/usr/bin/redis-server');
    expect(binaryPath(REDIS_SERVER, { REDIS_SERVER: '/usr/local/bin/redis-server' })).toBe('/usr/local/bin/redis-server');
    expect(isExecutable(process.execPath)).toBe(true);
    expect(isExecutable('/')).toBe(false);
    expect(isExecutable('/nonexistent/binary')).toBe(false);
  });

  it('does nothing when everything is present', () => {
    expect(plan(debianRoot)).toEqual({ action: 'ready' });
    expect(plan({ ...debianRoot, root: false, apt: false })).toEqual({ action: 'ready' });
  });

  it('installs the missing Debian packages as root on Debian', () => {
    expect(plan({ ...debianRoot, missing: [REDIS_SERVER, CHROMIUM] })).toEqual({ action: 'install', packages: ['redis-server', 'chromium'] });
    expect(plan({ ...debianRoot, missing: [CHROMIUM] })).toEqual({ action: 'install', packages: ['chromium'] });
  });

  it('without root, names what is missing and the command to install it', () => {
    const msg = failure({ missing: [REDIS_SERVER, CHROMIUM], root: false });
    expect(msg).toBe(
      "npm test cannot run: redis-server (/usr/bin/redis-server; the store tests) and Chromium (/usr/bin/chromium; the console's browser tests) are missing; " +
        'run `sudo apt-get install -y redis-server chromium` (npm test does this itself when run as root), or set REDIS_SERVER / CHROMIUM_PATH.',
    );
    expect(failure({ missing: [CHROMIUM], root: false })).toContain('Chromium (/usr/bin/chromium; the console\'s browser tests) is missing; run `sudo apt-get install -y chromium`');
  });

  it('off Debian, names what is missing and the package manager', () => {
    const msg = failure({ missing: [CHROMIUM], apt: false });
    expect(msg).toContain('Chromium (/usr/bin/chromium');
    expect(msg).toContain("install it with the system's package manager (on Debian: `apt-get install -y chromium`) and set CHROMIUM_PATH unless it lands at that path.");
  });

  it('does not install when the missing binary was named by its variable (a package would not put it there)', () => {
    const msg = failure({ missing: [CHROMIUM], env: { CHROMIUM_PATH: '/opt/chrome/chrome' } });
    expect(msg).toContain('Chromium (CHROMIUM_PATH=/opt/chrome/chrome is not an executable file;');
    expect(msg).toContain('point CHROMIUM_PATH at an existing binary, or unset it and run `sudo apt-get install -y chromium`.');
    const mixed = failure({ missing: [REDIS_SERVER, CHROMIUM], env: { CHROMIUM_PATH: '/opt/chrome/chrome' } });
    expect(mixed).toContain('unset CHROMIUM_PATH and run `sudo apt-get install -y redis-server chromium`, or set REDIS_SERVER / CHROMIUM_PATH to existing binaries.');
  });

  it('stops after one install attempt that did not provide the binary', () => {
    const msg = failure({ missing: [CHROMIUM], installed: true });
    expect(msg).toContain('`apt-get install -y chromium` ran but did not provide it: install it by hand or set CHROMIUM_PATH.');
  });
});
