/** Which tiktoken encoding an OpenAI model family uses (pure; no tokenizer is loaded here). */

export type Encoding = 'o200k_base' | 'cl100k_base';

/** Providers that never serve a tiktoken-tokenised model: their counts would be a guess anyway. */
const NON_TIKTOKEN_PROVIDERS = new Set(['anthropic', 'gcp_gemini', 'gcp_vertex', 'cohere', 'mistral']);

/** Prefixes checked in order: the more specific `gpt-4o`/`gpt-4.1` come before `gpt-4`. */
const FAMILIES: ReadonlyArray<readonly [string, Encoding]> = [
  ['gpt-4o', 'o200k_base'],
  ['gpt-4.1', 'o200k_base'],
  ['gpt-4.5', 'o200k_base'],
  ['gpt-5', 'o200k_base'],
  ['gpt-oss', 'o200k_base'],
  ['chatgpt-4o', 'o200k_base'],
  ['gpt-4', 'cl100k_base'],
  ['gpt-3.5', 'cl100k_base'],
  ['gpt-35', 'cl100k_base'], // Azure's spelling of gpt-3.5
  ['text-embedding-3', 'cl100k_base'],
  ['text-embedding-ada-002', 'cl100k_base'],
];

/** o1, o3, o4 and their variants (`o3-mini`, `o4-mini-2025-04-16`), but not `o1x`. */
function isOSeries(model: string): boolean {
  if (model.length < 2 || model[0] !== 'o') return false;
  const digit = model[1];
  if (digit !== '1' && digit !== '3' && digit !== '4') return false;
  return model.length === 2 || model[2] === '-';
}

/**
 * The encoding for `model` at `provider`, or null when the model is not a known OpenAI family.
 * Azure deployments are matched by name too (a deployment named `gpt-4o-prod` counts as gpt-4o);
 * OpenAI models re-hosted elsewhere (`openai/gpt-oss-120b` on Groq, `openai.gpt-oss-20b-1:0` on
 * Bedrock) are recognised after their vendor prefix.
 */
export function encodingForModel(provider: string, model: string | null): Encoding | null {
  if (model === null || NON_TIKTOKEN_PROVIDERS.has(provider)) return null;
  let name = model.trim().toLowerCase();
  if (name.startsWith('openai/') || name.startsWith('openai.')) name = name.slice('openai/'.length);
  if (isOSeries(name)) return 'o200k_base';
  for (const [prefix, encoding] of FAMILIES) {
    if (name.startsWith(prefix)) return encoding;
  }
  return null;
}
