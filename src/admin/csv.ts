/**
 * CSV exports (RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break,
 * quotes doubled). Text cells that a spreadsheet would run as a formula (starting with = + - @, tab
 * or CR) are prefixed with `'`; consumer and model names come from traffic, so they are untrusted.
 */
import type { InventoryRecord, TokenCounts, UsagePoint } from '../inventory/types.js';
import { isoTime, microToUsd } from './views.js';

export type Cell = string | number | null;

const FORMULA_START = /^[=+\-@\t\r]/;

/** One field. Numbers are written as they are; text is guarded, then quoted if needed. */
export function csvCell(value: Cell): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvRow(cells: readonly Cell[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

const TOKEN_CLASSES = ['input', 'cached_input', 'cache_write', 'output', 'reasoning'] as const;
export const TOKEN_COLUMNS = (['reported', 'estimated'] as const).flatMap((source) => TOKEN_CLASSES.map((c) => `${source}_${c}_tokens`));

export function tokenCells(reported: TokenCounts, estimated: TokenCounts): number[] {
  return [...TOKEN_CLASSES.map((c) => reported[c]), ...TOKEN_CLASSES.map((c) => estimated[c])];
}

export const INVENTORY_COLUMNS = [
  'consumer',
  'provider',
  'model',
  'first_seen',
  'last_seen',
  'requests',
  'errors_upstream_4xx',
  'errors_upstream_5xx',
  'errors_bad_input',
  'errors_truncated',
  'errors_aborted',
  ...TOKEN_COLUMNS,
  'cost_micro_usd',
  'cost_usd',
  'unpriced_requests',
  'last_api',
  'response_models',
  'consumer_resolver',
] as const;

export function inventoryCells(r: InventoryRecord): Cell[] {
  const e = r.errors;
  return [
    r.key.consumer,
    r.key.provider,
    r.key.model,
    isoTime(r.firstSeen),
    isoTime(r.lastSeen),
    r.requests,
    e.upstream_4xx,
    e.upstream_5xx,
    e.bad_input,
    e.truncated,
    e.aborted,
    ...tokenCells(r.reported, r.estimated),
    r.costMicroUsd,
    microToUsd(r.costMicroUsd),
    r.unpricedRequests,
    r.lastApi,
    r.responseModels.join(' '),
    r.consumerResolver,
  ];
}

export const USAGE_COLUMNS = ['group', 'bucket_start', 'requests', 'errors', ...TOKEN_COLUMNS, 'cost_micro_usd', 'cost_usd'] as const;

export function usageCells(p: UsagePoint): Cell[] {
  return [p.group, isoTime(p.bucketStart), p.requests, p.errors, ...tokenCells(p.reported, p.estimated), p.costMicroUsd, microToUsd(p.costMicroUsd)];
}
