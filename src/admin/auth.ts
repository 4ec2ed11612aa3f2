/** Bearer-token authentication for the admin API, and the loopback test the config layer uses. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

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

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True for a host only this machine can reach: `localhost`, 127.0.0.0/8, `::1` (bracketed or not,
 * any spelling) and IPv4-mapped loopback. Wildcards (`0.0.0.0`, `::`) and other names are not.
 * Takes a host, not `host:port` (see splitHostPort in http.ts).
 */
export function isLoopbackAddress(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}
