/**
 * The Redis scripts, kept as .lua files in ./lua/ (copied next to the compiled code by `npm run
 * build`) and read once when their module loads.
 */
import { readFileSync } from 'node:fs';

export function loadLua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
}
