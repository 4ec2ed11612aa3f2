/**
 * One span per LLM exchange, after the OpenTelemetry GenAI client span conventions, made from the
 * ExchangeRecord once the exchange is over: nothing is traced while a request is in flight, and
 * with tracing off nothing is made at all. A span carries names, counts and timings; never prompt
 * or response text (the record holds none). It is the child of the request's W3C traceparent, so
 * it shows up inside the caller's trace, which Envoy propagates.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import type { ExchangeRecord } from '../domain.js';
import { genAiOperationName, genAiProviderName } from './semconv.js';

/** error.type of a failed exchange: the HTTP status of an error answer, or `aborted`; undefined when it did not fail. */
export function exchangeErrorType(r: ExchangeRecord): string | undefined {
  if (r.status !== null && r.status >= 400) return String(r.status);
  return r.completion === 'aborted' ? 'aborted' : undefined;
}

/** `{gen_ai.operation.name} {gen_ai.request.model}` (the operation alone when no model was named). */
export function exchangeSpanName(r: ExchangeRecord): string {
  const operation = genAiOperationName(r.api, r.model);
  return r.model === null ? operation : `${operation} ${r.model}`;
}

export function exchangeSpanAttributes(r: ExchangeRecord): Attributes {
  const a: Attributes = {
    'gen_ai.operation.name': genAiOperationName(r.api, r.model),
    'gen_ai.provider.name': genAiProviderName(r.provider),
    'tokenwarden.api': r.api,
  };
  if (r.model !== null) a['gen_ai.request.model'] = r.model;
  if (r.responseModel !== null) a['gen_ai.response.model'] = r.responseModel;
  if (r.usage.input_tokens !== null) a['gen_ai.usage.input_tokens'] = r.usage.input_tokens;
  if (r.usage.output_tokens !== null) a['gen_ai.usage.output_tokens'] = r.usage.output_tokens;
  if (r.serverAddress !== null) a['server.address'] = r.serverAddress;
  const errorType = exchangeErrorType(r);
  if (errorType !== undefined) a['error.type'] = errorType;
  if (r.consumer !== null) a['tokenwarden.consumer.id'] = r.consumer.id;
  if (r.costMicroUsd !== null) a['tokenwarden.cost_usd'] = r.costMicroUsd / 1e6;
  return a;
}

/** The context of the request's traceparent (a remote parent), or the root context without a valid one. */
export function parentContext(traceparent: string | null): Context {
  const parent = traceparent === null ? null : parseTraceParent(traceparent);
  if (parent === null || !trace.isSpanContextValid(parent)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true });
}

export function recordExchangeSpan(tracer: Tracer, r: ExchangeRecord): void {
  const attributes = exchangeSpanAttributes(r);
  const span = tracer.startSpan(exchangeSpanName(r), { kind: SpanKind.CLIENT, startTime: r.startedAt, attributes }, parentContext(r.traceparent));
  if (attributes['error.type'] !== undefined) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(r.endedAt);
}
