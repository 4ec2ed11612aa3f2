/**
 * What the catalog API reads from the inventory: every known consumer, and usage per resource
 * (provider/model), read a page at a time. Bounded: at most MAX_SCANNED items per read, which
 * covers any realistic fleet while keeping one admin request from reading an unbounded store.
 */
import type { ConsumerSummary, InventoryRecord, InventoryStore, Page } from '../store/types.js';
import { MAX_LIMIT } from '../store/query.js';

export const MAX_SCANNED = 100_000;

type Call = <T>(what: string, run: () => Promise<T>) => Promise<T>;

async function readAll<T>(fetchPage: (offset: number) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  for (let offset = 0; offset < MAX_SCANNED; ) {
    const page = await fetchPage(offset);
    out.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) break;
  }
  return out.slice(0, MAX_SCANNED);
}

/** Every consumer summary, most recently seen first (the store's order). */
export function allConsumers(store: InventoryStore, call: Call): Promise<ConsumerSummary[]> {
  return readAll((offset) => call('consumers', () => store.consumers({ offset, limit: MAX_LIMIT })));
}

export interface ResourceUsage {
  provider: string;
  model: string;
  requests: number;
  costMicroUsd: number;
  /** Distinct consumers. */
  consumers: number;
  /** Model versions the provider answered with, sorted. */
  responseModels: string[];
}

/** Usage per `provider/model` over every inventory record (records without a model are skipped). */
export async function resourceUsage(store: InventoryStore, call: Call): Promise<Map<string, ResourceUsage>> {
  // Sorted by consumer: an order that writes do not reshuffle while the pages are read.
  const records = await readAll<InventoryRecord>((offset) =>
    call('inventory', () => store.inventory({ sort: 'consumer', order: 'asc', offset, limit: MAX_LIMIT })),
  );
  const byId = new Map<string, { usage: ResourceUsage; consumers: Set<string>; responses: Set<string> }>();
  for (const r of records) {
    if (r.key.model === '') continue;
    const id = `${r.key.provider}/${r.key.model}`;
    let acc = byId.get(id);
    if (!acc) {
      acc = { usage: { provider: r.key.provider, model: r.key.model, requests: 0, costMicroUsd: 0, consumers: 0, responseModels: [] }, consumers: new Set(), responses: new Set() };
      byId.set(id, acc);
    }
    acc.usage.requests += r.requests;
    acc.usage.costMicroUsd += r.costMicroUsd;
    acc.consumers.add(r.key.consumer);
    for (const m of r.responseModels) acc.responses.add(m);
  }
  return new Map(
    [...byId].map(([id, acc]) => [id, { ...acc.usage, consumers: acc.consumers.size, responseModels: [...acc.responses].sort() }]),
  );
}
