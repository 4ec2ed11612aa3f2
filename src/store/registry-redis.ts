/**
 * The budget registry on Redis, shared by every sidecar. Key layout, all under the `{prefix}` hash
 * tag (one Cluster slot, like the inventory):
 *   {prefix}:reg:budgets    hash id -> Budget JSON
 *   {prefix}:reg:templates  hash id -> BudgetTemplate JSON
 *   {prefix}:reg:version    integer, incremented by every change
 * Each change and its version bump are one script call, so a poller that sees the new version
 * also sees the change; snapshot() reads the version and both hashes in one MULTI.
 */
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/types.js';
import type { Budget, BudgetTemplate } from '../governance/types.js';
import { LazyConnection } from './redis-client.js';
import type { BudgetRegistry, DefinitionCollection, RegistrySnapshot } from './registry-types.js';

export interface RedisRegistryOptions {
  redis: RedisConfig;
  /** A client built by the caller (its options are then the caller's); close() leaves it open. */
  client?: Redis | Cluster;
}

type Client = Redis | Cluster;
type Change = (hash: string, version: string, id: string, json?: string) => Promise<number>;
type ScriptClient = Client & {
  tokenwardenRegistryCreate: Change;
  tokenwardenRegistryPut: Change;
  tokenwardenRegistryDelete: Change;
};

const CREATE_LUA = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1`;

/** Returns 1 when the id was new. */
const PUT_LUA = `
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return added`;

const DELETE_LUA = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1`;

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

class RedisCollection<T extends { id: string }> implements DefinitionCollection<T> {
  constructor(
    private readonly client: () => Promise<ScriptClient>,
    private readonly hash: string,
    private readonly versionKey: string,
  ) {}

  async list(): Promise<T[]> {
    return decodeAll<T>(await (await this.client()).hgetall(this.hash));
  }

  async get(id: string): Promise<T | null> {
    const json = await (await this.client()).hget(this.hash, id);
    return json === null ? null : (JSON.parse(json) as T);
  }

  async create(def: T): Promise<boolean> {
    return (await (await this.client()).tokenwardenRegistryCreate(this.hash, this.versionKey, def.id, JSON.stringify(def))) === 1;
  }

  async put(def: T): Promise<'created' | 'replaced'> {
    const added = await (await this.client()).tokenwardenRegistryPut(this.hash, this.versionKey, def.id, JSON.stringify(def));
    return added === 1 ? 'created' : 'replaced';
  }

  async delete(id: string): Promise<boolean> {
    return (await (await this.client()).tokenwardenRegistryDelete(this.hash, this.versionKey, id)) === 1;
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
    this.conn.client.defineCommand('tokenwardenRegistryCreate', { numberOfKeys: 2, lua: CREATE_LUA });
    this.conn.client.defineCommand('tokenwardenRegistryPut', { numberOfKeys: 2, lua: PUT_LUA });
    this.conn.client.defineCommand('tokenwardenRegistryDelete', { numberOfKeys: 2, lua: DELETE_LUA });
    const scripts = (): Promise<ScriptClient> => this.connected() as Promise<ScriptClient>;
    this.budgets = new RedisCollection<Budget>(scripts, this.keys.budgets, this.keys.version);
    this.templates = new RedisCollection<BudgetTemplate>(scripts, this.keys.templates, this.keys.version);
  }

  async version(): Promise<number> {
    return Number((await (await this.connected()).get(this.keys.version)) ?? 0);
  }

  async snapshot(): Promise<RegistrySnapshot> {
    const client = await this.connected();
    const [version, budgets, templates] = await run(client.multi().get(this.keys.version).hgetall(this.keys.budgets).hgetall(this.keys.templates));
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

function decodeAll<T>(hash: Record<string, string>): T[] {
  return Object.keys(hash)
    .sort()
    .map((id) => JSON.parse(hash[id] as string) as T);
}

async function run(commands: ChainableCommander): Promise<unknown[]> {
  const replies = await commands.exec();
  if (!replies) throw new Error('redis transaction was discarded');
  return replies.map(([err, reply]) => {
    if (err) throw err;
    return reply;
  });
}
