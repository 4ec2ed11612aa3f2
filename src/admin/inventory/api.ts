/**
 * The /api/v1 handlers: parse the query (pure, query.ts), ask the store under a deadline, shape the
 * answer (views.ts, csv.ts). Any store failure or timeout is a 503, never a crash or a hang.
 */
import type { ConsumerSummary, InventoryRecord, InventoryStore, Page } from '../../inventory/types.js';
import type { CatalogView, ResolvedConsumer } from '../../catalog/types.js';
import { allConsumers } from '../catalog/inventory.js';
import { takeConsumerFilter, type ConsumerFilter } from '../catalog/query.js';
import type { Logger } from '../../log.js';
import { errorFields } from '../../log.js';
import { withDeadline } from '../../deadline.js';
import { csvRow, INVENTORY_COLUMNS, inventoryCells, USAGE_COLUMNS, usageCells } from '../csv.js';
import { MAX_LIMIT } from '../../inventory/query.js';
import { parseInventory, parseInventoryExport, parsePage, parseUsage } from '../query.js';
import { ApiError, jsonReply, type Reply } from '../reply.js';
import { consumerJson, inventoryJson, modelJson, pageJson, usageJson } from '../views.js';

export interface ApiDeps {
  store: InventoryStore;
  /** Longest wait for one store call. */
  storeTimeoutMs: number;
  now(): number;
  logger?: Logger;
  /** The catalog in force: each consumer's resolution (owner, status, labels) and its filters. */
  catalog?(): CatalogView;
}

export type Handler = (params: URLSearchParams) => Promise<Reply>;

export function apiRoutes(deps: ApiDeps): Map<string, Handler> {
  const call = <T>(what: string, run: () => Promise<T>): Promise<T> => storeCall(deps, 'inventory store', what, run);
  return new Map<string, Handler>([
    [
      '/api/v1/inventory',
      async (params) => {
        const q = parseInventory(params);
        const page = await call('inventory', () => deps.store.inventory(q));
        return jsonReply(200, pageJson(page, q, inventoryJson));
      },
    ],
    [
      '/api/v1/consumers',
      async (params) => {
        const { filter, rest } = takeConsumerFilter(params);
        const q = parsePage(rest);
        const view = deps.catalog?.();
        const json = (c: ConsumerSummary) => (view ? { ...consumerJson(c), resolution: view.consumer(c.consumer) } : consumerJson(c));
        if (filter === null) return jsonReply(200, pageJson(await call('consumers', () => deps.store.consumers(q)), q, json));
        // Filters apply to the resolution, which the store does not know: filter every consumer here.
        const matching = (await allConsumers(deps.store, call)).filter((c) => matches(c.consumer, view?.consumer(c.consumer), filter));
        return jsonReply(200, pageJson({ items: matching.slice(q.offset, q.offset + q.limit), total: matching.length }, q, json));
      },
    ],
    [
      '/api/v1/models',
      async (params) => {
        const q = parsePage(params);
        const page = await call('models', () => deps.store.models(q));
        return jsonReply(200, pageJson(page, q, modelJson));
      },
    ],
    [
      '/api/v1/usage',
      async (params) => {
        const q = parseUsage(params, deps.now());
        return jsonReply(200, usageJson(q, await call('usage', () => deps.store.usage(q))));
      },
    ],
    [
      '/api/v1/usage.csv',
      async (params) => {
        const q = parseUsage(params, deps.now());
        const points = await call('usage', () => deps.store.usage(q));
        const body = csvRow(USAGE_COLUMNS) + points.map((p) => csvRow(usageCells(p))).join('');
        return csvReply(`tokenwarden-usage-${q.groupBy}-${q.bucket}.csv`, body);
      },
    ],
    [
      '/api/v1/inventory.csv',
      async (params) => {
        const q = parseInventoryExport(params);
        const fetchPage = (offset: number) => call('inventory', () => deps.store.inventory({ ...q, offset, limit: MAX_LIMIT }));
        // The first page is read before answering, so an unreachable store is still a clean 503.
        return csvReply('tokenwarden-inventory.csv', inventoryCsv(await fetchPage(0), fetchPage));
      },
    ],
  ]);
}

/**
 * One store call under the deadline (every admin API's): a failure or timeout is logged and answered
 * 503, never a crash or a hang. `store` names it in the log and the reply (`inventory store`, ...).
 */
export async function storeCall<T>(deps: { storeTimeoutMs: number; logger?: Logger | undefined }, store: string, what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await withDeadline(Promise.resolve().then(run), deps.storeTimeoutMs);
  } catch (err) {
    deps.logger?.warn(`${store} call failed`, { call: what, ...errorFields(err) });
    throw new ApiError(503, 'store_unavailable', `the ${store} did not answer; try again later`);
  }
}

function matches(id: string, resolved: ResolvedConsumer | undefined, f: ConsumerFilter): boolean {
  const status = resolved?.status ?? 'discovered';
  if (f.status !== undefined && status !== f.status) return false;
  if (f.owner !== undefined && (resolved?.owner ?? null) !== f.owner) return false;
  if (f.q !== undefined && !id.toLowerCase().includes(f.q) && !(resolved?.displayName ?? '').toLowerCase().includes(f.q)) return false;
  return true;
}

function csvReply(filename: string, body: string | AsyncIterable<string>): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'text/csv; charset=utf-8; header=present', 'content-disposition': `attachment; filename="${filename}"` },
    body,
  };
}

/**
 * Every matching record, a page at a time. Records that move between pages while the export runs
 * (new records shift the offsets) are written once.
 */
async function* inventoryCsv(first: Page<InventoryRecord>, fetchPage: (offset: number) => Promise<Page<InventoryRecord>>): AsyncIterable<string> {
  yield csvRow(INVENTORY_COLUMNS);
  const written = new Set<string>();
  let page = first;
  let offset = 0;
  for (;;) {
    let chunk = '';
    for (const r of page.items) {
      const id = JSON.stringify([r.key.consumer, r.key.provider, r.key.model]);
      if (written.has(id)) continue;
      written.add(id);
      chunk += csvRow(inventoryCells(r));
    }
    if (chunk) yield chunk;
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) return;
    page = await fetchPage(offset);
  }
}
