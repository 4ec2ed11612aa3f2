/**
 * Validates Envoy bootstrap files offline: `npx tsx test/envoy/cli.ts envoy.yaml [...]`.
 * Prints every issue as `file:line: path: message`; exits with 1 if any file has issues.
 */
import fs from 'node:fs';
import { validateEnvoyYaml } from './validate.js';

let failed = false;
for (const file of process.argv.slice(2)) {
  const issues = validateEnvoyYaml(fs.readFileSync(file, 'utf8'));
  for (const i of issues) console.log(`${file}:${i.line ?? '?'}: ${i.path || '(document)'}: ${i.message}`);
  if (issues.length > 0) failed = true;
  else console.log(`${file}: ok`);
}
process.exitCode = failed ? 1 : 0;
