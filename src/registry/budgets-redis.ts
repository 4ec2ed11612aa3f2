/**
 * The budget registry on Redis, shared by every sidecar. Key layout, all under its own hash tag
 * `{<prefix>:registry}` (one Cluster slot, apart from the ledger, the catalog and the inventory):
 *   {prefix:registry}:budgets    hash id -> Budget JSON
 *   {prefix:registry}:templates  hash id -> BudgetTemplate JSON
 *   {prefix:registry}:version    integer, incremented by every change
 * Each change and its version bump are one script call, so a poller that sees the new version
 * also sees the change; snapshot() reads the version and both hashes in one MULTI. Earlier versions
 * kept the same keys as `{prefix}:reg:<name>`: on first use they are copied from there once
 * (migrateDefinitions).
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { Budget, BudgetTemplate } from '../governance/types.js';
import { decodeAll, defineDefinitionScripts, migrateDefinitions, RedisCollection, type DefinitionKeys, type DefinitionScriptClient } from './definitions-redis.js';
import { execAll, LazyConnection } from '../store/redis-client.js';
import { baseTag, groupTag } from '../store/redis-layout.js';
import type { BudgetRegistry, DefinitionCollection, RegistrySnapshot } from './types.js';

export interface RedisRegistryOptions {
  redis: RedisConfig;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
}

type Client = Redis | Cluster;

export class RegistryKeys implements DefinitionKeys {
  readonly budgets: string;
  readonly templates: string;
  readonly version: string;

  /** The keys under `base`: `{<prefix>:registry}:` now, `{<prefix>}:reg:` in earlier versions. */
  constructor(base: string) {
    this.budgets = `${base}budgets`;
    this.templates = `${base}templates`;
    this.version = `${base}version`;
  }

  static current(prefix: string): RegistryKeys {
    return new RegistryKeys(`${groupTag(prefix, 'registry')}:`);
  }

  static legacy(prefix: string): RegistryKeys {
    return new RegistryKeys(`${baseTag(prefix)}:reg:`);
  }

  get hashes(): string[] {
    return [this.budgets, this.templates];
  }
}

export class RedisBudgetRegistry implements BudgetRegistry {
  readonly budgets: DefinitionCollection<Budget>;
  readonly templates: DefinitionCollection<BudgetTemplate>;
  private readonly conn: LazyConnection;
  private readonly keys: RegistryKeys;
  private readonly legacy: RegistryKeys;
  private migrated: Promise<void> | null = null;

  constructor(opts: RedisRegistryOptions) {
    this.keys = RegistryKeys.current(opts.redis.key_prefix);
    this.legacy = RegistryKeys.legacy(opts.redis.key_prefix);
    this.conn = new LazyConnection(opts.redis, opts.client);
    defineDefinitionScripts(this.conn.client);
    const scripts = (): Promise<DefinitionScriptClient> => this.connected() as Promise<DefinitionScriptClient>;
    this.budgets = new RedisCollection<Budget>(scripts, this.keys.budgets, this.keys.version);
    this.templates = new RedisCollection<BudgetTemplate>(scripts, this.keys.templates, this.keys.version);
  }

  async version(): Promise<number> {
    return Number((await (await this.connected()).get(this.keys.version)) ?? 0);
  }

  async snapshot(): Promise<RegistrySnapshot> {
    const client = await this.connected();
    const [version, budgets, templates] = await execAll(client.multi().get(this.keys.version).hgetall(this.keys.budgets).hgetall(this.keys.templates));
    return {
      version: Number((version as string | null) ?? 0),
      budgets: decodeAll<Budget>(budgets as Record<string, string>),
      templates: decodeAll<BudgetTemplate>(templates as Record<string, string>),
    };
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  /** Connected, and the definitions of earlier versions copied (once per registry; retried after a failure). */
  private async connected(): Promise<Client> {
    const client = (await this.conn.ready()) as DefinitionScriptClient;
    this.migrated ??= migrateDefinitions(client, this.legacy, this.keys).catch((err: unknown) => {
      this.migrated = null;
      throw err;
    });
    await this.migrated;
    return client;
  }
}
