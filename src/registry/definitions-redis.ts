/**
 * A collection of definitions keyed by id on Redis (the budget and catalog registries): one hash
 * per kind, and a version key that every change bumps in the same script call, so a poller that
 * sees the new version also sees the change. Plus the one-time copy of a registry's definitions
 * from the keys of earlier versions (everything under `{<prefix>}`) to its own hash tag.
 */
import type { Cluster, Redis } from 'ioredis';
import { execAll } from '../store/redis-client.js';
import type { DefinitionCollection } from './types.js';
import { loadLua } from '../store/lua.js';

type Change = (hash: string, version: string, id: string, json?: string) => Promise<number>;
export type DefinitionScriptClient = (Redis | Cluster) & {
  tokenwardenDefinitionCreate: Change;
  tokenwardenDefinitionPut: Change;
  tokenwardenDefinitionDelete: Change;
  tokenwardenDefinitionMigrate: (keyCount: number, ...keysAndArgs: string[]) => Promise<number>;
};

/** A registry's keys: its version key and one hash per kind (the same kinds, in the same order, in every layout). */
export interface DefinitionKeys {
  version: string;
  hashes: string[];
}

const CREATE_LUA = loadLua('definition-create');

const PUT_LUA = loadLua('definition-put');

const DELETE_LUA = loadLua('definition-delete');

const MIGRATE_LUA = loadLua('definition-migrate');

/** Registers the change scripts on a client (idempotent: a shared client may get them twice). */
export function defineDefinitionScripts(client: Redis | Cluster): void {
  client.defineCommand('tokenwardenDefinitionCreate', { numberOfKeys: 2, lua: CREATE_LUA });
  client.defineCommand('tokenwardenDefinitionPut', { numberOfKeys: 2, lua: PUT_LUA });
  client.defineCommand('tokenwardenDefinitionDelete', { numberOfKeys: 2, lua: DELETE_LUA });
  client.defineCommand('tokenwardenDefinitionMigrate', { lua: MIGRATE_LUA });
}

/**
 * Copies a registry's definitions from the keys of an earlier layout (`from`) to its current keys
 * (`to`, another slot) when the current version key is absent and the old one exists: an upgrade
 * keeps what was defined through the API. The old keys are read in one MULTI and written in one
 * script that also sets the version (to the old one), so the copy is all or nothing: a crash before it
 * leaves the next start to copy, and of several starts racing, one copies. The old keys are left
 * unchanged (an older sidecar still running keeps reading them; its later changes are not copied).
 */
export async function migrateDefinitions(client: DefinitionScriptClient, from: DefinitionKeys, to: DefinitionKeys): Promise<void> {
  const [current, old] = await Promise.all([client.exists(to.version), client.exists(from.version)]);
  if (current === 1 || old === 0) return;
  const read = client.multi().get(from.version);
  for (const hash of from.hashes) read.hgetall(hash);
  const [version, ...hashes] = await execAll(read);
  if (version === null) return;
  await client.tokenwardenDefinitionMigrate(1 + to.hashes.length, to.version, ...to.hashes, version as string, JSON.stringify(hashes));
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

