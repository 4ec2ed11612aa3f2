/**
 * Bearer-token authentication for the admin API (named tokens with roles), and the loopback test
 * the config layer uses.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminRole } from '../config/types.js';

/** Who made an admin request: the token's name (the audit log's actor) and its role. */
export interface Identity {
  name: string;
  role: AdminRole;
}

/** The actor when the admin API runs without tokens (allowed on loopback only). */
export const ANONYMOUS: Identity = Object.freeze({ name: 'anonymous', role: 'admin' });

export interface NamedToken extends Identity {
  token: string;
}

/** `admin.token` (named `admin`, role admin) followed by `admin.tokens`. */
export function adminTokens(token: string, tokens: readonly NamedToken[] = []): NamedToken[] {
  return [...(token === '' ? [] : [{ name: 'admin', token, role: 'admin' as const }]), ...tokens.map((t) => ({ name: t.name, token: t.token, role: t.role }))];
}

/**
 * The identity of the request's bearer token; ANONYMOUS when no token is configured; null when the
 * token is missing or matches none. Every configured token is compared (no early exit), each in
 * constant time, so the answer's timing does not tell which token nearly matched.
 */
export function authenticate(authorization: string | undefined, tokens: readonly NamedToken[]): Identity | null {
  if (tokens.length === 0) return ANONYMOUS;
  const presented = /^Bearer +(\S+) *$/i.exec(authorization ?? '')?.[1];
  if (presented === undefined) return null;
  const hash = digest(presented);
  let found: NamedToken | null = null;
  for (const t of tokens) {
    if (timingSafeEqual(hash, digest(t.token)) && found === null) found = t;
  }
  return found === null ? null : { name: found.name, role: found.role };
}

/**
 * True when `authorization` carries `Bearer <token>` (scheme case-insensitive). Both sides are
 * hashed first so the comparison takes the same time whatever the presented token's length.
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const presented = /^Bearer +(\S+) *$/i.exec(authorization ?? '')?.[1];
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(token));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
