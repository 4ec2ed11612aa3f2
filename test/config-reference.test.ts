import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/config-schema.js';
import { declaredSections, markedSections, README_PATH, renderReadme, renderSection } from '../scripts/config-reference.js';

const STALE = 'README.md configuration reference is stale: run `npx tsx scripts/config-reference.ts --write`';

describe('configuration reference', () => {
  const readme = readFileSync(README_PATH, 'utf8');

  it('is what scripts/config-reference.ts renders from the key declarations', () => {
    const rendered = renderReadme(readme);
    const stale = markedSections(readme).filter((name) => {
      const block = new RegExp(`<!-- config-reference:start ${name} -->\\n([\\s\\S]*?)\\n<!-- config-reference:end ${name} -->`).exec(readme);
      return block?.[1] !== renderSection(name);
    });
    expect(stale, `${STALE} (stale sections: ${stale.join(', ')})`).toEqual([]);
    expect(rendered === readme, STALE).toBe(true);
  });

  it('has a generated table for every top-level key', () => {
    expect(declaredSections().sort()).toEqual(Object.keys(configSchema.fields).sort());
    expect(markedSections(readme).sort()).toEqual(declaredSections().sort());
  });

  it('documents every declared key', () => {
    const table = renderSection('store');
    expect(table).toContain('| `store.redis.url_env` | environment variable name | absent |');
    expect(table).toContain('| `store.memory_max_records` | integer 1-10,000,000 | `100000` |');
  });
});
