/**
 * A collection of definitions keyed by id, in memory (the budget and catalog registries of the
 * embedded store). Definitions are copied in and out, so callers can never change a stored
 * definition by mutating what they passed or received.
 */
import type { DefinitionCollection } from './types.js';

export class MemoryCollection<T extends { id: string }> implements DefinitionCollection<T> {
  private readonly defs = new Map<string, T>();

  /** `changed` runs after every change (the registry bumps its version). */
  constructor(private readonly changed: () => void) {}

  async list(): Promise<T[]> {
    return this.all();
  }

  /** Synchronous, so a registry snapshot of several collections cannot interleave with a change. */
  all(): T[] {
    return [...this.defs.keys()].sort().map((id) => structuredClone(this.defs.get(id) as T));
  }

  async get(id: string): Promise<T | null> {
    const def = this.defs.get(id);
    return def === undefined ? null : structuredClone(def);
  }

  async create(def: T): Promise<boolean> {
    if (this.defs.has(def.id)) return false;
    this.defs.set(def.id, structuredClone(def));
    this.changed();
    return true;
  }

  async put(def: T): Promise<'created' | 'replaced'> {
    const existed = this.defs.has(def.id);
    this.defs.set(def.id, structuredClone(def));
    this.changed();
    return existed ? 'replaced' : 'created';
  }

  async delete(id: string): Promise<boolean> {
    if (!this.defs.delete(id)) return false;
    this.changed();
    return true;
  }
}
