import { describe, expect, it } from 'vitest';
import { compileSelector } from '../../src/governance/select.js';
import type { RequestSubject } from '../../src/governance/types.js';

const subject = (overrides: Partial<RequestSubject> = {}): RequestSubject => ({
  consumer: 'checkout-svc',
  labels: { team: 'payments', env: 'prod' },
  provider: 'openai',
  model: 'gpt-4o-mini',
  api: 'chat_completions',
  ...overrides,
});

describe('compileSelector', () => {
  it('matches everything when the selector is empty', () => {
    const matches = compileSelector({});
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ consumer: '', labels: {}, model: '' }))).toBe(true);
  });

  it('matches consumers by id or glob, case-insensitively', () => {
    const matches = compileSelector({ consumers: ['checkout-*', 'billing'] });
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ consumer: 'BILLING' }))).toBe(true);
    expect(matches(subject({ consumer: 'billing-2' }))).toBe(false);
    expect(matches(subject({ consumer: 'search' }))).toBe(false);
  });

  it('matches providers and models by glob', () => {
    const matches = compileSelector({ providers: ['openai', 'azure_*'], models: ['gpt-4o*'] });
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ provider: 'azure_openai', model: 'gpt-4o' }))).toBe(true);
    expect(matches(subject({ provider: 'anthropic' }))).toBe(false);
    expect(matches(subject({ model: 'gpt-3.5-turbo' }))).toBe(false);
  });

  it('requires every label to be present with exactly that value', () => {
    const matches = compileSelector({ labels: { team: 'payments', env: 'prod' } });
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ labels: { team: 'payments' } }))).toBe(false);
    expect(matches(subject({ labels: { team: 'Payments', env: 'prod' } }))).toBe(false);
    // A consumer whose labels are not known yet is not in the team.
    expect(matches(subject({ labels: {} }))).toBe(false);
  });

  it('does not read labels from the prototype', () => {
    const matches = compileSelector({ labels: { toString: 'x' } });
    expect(matches(subject({ labels: {} }))).toBe(false);
  });

  it('matches APIs exactly', () => {
    const matches = compileSelector({ apis: ['messages', 'chat_completions'] });
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ api: 'embeddings' }))).toBe(false);
  });

  it('needs every given field to match', () => {
    const matches = compileSelector({ consumers: ['checkout-*'], providers: ['openai'], labels: { team: 'payments' }, apis: ['chat_completions'] });
    expect(matches(subject())).toBe(true);
    expect(matches(subject({ consumer: 'search' }))).toBe(false);
    expect(matches(subject({ provider: 'groq' }))).toBe(false);
    expect(matches(subject({ labels: { team: 'search' } }))).toBe(false);
    expect(matches(subject({ api: 'responses' }))).toBe(false);
  });

  it('treats an empty list as matching nothing', () => {
    expect(compileSelector({ consumers: [] })(subject())).toBe(false);
  });
});
