/**
 * Who a request's consumer is, for a server: the embedder's resolver first, then the configured
 * ones. API-key fingerprints must agree wherever the inventory is shared, so without a configured
 * secret (and only when API keys are fingerprinted at all) the key is the one kept in Redis (read by
 * prepare(), before any stream), or with the memory store a random one for this process, which
 * lives as long as its inventory.
 */
import type { ConsumerConfig, RedisConfig } from './config/types.js';
import type { ConsumerIdentity } from './domain.js';
import type { Logger } from './log.js';
import { fingerprintSecretKey, sharedFingerprintSecret } from './store/fingerprint-secret.js';
import type { LazyConnection } from './store/redis-client.js';
import { createConsumerResolver, type ResolveConsumer } from './traffic/consumer.js';

type CustomResolver = (headers: ReadonlyMap<string, string>, attributes: ReadonlyMap<string, string>) => ConsumerIdentity | null | undefined;

export class ConsumerIdentities {
  private configured: ResolveConsumer;
  readonly resolve: ResolveConsumer;

  constructor(
    private readonly cfg: ConsumerConfig,
    custom?: CustomResolver,
  ) {
    this.configured = createConsumerResolver(cfg);
    this.resolve = custom ? (h, a) => custom(h, a) ?? this.configured(h, a) : (h, a) => this.configured(h, a);
  }

  private get generatedSecret(): boolean {
    return this.cfg.fingerprint_secret === '' && this.cfg.resolvers.some((r) => r.type === 'api_key');
  }

  /** Before the first stream: the shared secret from Redis when one is needed (else a warning). */
  async prepare(redis: { connection: LazyConnection; cfg: RedisConfig } | null, log: Logger): Promise<void> {
    if (!this.generatedSecret) return;
    if (redis === null) {
      log.warn('no consumer.fingerprint_secret configured: API keys are fingerprinted with a random secret of this process, so their consumer ids change when it restarts');
      return;
    }
    const secret = await sharedFingerprintSecret(redis.connection, redis.cfg);
    this.configured = createConsumerResolver({ ...this.cfg, fingerprint_secret: secret });
    log.info('API keys are fingerprinted with the secret shared in Redis', { key: fingerprintSecretKey(redis.cfg.key_prefix) });
  }
}
