/**
 * A collection of definitions keyed by id on Redis (the budget and catalog registries): one hash
 * per kind, and a version key that every change bumps in the same script call, so a poller that
 * sees the new version also sees the change.
 */
import type { Cluster, Redis } from 'ioredis';
import type { DefinitionCollection } from './registry-types.js';

type Change = (hash: string, version: string, id: string, json?: string) => Promise<number>;
export type DefinitionScriptClient = (Redis | Cluster) & {
  tokenwardenDefinitionCreate: Change;
  tokenwardenDefinitionPut: Change;
  tokenwardenDefinitionDelete: Change;
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

/** Registers the change scripts on a client (idempotent: a shared client may get them twice). */
export function defineDefinitionScripts(client: Redis | Cluster): void {
  client.defineCommand('tokenwardenDefinitionCreate', { numberOfKeys: 2, lua: CREATE_LUA });
  client.defineCommand('tokenwardenDefinitionPut', { numberOfKeys: 2, lua: PUT_LUA });
  client.defineCommand('tokenwardenDefinitionDelete', { numberOfKeys: 2, lua: DELETE_LUA });
}

export class RedisCollection<T extends { id: string }> implements DefinitionCollection<T> {
  constructor(
    private readonly client: () => Promise<DefinitionScriptClient>,
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
    return (await (await this.client()).tokenwardenDefinitionCreate(this.hash, this.versionKey, def.id, JSON.stringify(def))) === 1;
  }

  async put(def: T): Promise<'created' | 'replaced'> {
    const added = await (await this.client()).tokenwardenDefinitionPut(this.hash, this.versionKey, def.id, JSON.stringify(def));
    return added === 1 ? 'created' : 'replaced';
  }

  async delete(id: string): Promise<boolean> {
    return (await (await this.client()).tokenwardenDefinitionDelete(this.hash, this.versionKey, id)) === 1;
  }
}

/** The values of an HGETALL reply, ordered by id. */
export function decodeAll<T>(hash: Record<string, string>): T[] {
  return Object.keys(hash)
    .sort()
    .map((id) => JSON.parse(hash[id] as string) as T);
}

