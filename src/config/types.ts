/**
 * tokenwarden configuration: the typed shape after validation, with defaults applied.
 *
 * Every key is declared once (type, constraints, default, doc string): in config-schema.ts and
 * telemetry-schema.ts, from which the section types here and `defaultConfig()` derive, and in
 * budgets-schema.ts and catalog-schema.ts, whose sections the loader converts to their domain models
 * (governance/types.ts, catalog/types.ts; default `[]`). The README's "Configuration reference" is
 * generated from all of them (scripts/config-reference.ts).
 */
import type { Budget, BudgetTemplate } from '../governance/types.js';
import type { ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';
import { defaultsOf, type Config, type Out } from './schema.js';
import {
  adminSchema,
  consumerSchema,
  discoverySchema,
  governanceSchema,
  grpcSchema,
  limitsSchema,
  loggingSchema,
  metadataSchema,
  meteringSchema,
  metricsSchema,
  storeSchema,
  DEFAULT_MAX_CONCURRENT_STREAMS,
} from './config-schema.js';
import { telemetrySchema } from './telemetry-schema.js';

export { DEFAULT_MAX_CONCURRENT_STREAMS };

type Item<S> = Out<S> extends readonly (infer T)[] ? T : never;

export type GrpcConfig = Config<typeof grpcSchema>;
export type TlsConfig = NonNullable<GrpcConfig['tls']>;

export type AdminConfig = Omit<Config<typeof adminSchema>, 'tokens'> & { tokens: AdminTokenConfig[] };
/** A named admin API token: the name is the actor in the audit log, the role what it may do. */
export type AdminTokenConfig = Omit<Item<typeof adminSchema.fields.tokens>, 'token' | 'token_env'> & {
  /** From `token` or the variable named by `token_env`. */
  token: string;
};
export type AdminRole = AdminTokenConfig['role'];

export type StoreConfig = Config<typeof storeSchema>;
export type RedisConfig = StoreConfig['redis'];
export type GovernanceConfig = Config<typeof governanceSchema>;
export type MetricsConfig = Config<typeof metricsSchema>;
export type TelemetryConfig = Config<typeof telemetrySchema>;
export type MetadataConfig = Config<typeof metadataSchema>;
export type DiscoveryConfig = Config<typeof discoverySchema>;
export type SelfHostedEndpoint = DiscoveryConfig['self_hosted'][number];
export type SelfHostedProvider = SelfHostedEndpoint['provider'];
export type ConsumerConfig = Config<typeof consumerSchema>;
export type ConsumerResolver = ConsumerConfig['resolvers'][number];
export type MeteringConfig = Omit<Config<typeof meteringSchema>, 'price_overrides'> & { price_overrides: PriceOverride[] };
/** USD per million tokens for one model; absent classes fall back to the catalog (or input/output). */
export type PriceOverride = Omit<Item<typeof meteringSchema.fields.price_overrides>, 'provider'> & {
  /** Validated as a provider name in the file; any string (e.g. `*`) elsewhere. */
  provider: string;
};
export type LimitsConfig = Config<typeof limitsSchema>;
export type LoggingConfig = Config<typeof loggingSchema>;

export interface TokenwardenConfig {
  grpc: GrpcConfig;
  admin: AdminConfig;
  metadata: MetadataConfig;
  discovery: DiscoveryConfig;
  consumer: ConsumerConfig;
  metering: MeteringConfig;
  limits: LimitsConfig;
  store: StoreConfig;
  governance: GovernanceConfig;
  budgets: Budget[];
  budget_templates: BudgetTemplate[];
  /** The catalog (config-as-code; the config wins over the admin API on the same id). */
  owners: Owner[];
  consumers: ConsumerEntry[];
  consumer_rules: ConsumerRule[];
  resources: Resource[];
  /** `policies:` in the file (`unsanctioned` and `owners.<id>`), as policies with ids global / owner id. */
  policies: SanctionPolicy[];
  metrics: MetricsConfig;
  telemetry: TelemetryConfig;
  logging: LoggingConfig;
}

/**
 * The development secret earlier versions used by default. It is public, so fingerprints made with it
 * can be recomputed by anyone: it is refused as a configured secret.
 */
export const PUBLIC_DEV_FINGERPRINT_SECRET = 'tokenwarden-dev-insecure-secret';

/** The defaults, from the key declarations (a fresh copy on every call). */
export function defaultConfig(): TokenwardenConfig {
  return {
    grpc: defaultsOf(grpcSchema) as GrpcConfig,
    admin: defaultsOf(adminSchema) as AdminConfig,
    metadata: defaultsOf(metadataSchema) as MetadataConfig,
    discovery: defaultsOf(discoverySchema) as DiscoveryConfig,
    consumer: defaultsOf(consumerSchema) as ConsumerConfig,
    metering: defaultsOf(meteringSchema) as MeteringConfig,
    limits: defaultsOf(limitsSchema) as LimitsConfig,
    store: defaultsOf(storeSchema) as StoreConfig,
    governance: defaultsOf(governanceSchema) as GovernanceConfig,
    budgets: [],
    budget_templates: [],
    owners: [],
    consumers: [],
    consumer_rules: [],
    resources: [],
    policies: [],
    metrics: defaultsOf(metricsSchema) as MetricsConfig,
    telemetry: defaultsOf(telemetrySchema) as TelemetryConfig,
    logging: defaultsOf(loggingSchema) as LoggingConfig,
  };
}
