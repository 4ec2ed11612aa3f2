import { describe, expect, it } from 'vitest';
import { Glob } from '../../src/metering/glob.js';

describe('Glob', () => {
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
    ['gpt-?', 'gpt-4', false], // only * is special
    ['gpt-?', 'gpt-?', true],
    ['(a+)+$', '(a+)+$', true], // regex syntax is literal
  ])('%s ~ %s -> %s', (pattern, value, expected) => {
    expect(new Glob(pattern).matches(value)).toBe(expected);
  });

  it('handles many stars against a long hostile name', () => {
    const pattern = new Glob('*a*a*a*a*a*a*a*a*a*a*b');
    expect(pattern.matches('a'.repeat(100_000))).toBe(false);
    expect(pattern.matches('a'.repeat(100_000) + 'b')).toBe(true);
  });
});
