/** Parts of an ExchangeRecord worked out from what the Exchange saw: server host, latency, estimated usage. */
import type { ExchangeLatency, Usage } from '../domain.js';

/** The host of an :authority value, without its port (IPv6 literals lose their brackets). */
export function hostOf(authority: string): string | null {
  if (authority === '') return null;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end > 1 ? authority.slice(1, end) : null;
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon) || null;
}

/**
 * Latency from message arrival times (clock ms; null when not seen): null without a request or
 * response headers (the response did not come from the upstream). `first` is the first streamed
 * output, null for a response that is not a stream.
 */
export function latencyOf(
  start: number | null,
  responseHeaders: number | null,
  first: number | null,
  end: number | null,
  outputTokens: number | null,
): ExchangeLatency | null {
  if (start === null || responseHeaders === null) return null;
  const since = (t: number | null): number | null => (t === null ? null : (t - start) / 1000);
  const out = outputTokens;
  return {
    duration: since(end),
    timeToFirstByte: since(responseHeaders),
    timeToFirstChunk: since(first),
    timePerOutputToken: first !== null && end !== null && out !== null && out >= 2 ? (end - first) / 1000 / (out - 1) : null,
  };
}

/** Usage counted by tokenwarden itself: prompt (null when the request was not readable) and output. */
export function estimatedUsage(inputTokens: number | null, outputTokens: number): Usage {
  return {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    total_tokens: inputTokens === null ? null : inputTokens + outputTokens,
    cached_input_tokens: null,
    cache_write_tokens: null,
    reasoning_tokens: null,
  };
}
