/** Assertions shared by the fixture replays (pure pipeline and through gRPC). */
import { expect } from 'vitest';
import type { ExchangeRecord } from '../../src/domain.js';
import { EMPTY_USAGE } from '../../src/domain.js';
import type { Fixture } from './fixtures.js';

const USAGE_KEYS = ['input_tokens', 'output_tokens', 'total_tokens', 'cached_input_tokens', 'cache_write_tokens', 'reasoning_tokens'] as const;

export function expectRecordMatchesFixture(record: ExchangeRecord, fx: Fixture): void {
  const e = fx.expected;
  expect(record.provider).toBe(e.provider);
  expect(record.api).toBe(e.api);
  expect(record.model).toBe(e.model);
  expect(record.responseModel).toBe(e.response_model);
  expect(record.stream).toBe(e.stream);
  expect(record.status).toBe(e.status);
  expect(record.error).toBe(e.error);
  expect(record.reportedUsage ?? { ...EMPTY_USAGE }).toEqual(e.usage);
  expect(record.completion).toBe('complete');
  const reported = USAGE_KEYS.some((k) => e.usage[k] !== null);
  if (reported) {
    expect(record.usageSource).toBe('reported');
    expect(record.usage).toEqual(e.usage);
  } else if (e.status >= 200 && e.status < 300) {
    // No usage reported by a 2xx: tokenwarden counts it itself and says so.
    expect(record.usageSource).toBe('estimated');
    expect(record.usage.output_tokens).toBeGreaterThanOrEqual(0);
  } else {
    expect(record.usageSource).toBe('none');
    expect(record.costMicroUsd).toBeNull();
  }
}

/** The `tokenwarden` dynamic metadata namespace for a completed exchange. */
export function expectMetadataMatchesRecord(md: Record<string, unknown> | undefined, record: ExchangeRecord): void {
  expect(md).toBeDefined();
  const m = md!;
  expect(m.provider).toBe(record.provider);
  expect(m.api).toBe(record.api);
  expect(m.model).toBe(record.model ?? undefined);
  expect(m.response_model).toBe(record.responseModel ?? undefined);
  expect(m.stream).toBe(record.stream);
  expect(m.consumer).toBe(record.consumer?.id);
  for (const k of USAGE_KEYS) expect(m[k]).toBe(record.usage[k] ?? undefined);
  expect(m.usage_source).toBe(record.usageSource);
  expect(m.cost_usd).toBe(record.costMicroUsd === null ? undefined : record.costMicroUsd / 1e6);
  expect(m.error).toBe(record.error ?? undefined);
}
