/**
 * The catalog registry on Redis, shared by every sidecar. Key layout, all under the `{prefix}` hash
 * tag (one Cluster slot, like the inventory and the budget registry):
 *   {prefix}:cat:owners          hash id -> Owner JSON
 *   {prefix}:cat:consumers       hash id -> ConsumerEntry JSON
 *   {prefix}:cat:consumer_rules  hash id -> ConsumerRule JSON
 *   {prefix}:cat:resources       hash id (provider/model) -> Resource JSON
 *   {prefix}:cat:policies        hash id (global or owner id) -> SanctionPolicy JSON
 *   {prefix}:cat:version         integer, incremented by every definition change
 *   {prefix}:cat:audit           list of AuditEntry JSON, newest first, trimmed to REDIS_AUDIT_CAPACITY
 * Each change and its version bump are one script call, so a poller that sees the new version
 * also sees the change; snapshot() reads the version and every hash in one MULTI.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { AuditEntry, ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';
import { decodeAll, defineDefinitionScripts, RedisCollection, type DefinitionScriptClient } from './definitions-redis.js';
import { execAll, LazyConnection } from './redis-client.js';
import { REDIS_AUDIT_CAPACITY, type AuditLog, type AuditQuery, type CatalogRegistry, type CatalogSnapshot } from './catalog-types.js';
import type { DefinitionCollection } from './registry-types.js';

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

/** Push and trim together, so the list never outgrows its bound. */
const AUDIT_LUA = `
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1`;

/** Audit entries read per LRANGE while looking for entries older than `before`. */
const AUDIT_CHUNK = 500;

export class CatalogKeys {
  readonly owners: string;
  readonly consumers: string;
  readonly consumerRules: string;
  readonly resources: string;
  readonly policies: string;
  readonly version: string;
  readonly audit: string;

  constructor(prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error(`redis key_prefix must not contain braces: ${JSON.stringify(prefix)}`);
    const base = `{${prefix}}:cat:`;
    this.owners = `${base}owners`;
    this.consumers = `${base}consumers`;
    this.consumerRules = `${base}consumer_rules`;
    this.resources = `${base}resources`;
    this.policies = `${base}policies`;
    this.version = `${base}version`;
    this.audit = `${base}audit`;
  }
}

class RedisAuditLog implements AuditLog {
  constructor(
    private readonly client: () => Promise<ScriptClient>,
    private readonly key: string,
    private readonly capacity: number,
  ) {}

  async append(entry: AuditEntry): Promise<void> {
    await (await this.client()).tokenwardenCatalogAudit(this.key, JSON.stringify(entry), this.capacity);
  }

  /** Without `before`, one LRANGE; with it, chunks from the newest until enough older entries are found. */
  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const client = await this.client();
    if (query.limit <= 0) return [];
    if (query.before === undefined) return (await client.lrange(this.key, 0, query.limit - 1)).map((j) => JSON.parse(j) as AuditEntry);
    const out: AuditEntry[] = [];
    for (let start = 0; start < this.capacity && out.length < query.limit; start += AUDIT_CHUNK) {
      const chunk = await client.lrange(this.key, start, start + AUDIT_CHUNK - 1);
      for (const json of chunk) {
        const entry = JSON.parse(json) as AuditEntry;
        if (entry.at < query.before && out.length < query.limit) out.push(entry);
      }
      if (chunk.length < AUDIT_CHUNK) break;
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

  constructor(opts: RedisCatalogOptions) {
    this.keys = new CatalogKeys(opts.redis.key_prefix);
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
    this.audit = new RedisAuditLog(scripts, k.audit, opts.auditCapacity ?? REDIS_AUDIT_CAPACITY);
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

  private async connected(): Promise<Client> {
    return (await this.conn.ready()) as Client;
  }
}
