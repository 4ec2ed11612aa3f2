/**
 * Consumer identity: the first configured resolver that yields a value wins. API keys are never
 * returned or kept: only an HMAC fingerprint of them is.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { ConsumerConfig, ConsumerResolver } from '../config/types.js';

export interface Consumer {
  id: string;
  resolver: 'header' | 'xfcc' | 'attribute' | 'api_key';
}

export type ResolveConsumer = (
  headers: ReadonlyMap<string, string>,
  attributes: ReadonlyMap<string, string>,
) => Consumer | null;

/** Identities longer than this are cut (they become inventory keys and metric labels). */
export const MAX_CONSUMER_ID_LENGTH = 512;
/** Only the start of an XFCC header is scanned: the first element is all that is used. */
const MAX_XFCC_SCAN = 16 * 1024;
/** Hex characters of the HMAC kept in `key:<fingerprint>`. */
const FINGERPRINT_HEX = 16;

type Step = ResolveConsumer;

/**
 * Compiles the resolver list once (header names lower-cased, the HMAC key object created). An empty
 * `fingerprint_secret` means none was configured: a random key, so fingerprints agree only within
 * this resolver (the server passes the Redis-shared secret instead when the store is shared).
 */
export function createConsumerResolver(cfg: ConsumerConfig): ResolveConsumer {
  const secret = cfg.fingerprint_secret === '' ? randomBytes(32) : Buffer.from(cfg.fingerprint_secret, 'utf8');
  const hmacKey = createSecretKey(secret);
  const steps = cfg.resolvers.map((r) => compileStep(r, hmacKey));
  return (headers, attributes) => {
    for (const step of steps) {
      const consumer = step(headers, attributes);
      if (consumer !== null) return consumer;
    }
    return null;
  };
}

const cache = new WeakMap<ConsumerConfig, ResolveConsumer>();

/** Same as `createConsumerResolver(cfg)(headers, attributes)`, compiled once per config object. */
export function resolveConsumer(
  headers: ReadonlyMap<string, string>,
  attributes: ReadonlyMap<string, string>,
  cfg: ConsumerConfig,
): Consumer | null {
  let resolve = cache.get(cfg);
  if (resolve === undefined) {
    resolve = createConsumerResolver(cfg);
    cache.set(cfg, resolve);
  }
  return resolve(headers, attributes);
}

function compileStep(r: ConsumerResolver, hmacKey: KeyObject): Step {
  switch (r.type) {
    case 'header': {
      const name = r.header.toLowerCase();
      return (headers) => consumer(cleanId(headers.get(name)), 'header');
    }
    case 'xfcc':
      return (headers) => {
        const xfcc = headers.get('x-forwarded-client-cert');
        return consumer(xfcc === undefined ? null : cleanId(xfccUri(xfcc)), 'xfcc');
      };
    case 'attribute': {
      const name = r.attribute;
      const isAddress = name.endsWith('.address');
      return (_headers, attributes) => {
        const value = attributes.get(name);
        return consumer(cleanId(value !== undefined && isAddress ? stripPort(value) : value), 'attribute');
      };
    }
    case 'api_key': {
      const names = r.headers.map((h) => h.toLowerCase());
      return (headers) => {
        for (const name of names) {
          const value = headers.get(name);
          const key = value === undefined ? null : credentialOf(name, value);
          if (key !== null) return { id: `key:${fingerprint(hmacKey, key)}`, resolver: 'api_key' };
        }
        return null;
      };
    }
    default:
      return () => null;
  }
}

function consumer(id: string | null, resolver: Consumer['resolver']): Consumer | null {
  return id === null ? null : { id, resolver };
}

function cleanId(value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = (value.length > MAX_CONSUMER_ID_LENGTH * 2 ? value.slice(0, MAX_CONSUMER_ID_LENGTH * 2) : value).trim();
  if (trimmed.length === 0) return null;
  return trimmed.length > MAX_CONSUMER_ID_LENGTH ? trimmed.slice(0, MAX_CONSUMER_ID_LENGTH) : trimmed;
}

function fingerprint(hmacKey: KeyObject, key: string): string {
  return createHmac('sha256', hmacKey).update(key, 'utf8').digest('hex').slice(0, FINGERPRINT_HEX);
}

/**
 * The secret in a credential header: `Bearer <key>` in any header, the access key id of an AWS
 * SigV4 `authorization`, or the whole value of a dedicated key header (`api-key`, `x-api-key`...).
 * Other authorization schemes yield nothing.
 */
function credentialOf(header: string, value: string): string | null {
  const v = value.trim();
  const space = v.indexOf(' ');
  const scheme = space < 0 ? '' : v.slice(0, space).toLowerCase();
  if (scheme === 'bearer') return nonEmpty(v.slice(space + 1).trim());
  if (header !== 'authorization') return nonEmpty(v);
  if (scheme === 'aws4-hmac-sha256') {
    const at = v.indexOf('Credential=');
    if (at < 0) return null;
    const start = at + 'Credential='.length;
    const end = v.indexOf('/', start);
    return nonEmpty(v.slice(start, end < 0 ? undefined : end));
  }
  return null;
}

function nonEmpty(s: string): string | null {
  return s.length > 0 ? s : null;
}

/** `10.0.0.1:5432` -> `10.0.0.1`, `[::1]:5432` -> `::1`; a bare IPv6 address is kept. */
export function stripPort(address: string): string {
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    return close > 0 ? address.slice(1, close) : address;
  }
  const colon = address.indexOf(':');
  return colon >= 0 && address.indexOf(':', colon + 1) < 0 ? address.slice(0, colon) : address;
}

/**
 * The first `URI=` value of the first element of an `x-forwarded-client-cert` header. Elements are
 * separated by `,`, pairs by `;`; values holding `,` `;` or `=` are double-quoted with `\"` for a
 * quote (Envoy's format).
 */
export function xfccUri(header: string): string | null {
  const s = header.length > MAX_XFCC_SCAN ? header.slice(0, MAX_XFCC_SCAN) : header;
  const n = s.length;
  let i = 0;
  while (i < n) {
    const keyStart = i;
    while (i < n && s[i] !== '=' && s[i] !== ';' && s[i] !== ',') i++;
    const key = s.slice(keyStart, i).trim();
    let value = '';
    if (i < n && s[i] === '=') {
      i++;
      while (i < n && s[i] === ' ') i++;
      if (s[i] === '"') {
        const parts: string[] = [];
        let from = ++i;
        while (i < n && s[i] !== '"') {
          if (s[i] === '\\' && s[i + 1] === '"') {
            parts.push(s.slice(from, i));
            from = i + 1;
            i += 2;
          } else {
            i++;
          }
        }
        parts.push(s.slice(from, i));
        value = parts.join('');
        while (i < n && s[i] !== ';' && s[i] !== ',') i++;
      } else {
        const valueStart = i;
        while (i < n && s[i] !== ';' && s[i] !== ',') i++;
        value = s.slice(valueStart, i).trim();
      }
    }
    if (value.length > 0 && key.toLowerCase() === 'uri') return value;
    if (i >= n || s[i] === ',') return null;
    i++;
  }
  return null;
}
