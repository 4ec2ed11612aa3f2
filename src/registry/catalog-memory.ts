/**
 * The catalog registry for the embedded memory store (one sidecar). Definitions and audit entries
 * are copied in and out, so callers can never change what is stored by mutating their objects.
 */
import type { AuditEntry, ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../catalog/types.js';
import { MEMORY_AUDIT_CAPACITY, type AuditLog, type AuditQuery, type CatalogRegistry, type CatalogSnapshot } from './catalog-types.js';
import { MemoryCollection } from './definitions-memory.js';

/** A ring of the last `capacity` entries. */
export class MemoryAuditLog implements AuditLog {
  private readonly ring: AuditEntry[] = [];
  /** Index of the oldest entry once the ring is full. */
  private start = 0;

  constructor(private readonly capacity = MEMORY_AUDIT_CAPACITY) {}

  async append(entry: AuditEntry): Promise<void> {
    const copy = structuredClone(entry);
    if (this.ring.length < this.capacity) {
      this.ring.push(copy);
      return;
    }
    this.ring[this.start] = copy;
    this.start = (this.start + 1) % this.capacity;
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    const n = this.ring.length;
    for (let i = n - 1; i >= 0 && out.length < query.limit; i--) {
      const entry = this.ring[(this.start + i) % n] as AuditEntry;
      if (query.before === undefined || entry.at < query.before) out.push(structuredClone(entry));
    }
    return out;
  }
}

export class MemoryCatalogRegistry implements CatalogRegistry {
  private current = 0;
  private readonly bump = (): void => {
    this.current++;
  };
  readonly owners = new MemoryCollection<Owner>(this.bump);
  readonly consumers = new MemoryCollection<ConsumerEntry>(this.bump);
  readonly consumerRules = new MemoryCollection<ConsumerRule>(this.bump);
  readonly resources = new MemoryCollection<Resource>(this.bump);
  readonly policies = new MemoryCollection<SanctionPolicy>(this.bump);
  readonly audit: AuditLog;

  constructor(opts: { auditCapacity?: number } = {}) {
    this.audit = new MemoryAuditLog(opts.auditCapacity);
  }

  async version(): Promise<number> {
    return this.current;
  }

  async snapshot(): Promise<CatalogSnapshot> {
    return {
      version: this.current,
      owners: this.owners.all(),
      consumers: this.consumers.all(),
      consumerRules: this.consumerRules.all(),
      resources: this.resources.all(),
      policies: this.policies.all(),
    };
  }

  async close(): Promise<void> {}
}
