/**
 * Query parameters of the catalog reads: the audit log's page, and the consumer filters that
 * /api/v1/consumers accepts besides its page. Every problem is a 400 naming the parameter.
 */
import type { ConsumerStatus } from '../../catalog/types.js';
import { CONSUMER_STATUSES } from '../../config/catalog-schema.js';
import type { AuditQuery } from '../../registry/catalog-types.js';
import { parseTimestamp } from '../query.js';
import { badParameter } from '../reply.js';

export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 1000;

function once(query: URLSearchParams, name: string): string | undefined {
  const all = query.getAll(name);
  if (all.length > 1) throw badParameter(name, `parameter "${name}" is given more than once`);
  return all[0];
}

/** `limit` (1-1000, default 100) and `before` (epoch ms or RFC 3339, exclusive). */
export function parseAuditQuery(query: URLSearchParams): AuditQuery {
  for (const name of query.keys()) if (name !== 'limit' && name !== 'before') throw badParameter(name, `unknown parameter "${name}"`, 'unknown_parameter');
  const rawLimit = once(query, 'limit');
  const limit = rawLimit === undefined ? DEFAULT_AUDIT_LIMIT : /^\d{1,5}$/.test(rawLimit) ? Number(rawLimit) : NaN;
  if (!(limit >= 1 && limit <= MAX_AUDIT_LIMIT)) throw badParameter('limit', `limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}`);
  const rawBefore = once(query, 'before');
  if (rawBefore === undefined) return { limit };
  const before = parseTimestamp(rawBefore);
  if (before === null) throw badParameter('before', 'before must be an RFC 3339 date-time (2025-01-31T12:00:00Z) or epoch milliseconds');
  return { limit, before };
}

export interface ConsumerFilter {
  status?: ConsumerStatus;
  owner?: string;
  /** Case-insensitive substring of the consumer id or display name. */
  q?: string;
}

/**
 * Takes the catalog filters (status, owner, q) out of /api/v1/consumers' parameters, and returns
 * them with the remaining parameters (the page, parsed as before).
 */
export function takeConsumerFilter(query: URLSearchParams): { filter: ConsumerFilter | null; rest: URLSearchParams } {
  const rest = new URLSearchParams(query);
  const filter: ConsumerFilter = {};
  const status = once(query, 'status');
  if (status !== undefined) {
    if (!(CONSUMER_STATUSES as readonly string[]).includes(status)) throw badParameter('status', `status must be one of ${CONSUMER_STATUSES.join(', ')}`);
    filter.status = status as ConsumerStatus;
  }
  const owner = once(query, 'owner');
  if (owner !== undefined) filter.owner = owner;
  const q = once(query, 'q');
  if (q !== undefined && q !== '') filter.q = q.toLowerCase();
  for (const name of ['status', 'owner', 'q']) rest.delete(name);
  return { filter: Object.keys(filter).length === 0 ? null : filter, rest };
}
