/**
 * The programs the test suite needs besides Node: where the tests look for them (the one place:
 * test/support/redis-server.ts and test/console/support.ts read their paths from here), and the pure
 * decision `npm test`'s pretest step (scripts/test-prerequisites.ts) takes from what is present.
 */
import { accessSync, constants, statSync } from 'node:fs';

export interface Prerequisite {
  /** How the one-line message names it. */
  name: string;
  /** The environment variable that points the tests at another binary. */
  envVar: string;
  /** Where Debian's package installs it; the tests look there when envVar is unset. */
  defaultPath: string;
  debianPackage: string;
  neededBy: string;
}

export const REDIS_SERVER: Prerequisite = {
  name: 'redis-server',
  envVar: 'REDIS_SERVER',
  defaultPath: '/usr/bin/redis-server',
  debianPackage: 'redis-server',
  neededBy: 'the store tests',
};

export const CHROMIUM: Prerequisite = {
  name: 'Chromium',
  envVar: 'CHROMIUM_PATH',
  defaultPath: '/usr/bin/chromium',
  debianPackage: 'chromium',
  neededBy: "the console's browser tests",
};

export const PREREQUISITES: readonly Prerequisite[] = [REDIS_SERVER, CHROMIUM];

type Env = Record<string, string | undefined>;

/** The binary the tests use: $envVar when set (and not empty), else Debian's path. */
export function binaryPath(p: Prerequisite, env: Env = process.env): string {
  return env[p.envVar] || p.defaultPath;
}

/** An executable regular file. */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export interface Facts {
  /** The prerequisites whose binary is not an executable file. */
  missing: readonly Prerequisite[];
  env: Env;
  /** Running as root (apt-get can install). */
  root: boolean;
  /** A Debian system with apt-get. */
  apt: boolean;
  /** apt-get install already ran in this pretest (so a binary still missing will not appear). */
  installed: boolean;
}

export type Plan = { action: 'ready' } | { action: 'install'; packages: string[] } | { action: 'fail'; message: string };

/** What to do about what is missing: nothing, install Debian's packages, or stop with one sentence. */
export function plan(f: Facts): Plan {
  if (f.missing.length === 0) return { action: 'ready' };
  const overridden = f.missing.filter((p) => f.env[p.envVar]);
  const packages = f.missing.map((p) => p.debianPackage);
  if (overridden.length === 0 && f.root && f.apt && !f.installed) return { action: 'install', packages };

  const one = f.missing.length === 1;
  const them = one ? 'it' : 'them';
  const what = f.missing.map((p) => (f.env[p.envVar] ? `${p.name} (${p.envVar}=${f.env[p.envVar]} is not an executable file; ${p.neededBy})` : `${p.name} (${p.defaultPath}; ${p.neededBy})`));
  const list = one ? what[0]! : `${what.slice(0, -1).join(', ')} and ${what.at(-1)!}`;
  const vars = f.missing.map((p) => p.envVar).join(' / ');
  const install = `apt-get install -y ${packages.join(' ')}`;
  const unset = overridden.map((p) => p.envVar).join(' / ');
  let remedy: string;
  if (overridden.length === f.missing.length) remedy = `point ${vars} at ${one ? 'an existing binary' : 'existing binaries'}, or unset ${them} and run \`sudo ${install}\``;
  else if (f.installed) remedy = `\`${install}\` ran but did not provide ${them}: install ${them} by hand or set ${vars}`;
  else if (f.apt && overridden.length === 0) remedy = `run \`sudo ${install}\` (npm test does this itself when run as root), or set ${vars}`;
  else if (f.apt) remedy = `unset ${unset} and run \`sudo ${install}\`, or set ${vars} to existing binaries`;
  else remedy = `install ${them} with the system's package manager (on Debian: \`${install}\`) and set ${vars} unless ${one ? 'it lands' : 'they land'} at ${one ? 'that path' : 'those paths'}`;
  return { action: 'fail', message: `npm test cannot run: ${list} ${one ? 'is' : 'are'} missing; ${remedy}.` };
}
