/**
 * What the catalog API reads from the inventory: every known consumer, and usage per resource
 * (provider/model), read a page at a time. Bounded: at most MAX_SCANNED items per read, which
 * covers any realistic fleet while keeping one admin request from reading an unbounded store.
 */
import type { ConsumerSummary, InventoryStore, ModelSummary, Page } from '../../inventory/types.js';
import { MAX_LIMIT } from '../../inventory/query.js';

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

/**
 * Usage per `provider/model`, from the store's per-model rollups (requests, cost and distinct
 * consumers are exact whatever the inventory's size). The versions seen are read from the model's
 * most recently active records, one page from its own index, so a large inventory is never read
 * whole. Models without a name are skipped.
 */
export async function resourceUsage(store: InventoryStore, call: Call): Promise<Map<string, ResourceUsage>> {
  const models = await readAll<ModelSummary>((offset) => call('models', () => store.models({ offset, limit: MAX_LIMIT })));
  const named = models.filter((m) => m.model !== '');
  const recent = await Promise.all(
    named.map((m) => call('inventory', () => store.inventory({ provider: m.provider, model: m.model, sort: 'lastSeen', order: 'desc', limit: MAX_LIMIT }))),
  );
  return new Map(
    named.map((m, i): [string, ResourceUsage] => [
      `${m.provider}/${m.model}`,
      {
        provider: m.provider,
        model: m.model,
        requests: m.requests,
        costMicroUsd: m.costMicroUsd,
        consumers: m.consumers,
        responseModels: [...new Set(recent[i]!.items.flatMap((r) => r.responseModels))].sort(),
      },
    ]),
  );
}
