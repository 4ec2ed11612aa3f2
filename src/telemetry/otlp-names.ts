/**
 * How a Prometheus series of /metrics is named on the OTLP side. The rule is the inverse of what an
 * OpenTelemetry Collector's Prometheus exporter does (append the unit as a suffix, `_total` to
 * monotonic sums, dots to underscores), so that metrics sent over OTLP come back out of a Collector
 * with exactly the names and labels of /metrics, and one dashboard serves both paths:
 *
 * - counters lose `_total`; a `_seconds` or `_bytes` suffix becomes the unit (`s`, `By`);
 * - the GenAI metrics take the conventions' dotted names and units;
 * - the GenAI labels (and `error_type`) take the conventions' dotted attribute names; others stay.
 */

export type PromMetricType = 'counter' | 'gauge' | 'histogram';

export interface OtlpMetricName {
  name: string;
  /** UCUM unit, or '' when the name carries none. */
  unit: string;
}

/** The GenAI semantic conventions' metrics, by their Prometheus names. */
const GEN_AI_METRICS: Readonly<Record<string, OtlpMetricName>> = {
  gen_ai_client_token_usage: { name: 'gen_ai.client.token.usage', unit: '{token}' },
  gen_ai_client_operation_duration_seconds: { name: 'gen_ai.client.operation.duration', unit: 's' },
  gen_ai_client_operation_time_to_first_chunk_seconds: { name: 'gen_ai.client.operation.time_to_first_chunk', unit: 's' },
};

/** Unit suffixes of Prometheus names and their UCUM units. */
const UNIT_SUFFIXES: ReadonlyArray<[suffix: string, unit: string]> = [
  ['_seconds', 's'],
  ['_bytes', 'By'],
];

/** The conventions' attribute names of tokenwarden's labels; labels not listed keep their name. */
const ATTRIBUTES: Readonly<Record<string, string>> = {
  gen_ai_provider_name: 'gen_ai.provider.name',
  gen_ai_request_model: 'gen_ai.request.model',
  gen_ai_response_model: 'gen_ai.response.model',
  gen_ai_operation_name: 'gen_ai.operation.name',
  gen_ai_token_type: 'gen_ai.token.type',
  error_type: 'error.type',
};

export function otlpMetricName(promName: string, type: PromMetricType): OtlpMetricName {
  const genAi = Object.hasOwn(GEN_AI_METRICS, promName) ? GEN_AI_METRICS[promName] : undefined;
  if (genAi !== undefined) return genAi;
  const name = type === 'counter' && promName.endsWith('_total') ? promName.slice(0, -'_total'.length) : promName;
  for (const [suffix, unit] of UNIT_SUFFIXES) {
    if (name.endsWith(suffix) && name.length > suffix.length) return { name: name.slice(0, -suffix.length), unit };
  }
  return { name, unit: '' };
}

export function otlpAttributeName(label: string): string {
  return Object.hasOwn(ATTRIBUTES, label) ? ATTRIBUTES[label]! : label;
}
