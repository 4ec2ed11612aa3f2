/**
 * The catalog registry on Redis, shared by every sidecar. Key layout, all under its own hash tag
 * `{<prefix>:catalog}` (one Cluster slot, apart from the ledger, the budget registry and the
 * inventory):
 *   {prefix:catalog}:owners          hash id -> Owner JSON
 *   {prefix:catalog}:consumers       hash id -> ConsumerEntry JSON
 *   {prefix:catalog}:consumer_rules  hash id -> ConsumerRule JSON
 *   {prefix:catalog}:resources       hash id (provider/model) -> Resource JSON
 *   {prefix:catalog}:policies        hash id (global or owner id) -> SanctionPolicy JSON
 *   {prefix:catalog}:version         integer, incremented by every definition change
 *   {prefix:catalog}:audit           list of AuditEntry JSON, newest first, trimmed to REDIS_AUDIT_CAPACITY
 * Each change and its version bump are one script call, so a poller that sees the new version
 * also sees the change; snapshot() reads the version and every hash in one MULTI.
 *
 * Earlier versions kept the same keys as `{prefix}:cat:<name>`. On first use the definitions are
 * copied from there once (migrateDefinitions); the old audit list is not copied but read after the
 * new one (it is older), within the log's bound.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { AuditEntry, ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';
import { decodeAll, defineDefinitionScripts, migrateDefinitions, RedisCollection, type DefinitionKeys, type DefinitionScriptClient } from './definitions-redis.js';
import { execAll, LazyConnection } from '../store/redis-client.js';
import { baseTag, groupTag } from '../store/redis-layout.js';
import { REDIS_AUDIT_CAPACITY, type AuditLog, type AuditQuery, type CatalogRegistry, type CatalogSnapshot } from './catalog-types.js';
import type { DefinitionCollection } from './types.js';
import { loadLua } from '../store/lua.js';

export interface RedisCatalogOptions {
  redis: RedisConfig;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
  /** Audit entries kept (default REDIS_AUDIT_CAPACITY). */
  auditCapacity?: number;
}

type Client = Redis | Cluster;
type ScriptClient = DefinitionScriptClient & {
  tokenwardenCatalogAudit: (list: string, json: string, keep: number) => Promise<number>;
};

const AUDIT_LUA = loadLua('catalog-audit');

/** Audit entries read per LRANGE while looking for entries older than `before`. */
const AUDIT_CHUNK = 500;

export class CatalogKeys implements DefinitionKeys {
  readonly owners: string;
  readonly consumers: string;
  readonly consumerRules: string;
  readonly resources: string;
  readonly policies: string;
  readonly version: string;
  readonly audit: string;

  /** The keys under `base`: `{<prefix>:catalog}:` now, `{<prefix>}:cat:` in earlier versions. */
  constructor(base: string) {
    this.owners = `${base}owners`;
    this.consumers = `${base}consumers`;
    this.consumerRules = `${base}consumer_rules`;
    this.resources = `${base}resources`;
    this.policies = `${base}policies`;
    this.version = `${base}version`;
    this.audit = `${base}audit`;
  }

  static current(prefix: string): CatalogKeys {
    return new CatalogKeys(`${groupTag(prefix, 'catalog')}:`);
  }

  static legacy(prefix: string): CatalogKeys {
    return new CatalogKeys(`${baseTag(prefix)}:cat:`);
  }

  get hashes(): string[] {
    return [this.owners, this.consumers, this.consumerRules, this.resources, this.policies];
  }
}

/** The log is its list followed by the list of earlier versions (older entries), `capacity` entries at most. */
class RedisAuditLog implements AuditLog {
  constructor(
    private readonly client: () => Promise<ScriptClient>,
    private readonly key: string,
    private readonly legacyKey: string,
    private readonly capacity: number,
  ) {}

  async append(entry: AuditEntry): Promise<void> {
    await (await this.client()).tokenwardenCatalogAudit(this.key, JSON.stringify(entry), this.capacity);
  }

  /** Without `before`, one LRANGE while the list has `limit` entries; with it, chunks from the newest until enough older entries are found. */
  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const client = await this.client();
    if (query.limit <= 0) return [];
    const out: AuditEntry[] = [];
    let seen = 0;
    for (const key of [this.key, this.legacyKey]) {
      for (let start = 0; seen < this.capacity && out.length < query.limit; ) {
        const count = Math.min(query.before === undefined ? query.limit - out.length : AUDIT_CHUNK, this.capacity - seen);
        const chunk = await client.lrange(key, start, start + count - 1);
        for (const json of chunk) {
          const entry = JSON.parse(json) as AuditEntry;
          if ((query.before === undefined || entry.at < query.before) && out.length < query.limit) out.push(entry);
        }
        seen += chunk.length;
        start += chunk.length;
        if (chunk.length < count) break;
      }
    }
    return out;
  }
}

export class RedisCatalogRegistry implements CatalogRegistry {
  readonly owners: DefinitionCollection<Owner>;
  readonly consumers: DefinitionCollection<ConsumerEntry>;
  readonly consumerRules: DefinitionCollection<ConsumerRule>;
  readonly resources: DefinitionCollection<Resource>;
  readonly policies: DefinitionCollection<SanctionPolicy>;
  readonly audit: AuditLog;
  private readonly conn: LazyConnection;
  private readonly keys: CatalogKeys;
  private readonly legacy: CatalogKeys;
  private migrated: Promise<void> | null = null;

  constructor(opts: RedisCatalogOptions) {
    this.keys = CatalogKeys.current(opts.redis.key_prefix);
    this.legacy = CatalogKeys.legacy(opts.redis.key_prefix);
    this.conn = new LazyConnection(opts.redis, opts.client);
    defineDefinitionScripts(this.conn.client);
    this.conn.client.defineCommand('tokenwardenCatalogAudit', { numberOfKeys: 1, lua: AUDIT_LUA });
    const scripts = (): Promise<ScriptClient> => this.connected() as Promise<ScriptClient>;
    const k = this.keys;
    this.owners = new RedisCollection<Owner>(scripts, k.owners, k.version);
    this.consumers = new RedisCollection<ConsumerEntry>(scripts, k.consumers, k.version);
    this.consumerRules = new RedisCollection<ConsumerRule>(scripts, k.consumerRules, k.version);
    this.resources = new RedisCollection<Resource>(scripts, k.resources, k.version);
    this.policies = new RedisCollection<SanctionPolicy>(scripts, k.policies, k.version);
    this.audit = new RedisAuditLog(scripts, k.audit, this.legacy.audit, opts.auditCapacity ?? REDIS_AUDIT_CAPACITY);
  }

  async version(): Promise<number> {
    return Number((await (await this.connected()).get(this.keys.version)) ?? 0);
  }

  async snapshot(): Promise<CatalogSnapshot> {
    const client = await this.connected();
    const k = this.keys;
    const [version, owners, consumers, rules, resources, policies] = await execAll(
      client.multi().get(k.version).hgetall(k.owners).hgetall(k.consumers).hgetall(k.consumerRules).hgetall(k.resources).hgetall(k.policies),
    );
    return {
      version: Number((version as string | null) ?? 0),
      owners: decodeAll<Owner>(owners as Record<string, string>),
      consumers: decodeAll<ConsumerEntry>(consumers as Record<string, string>),
      consumerRules: decodeAll<ConsumerRule>(rules as Record<string, string>),
      resources: decodeAll<Resource>(resources as Record<string, string>),
      policies: decodeAll<SanctionPolicy>(policies as Record<string, string>),
    };
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  /** Connected, and the definitions of earlier versions copied (once per registry; retried after a failure). */
  private async connected(): Promise<Client> {
    const client = (await this.conn.ready()) as ScriptClient;
    this.migrated ??= migrateDefinitions(client, this.legacy, this.keys).catch((err: unknown) => {
      this.migrated = null;
      throw err;
    });
    await this.migrated;
    return client;
  }
}
