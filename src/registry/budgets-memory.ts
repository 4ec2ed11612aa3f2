/** The budget registry for the embedded memory store (one sidecar). */
import type { Budget, BudgetTemplate } from '../governance/types.js';
import { MemoryCollection } from './definitions-memory.js';
import type { BudgetRegistry, RegistrySnapshot } from './types.js';

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
