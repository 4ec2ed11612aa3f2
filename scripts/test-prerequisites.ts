/**
 * `npm test`'s pretest step: makes sure redis-server and Chromium are where the tests look for them
 * (test/support/prerequisites.ts). Missing ones are installed from Debian's packages when running as
 * root on Debian (quietly; apt-get's output is shown only if it fails); otherwise this exits 1 with
 * one sentence naming what is missing and how to install it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { binaryPath, isExecutable, plan, PREREQUISITES, type Facts } from '../test/support/prerequisites.js';

function facts(installed: boolean): Facts {
  return {
    missing: PREREQUISITES.filter((p) => !isExecutable(binaryPath(p))),
    env: process.env,
    root: process.getuid?.() === 0,
    apt: existsSync('/etc/debian_version') && isExecutable('/usr/bin/apt-get'),
    installed,
  };
}

/** apt-get, non-interactive; its output is returned, to be shown only on failure. */
function aptGet(args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

let next = plan(facts(false));
if (next.action === 'install') {
  const packages = next.packages;
  console.error(`npm test: installing Debian packages ${packages.join(' ')} (apt-get, as root)`);
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...packages]]) {
    const r = aptGet(args);
    if (!r.ok) {
      console.error(r.output.trimEnd().split('\n').slice(-20).join('\n'));
      fail(`npm test cannot run: \`apt-get ${args.join(' ')}\` failed (its last lines are above), so ${packages.join(' and ')} could not be installed.`);
    }
  }
  next = plan(facts(true));
}
if (next.action === 'fail') fail(next.message);
