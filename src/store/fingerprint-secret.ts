/**
 * The fingerprint secret shared through Redis when none is configured: the first sidecar to start
 * stores a random one (SET NX), every sidecar on that Redis (same key prefix) reads it, so the same
 * API key gets the same fingerprint everywhere. The value is never logged.
 */
import { randomBytes } from 'node:crypto';
import type { RedisConfig } from '../config/types.js';
import { withDeadline } from '../deadline.js';
import type { LazyConnection } from './redis-client.js';

/** A new random secret: 256 bits, base64url. */
export function newFingerprintSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function fingerprintSecretKey(prefix: string): string {
  return `{${prefix}}:fingerprint_secret`;
}

const RETRY_MS = 200;

/**
 * Reads the shared secret, creating it first if absent. Retries while Redis is unreachable, for up
 * to `connect_timeout_ms + command_timeout_ms`; then throws, naming the key but never a value.
 */
export async function sharedFingerprintSecret(connection: LazyConnection, cfg: RedisConfig): Promise<string> {
  const key = fingerprintSecretKey(cfg.key_prefix);
  const deadline = Date.now() + cfg.connect_timeout_ms + cfg.command_timeout_ms;
  let problem = 'no answer';
  for (;;) {
    try {
      const client = await until(connection.ready(), deadline);
      await until(client.set(key, newFingerprintSecret(), 'NX'), deadline);
      const secret = await until(client.get(key), deadline);
      // Absent only if deleted between the two commands: create it again.
      if (secret !== null && secret !== '') return secret;
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() + RETRY_MS >= deadline) {
      throw new Error(
        `cannot read or create the shared fingerprint secret (Redis key ${key}): ${problem}; ` +
          'set consumer.fingerprint_secret_env or TOKENWARDEN_FINGERPRINT_SECRET to start without it',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** `work`, bounded by the time left until `deadline` (epoch ms). */
const until = <T>(work: Promise<T>, deadline: number): Promise<T> => withDeadline(work, Math.max(0, deadline - Date.now()));
