import { describe, expect, it } from 'vitest';
import { compileGlob } from '../src/glob.js';

describe('compileGlob: model-name patterns', () => {
  it.each([
    ['gpt-4o', 'gpt-4o', true],
    ['gpt-4o', 'gpt-4o-mini', false],
    ['gpt-4o*', 'gpt-4o-mini', true],
    ['GPT-4O*', 'gpt-4o-2024-08-06', true],
    ['*', '', true],
    ['*', 'anything/at:all', true],
    ['meta-llama/*', 'meta-llama/Llama-3.3-70B-Instruct-Turbo', true],
    ['*claude*sonnet*', 'us.anthropic.claude-3-5-sonnet-20241022-v2:0', true],
    ['*claude*sonnet*', 'us.anthropic.claude-3-5-haiku', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['ab*bc', 'abc', false],
    ['*.*', 'gpt-4.1', true],
    ['gpt-?', 'gpt-4', true],
    ['gpt-?', 'gpt-4o', false],
    ['(a+)+$', '(a+)+$', true], // regex syntax is literal
  ])('%s ~ %s -> %s', (pattern, value, expected) => {
    expect(compileGlob(pattern).matches(value)).toBe(expected);
  });

  it('handles many stars against a long hostile name', () => {
    const pattern = compileGlob('*a*a*a*a*a*a*a*a*a*a*b');
    expect(pattern.matches('a'.repeat(100_000))).toBe(false);
    expect(pattern.matches('a'.repeat(100_000) + 'b')).toBe(true);
  });
});

describe('compileGlob', () => {
  it('matches * as any sequence and ? as one character, case-insensitively', () => {
    const g = compileGlob('*.Example.com');
    expect(g.matches('a.b.example.COM')).toBe(true);
    expect(g.matches('.example.com')).toBe(true);
    expect(g.matches('example.com')).toBe(false);
    expect(compileGlob('h?st').matches('host')).toBe(true);
    expect(compileGlob('h?st').matches('hst')).toBe(false);
    expect(compileGlob('a*b*c').matches('aXbYc')).toBe(true);
    expect(compileGlob('a*b*c').matches('aXcYb')).toBe(false);
    expect(compileGlob('ab*ba').matches('aba')).toBe(false);
    expect(compileGlob('*').matches('')).toBe(true);
    expect(compileGlob('exact').matches('exact')).toBe(true);
    expect(compileGlob('exact').matches('exactly')).toBe(false);
    expect(compileGlob('**a**').matches('xax')).toBe(true);
  });

  it('answers pathological patterns without backtracking blow-up', () => {
    const long = 'a'.repeat(100_000);
    expect(compileGlob('*a*a*a*a*b').matches(long)).toBe(false);
    expect(compileGlob('*a*a*a*a*b*').matches(long)).toBe(false);
    expect(compileGlob('*a?a*a?a*').matches(long)).toBe(true);
    expect(compileGlob(`${'*a'.repeat(50)}*b`).matches(long.slice(0, 5_000))).toBe(false);
  });
});
