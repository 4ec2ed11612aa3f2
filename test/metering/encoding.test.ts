import { describe, expect, it } from 'vitest';
import { encodingForModel } from '../../src/metering/encoding.js';

describe('encodingForModel', () => {
  it.each([
    ['openai', 'gpt-4o', 'o200k_base'],
    ['openai', 'gpt-4o-mini-2024-07-18', 'o200k_base'],
    ['openai', 'gpt-4.1-2025-04-14', 'o200k_base'],
    ['openai', 'gpt-5-mini-2025-08-07', 'o200k_base'],
    ['openai', 'o1', 'o200k_base'],
    ['openai', 'o3-mini', 'o200k_base'],
    ['openai', 'o4-mini-2025-04-16', 'o200k_base'],
    ['openai', 'chatgpt-4o-latest', 'o200k_base'],
    ['openai_compatible', 'gpt-oss-120b', 'o200k_base'],
    ['groq', 'openai/gpt-oss-20b', 'o200k_base'],
    ['openai', 'GPT-4O', 'o200k_base'],
    ['openai', 'gpt-4', 'cl100k_base'],
    ['openai', 'gpt-4-turbo-2024-04-09', 'cl100k_base'],
    ['openai', 'gpt-3.5-turbo', 'cl100k_base'],
    ['azure_openai', 'gpt-35-turbo', 'cl100k_base'],
    ['azure_openai', 'gpt-4o-2024-11-20', 'o200k_base'],
    ['openai', 'text-embedding-3-small', 'cl100k_base'],
    ['openai', 'text-embedding-ada-002', 'cl100k_base'],
  ])('%s %s -> %s', (provider, model, encoding) => {
    expect(encodingForModel(provider, model)).toBe(encoding);
  });

  it.each([
    ['azure_openai', 'support-gpt4o'], // a deployment name that does not say the model
    ['anthropic', 'claude-sonnet-4-5'],
    ['gcp_vertex', 'gpt-4o'], // never a tiktoken model there
    ['vllm', 'meta-llama/Llama-3.1-8B-Instruct'],
    ['openai', 'o1x'],
    ['openai', 'davinci-002'],
    ['openai', null],
  ])('%s %s -> null', (provider, model) => {
    expect(encodingForModel(provider, model)).toBeNull();
  });
});
