/**
 * Writes bench/ghz/NAME.json for every scenario (run after changing bench/driver/scenarios.ts;
 * test/bench-driver.test.ts fails while a file differs from what this writes).
 *
 *   npx tsx bench/ghz/generate.ts
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ghzConfig } from '../driver/ghz-config.js';
import { SCENARIOS } from '../driver/scenarios.js';

for (const s of SCENARIOS) {
  const file = fileURLToPath(new URL(`./${s.name}.json`, import.meta.url));
  writeFileSync(file, `${JSON.stringify(ghzConfig(s), null, 2)}\n`);
  process.stdout.write(`${file}\n`);
}
