/**
 * The budget registry for the embedded memory store (one sidecar). Definitions are copied in and
 * out, so callers can never change a stored definition by mutating what they passed or received.
 */
import type { Budget, BudgetTemplate } from '../governance/types.js';
import type { BudgetRegistry, DefinitionCollection, RegistrySnapshot } from './registry-types.js';

class MemoryCollection<T extends { id: string }> implements DefinitionCollection<T> {
  private readonly defs = new Map<string, T>();

  constructor(private readonly changed: () => void) {}

  async list(): Promise<T[]> {
    return this.all();
  }

  /** Synchronous, so a snapshot of both kinds cannot interleave with a change. */
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

export class MemoryBudgetRegistry implements BudgetRegistry {
  private current = 0;
  readonly budgets = new MemoryCollection<Budget>(() => this.current++);
  readonly templates = new MemoryCollection<BudgetTemplate>(() => this.current++);

  async version(): Promise<number> {
    return this.current;
  }

  async snapshot(): Promise<RegistrySnapshot> {
    return { version: this.current, budgets: this.budgets.all(), templates: this.templates.all() };
  }

  async close(): Promise<void> {}
}
