/**
 * OpenAI chat streams report usage only with `stream_options.include_usage`: tokenwarden adds it to
 * the request when the client did not ask, and hides the usage-only chunk it caused from the client.
 */
import type { UsageInjection } from '../types.js';
import type { SseEvent } from '../decode/sse.js';

/**
 * Providers whose chat-completions streams report usage only with `stream_options.include_usage`.
 * (Mistral and Groq report it anyway: the finish chunk, `x_groq.usage`.)
 */
const INCLUDE_USAGE_PROVIDERS: ReadonlySet<string> = new Set(['openai', 'azure_openai', 'vllm', 'openai_compatible']);

/** The body with `stream_options.include_usage: true`; null when it is not a JSON object that can take it. */
function withIncludeUsage(body: Buffer, parsed: unknown): Buffer | null {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const obj = parsed as Record<string, unknown>;
  if (!('stream_options' in obj)) {
    // Splice the key in after the opening brace: no re-serialisation of the (possibly large) body.
    const open = body.indexOf(0x7b);
    const rest = body.subarray(open + 1);
    const empty = Object.keys(obj).length === 0;
    return Buffer.concat([
      body.subarray(0, open + 1),
      Buffer.from(empty ? '"stream_options":{"include_usage":true}' : '"stream_options":{"include_usage":true},'),
      rest,
    ]);
  }
  const so = obj.stream_options;
  if (so !== null && typeof so !== 'object') return null;
  return Buffer.from(JSON.stringify({ ...obj, stream_options: { ...(so ?? {}), include_usage: true } }), 'utf8');
}

/**
 * The usage-only chunk that include_usage adds to an OpenAI-shaped stream: `choices: []` and a
 * non-null `usage`. Only ever applied to streams where tokenwarden injected include_usage.
 */
function isInjectedUsageEvent(ev: SseEvent): boolean {
  const d = ev.data;
  if (d.length === 0 || d[0] !== '{' || !d.includes('"usage"')) return false;
  try {
    const obj = JSON.parse(d) as { choices?: unknown; usage?: unknown };
    return Array.isArray(obj.choices) && obj.choices.length === 0 && obj.usage !== null && typeof obj.usage === 'object';
  } catch {
    return false;
  }
}

export const INCLUDE_USAGE: UsageInjection = {
  providers: INCLUDE_USAGE_PROVIDERS,
  rewrite: withIncludeUsage,
  isInjectedEvent: isInjectedUsageEvent,
};
