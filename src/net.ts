/** Network addresses, as the config loader and the servers check them (no I/O). */
import { BlockList, isIP } from 'node:net';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True for a host only this machine can reach: `localhost`, 127.0.0.0/8, `::1` (bracketed or not,
 * any spelling) and IPv4-mapped loopback. Wildcards (`0.0.0.0`, `::`) and other names are not.
 * Takes a host, not `host:port` (see splitHostPort in admin/http.ts).
 */
export function isLoopbackAddress(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}
