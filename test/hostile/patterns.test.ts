/**
 * Patterns from configuration cannot cause catastrophic backtracking: globs are matched without
 * regular expressions in linear time (checked against a reference matcher and timed on worst-case
 * patterns and subjects far longer than any real one), and no other code builds a RegExp from
 * configuration.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGlob } from '../../src/glob.js';
import { MAX_GLOB_CHARS } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/load.js';

/** Textbook dynamic-programming glob matcher: obviously right, O(n × m). */
function reference(pattern: string, subject: string): boolean {
  const p = pattern.toLowerCase();
  const s = subject.toLowerCase();
  let row = new Array<boolean>(s.length + 1).fill(false);
  row[0] = true;
  for (let i = 0; i < p.length; i++) {
    const next = new Array<boolean>(s.length + 1).fill(false);
    const c = p[i];
    if (c === '*') {
      next[0] = row[0] as boolean;
      for (let j = 1; j <= s.length; j++) next[j] = (row[j] as boolean) || (next[j - 1] as boolean);
    } else {
      for (let j = 1; j <= s.length; j++) next[j] = (row[j - 1] as boolean) && (c === '?' || c === s[j - 1]);
    }
    row = next;
  }
  return row[s.length] as boolean;
}

describe('compileGlob', () => {
  it('property: agrees with the reference matcher', () => {
    const alphabet = fc.constantFrom('a', 'b', 'A', '-', '/', '.', 'é', '😀');
    const pattern = fc.array(fc.oneof(alphabet, fc.constantFrom('*', '?')), { maxLength: 12 }).map((a) => a.join(''));
    const subject = fc.array(alphabet, { maxLength: 24 }).map((a) => a.join(''));
    fc.assert(
      fc.property(pattern, subject, (p, s) => {
        expect(compileGlob(p).matches(s)).toBe(reference(p, s));
      }),
      { numRuns: 5000 },
    );
  });

  it('property: segments with ? longer than one 32-bit word agree with the reference', () => {
    const chunk = fc.array(fc.constantFrom('a', 'b', '?'), { minLength: 30, maxLength: 100 }).map((a) => a.join(''));
    fc.assert(
      fc.property(chunk, chunk, fc.array(fc.constantFrom('a', 'b'), { maxLength: 300 }), (m1, m2, s) => {
        const p = `*${m1}*${m2}*`;
        const subject = s.join('');
        expect(compileGlob(p).matches(subject)).toBe(reference(p, subject));
      }),
      { numRuns: 500 },
    );
  });

  /** Patterns of the longest allowed length built to defeat naive matchers. */
  const WORST = [
    `*${'a?'.repeat((MAX_GLOB_CHARS - 3) >> 1)}b*`,
    `*${'a'.repeat(MAX_GLOB_CHARS - 3)}b*`,
    '*a'.repeat((MAX_GLOB_CHARS - 2) >> 1) + '*b',
    `${'?'.repeat(MAX_GLOB_CHARS - 2)}*b`,
    `*${'?'.repeat(MAX_GLOB_CHARS - 3)}b*`,
  ];

  it.each(WORST.map((p) => [p.slice(0, 24) + '...', p]))('worst case %s against an 8 MB subject stays linear', (_name, pattern) => {
    expect(pattern.length).toBeLessThanOrEqual(MAX_GLOB_CHARS);
    // Model names come from request bodies, so a subject can be as long as a body; 8 MiB is the full-parse limit.
    const subject = 'a'.repeat(8 * 1024 * 1024);
    const glob = compileGlob(pattern);
    const started = performance.now();
    expect(glob.matches(subject)).toBe(false);
    expect(glob.matches(`${subject}b`)).toBe(reference(pattern, 'a'.repeat(300) + 'b'));
    // ~0.3 s at most here; the naive search took 7.5 s for the first pattern (256 × 8 M comparisons).
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('glob patterns in every config section are validated by length and stay literal text', () => {
    const long = 'a'.repeat(MAX_GLOB_CHARS + 1);
    const sections = [
      `discovery:\n  self_hosted:\n    - { host: "${long}", provider: vllm }\n`,
      `budgets:\n  - { id: b, select: { models: ["${long}"] }, limits: [{ requests: 1, per: day }] }\n`,
      `budgets:\n  - { id: b, select: { consumers: ["${long}"] }, limits: [{ requests: 1, per: day }] }\n`,
      `budgets:\n  - { id: b, select: { providers: ["*${long}"] }, limits: [{ requests: 1, per: day }] }\n`,
      `consumer_rules:\n  - { id: r, match: "${long}" }\n`,
      `policies:\n  unsanctioned: { mode: monitor, allow: ["${long}"] }\n`,
      `metering:\n  price_overrides:\n    - { provider: openai, model: "${long}", input_per_mtok: 1 }\n`,
      `governance:\n  max_output_tokens_by_model:\n    - { model: "${long}", tokens: 10 }\n`,
    ];
    for (const yaml of sections) expect(() => parseConfig(yaml, 'x.yaml', {})).toThrow(/must be at most 256 characters/);
    // Regex syntax in a pattern is literal text, so "(a+)+$" cannot backtrack.
    expect(compileGlob('(a+)+$').matches(`${'a'.repeat(100_000)}!`)).toBe(false);
  });
});

describe('no RegExp built from configuration', () => {
  const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

  function sources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const full = path.join(dir, name);
      return statSync(full).isDirectory() ? sources(full) : full.endsWith('.ts') ? [full] : [];
    });
  }

  /** Every dynamic RegExp in src/ and why its source cannot come from a user's pattern. */
  const REVIEWED: Record<string, string> = {
    // Built from the constant ID_CHARS.
    'config/budgets-schema.ts:TEMPLATE_ID = new RegExp(`^${ID_CHARS}$`)': 'constant',
    'config/budgets-schema.ts:BUDGET_ID = new RegExp(`^${ID_CHARS}(?::\\\\S.*)?$`)': 'constant',
    // The tokenizer split patterns, from constants.
    "metering/pretokenize.ts:return { unicode: new RegExp(unicode, 'gu'), ascii: new RegExp(ascii, 'g') }": 'constant',
    // A port number (digits only, validated by the config schema) in an error message check.
    "cli.ts:return parsed.kind === 'unix' ? message.includes(parsed.path) : new RegExp(`:${parsed.port}(?!\\\\d)`).test(message)": 'port digits',
  };

  it('every `RegExp(` in src/ is one of the reviewed, non-configurable uses', () => {
    const found: string[] = [];
    for (const file of sources(SRC)) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line) => {
          if (!/\bRegExp\(/.test(line)) return;
          const code = line.trim().replace(/^(export )?(const|let) /, '').replace(/;$/, '');
          found.push(`${path.relative(SRC, file)}:${code}`);
        });
    }
    expect(found.sort()).toEqual(Object.keys(REVIEWED).sort());
  });
});
