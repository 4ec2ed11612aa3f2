/**
 * The budget registry on Redis, shared by every sidecar. Key layout, all under the `{prefix}` hash
 * tag (one Cluster slot, like the inventory):
 *   {prefix}:reg:budgets    hash id -> Budget JSON
 *   {prefix}:reg:templates  hash id -> BudgetTemplate JSON
 *   {prefix}:reg:version    integer, incremented by every change
 * Each change and its version bump are one script call, so a poller that sees the new version
 * also sees the change; snapshot() reads the version and both hashes in one MULTI.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { Budget, BudgetTemplate } from '../governance/types.js';
import { decodeAll, defineDefinitionScripts, RedisCollection, type DefinitionScriptClient } from './definitions-redis.js';
import { execAll, LazyConnection } from './redis-client.js';
import type { BudgetRegistry, DefinitionCollection, RegistrySnapshot } from './registry-types.js';

export interface RedisRegistryOptions {
  redis: RedisConfig;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
}

type Client = Redis | Cluster;

export class RegistryKeys {
  readonly budgets: string;
  readonly templates: string;
  readonly version: string;

  constructor(prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error(`redis key_prefix must not contain braces: ${JSON.stringify(prefix)}`);
    const base = `{${prefix}}:reg:`;
    this.budgets = `${base}budgets`;
    this.templates = `${base}templates`;
    this.version = `${base}version`;
  }
}

export class RedisBudgetRegistry implements BudgetRegistry {
  readonly budgets: DefinitionCollection<Budget>;
  readonly templates: DefinitionCollection<BudgetTemplate>;
  private readonly conn: LazyConnection;
  private readonly keys: RegistryKeys;

  constructor(opts: RedisRegistryOptions) {
    this.keys = new RegistryKeys(opts.redis.key_prefix);
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

  private async connected(): Promise<Client> {
    return (await this.conn.ready()) as Client;
  }
}
