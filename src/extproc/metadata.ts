/**
 * Dynamic metadata returned to Envoy (namespace `tokenwarden` by default) for access logs and
 * rate-limit filters; optionally the Envoy AI Gateway keys under `io.envoy.ai_gateway`.
 */
import type { MetadataConfig } from '../config/types.js';
import type { Exchange } from '../traffic/exchange.js';
import type { ExchangeRecord } from '../domain.js';
import type { WireStruct } from './protocol.js';
import { PlainStruct, type MetadataValue } from './struct.js';

export const AI_GATEWAY_NAMESPACE = 'io.envoy.ai_gateway';

type Fields = { [k: string]: MetadataValue | undefined };

function wrap(cfg: MetadataConfig, fields: Fields, aiGateway?: Fields): WireStruct {
  const ns: Fields = {};
  ns[cfg.namespace] = fields as MetadataValue;
  if (cfg.ai_gateway_compat && aiGateway) ns[AI_GATEWAY_NAMESPACE] = aiGateway as MetadataValue;
  // Undefined values are left out at every depth: unknown keys are simply absent.
  return new PlainStruct(ns);
}

/** Keys known once the request is complete: lets routing/rate-limit filters see the model early. */
export function requestMetadata(ex: Exchange, cfg: MetadataConfig): WireStruct {
  const route = ex.route;
  return wrap(
    cfg,
    {
      provider: route?.provider,
      api: route?.api,
      model: ex.model ?? undefined,
      stream: route ? ex.stream : undefined,
      consumer: ex.consumer?.id,
      error: ex.error ?? undefined,
      unsanctioned: ex.unsanctioned || undefined,
    },
    { model_name_override: ex.model ?? undefined },
  );
}

function num(v: number | null): number | undefined {
  return v === null ? undefined : v;
}

/** The full set, on the answer to the last message of the exchange. Unknown values are absent. */
export function exchangeMetadata(r: ExchangeRecord, cfg: MetadataConfig): WireStruct {
  const u = r.usage;
  return wrap(
    cfg,
    {
      provider: r.provider,
      api: r.api,
      model: r.model ?? undefined,
      response_model: r.responseModel ?? undefined,
      stream: r.stream,
      consumer: r.consumer?.id,
      input_tokens: num(u.input_tokens),
      output_tokens: num(u.output_tokens),
      total_tokens: num(u.total_tokens),
      cached_input_tokens: num(u.cached_input_tokens),
      cache_write_tokens: num(u.cache_write_tokens),
      reasoning_tokens: num(u.reasoning_tokens),
      usage_source: r.usageSource,
      cost_usd: r.costMicroUsd === null ? undefined : r.costMicroUsd / 1e6,
      error: r.error ?? undefined,
      // Only when a sanction policy flagged or blocked the model: absent otherwise (policy off).
      unsanctioned: r.unsanctioned || undefined,
    },
    {
      llm_input_token: num(u.input_tokens),
      llm_output_token: num(u.output_tokens),
      llm_total_token: num(u.total_tokens ?? sum(u.input_tokens, u.output_tokens)),
      model_name_override: r.model ?? undefined,
    },
  );
}

function sum(a: number | null, b: number | null): number | null {
  return a === null && b === null ? null : (a ?? 0) + (b ?? 0);
}
