// @ts-check
/** Inventory: consumer × provider × model records, filtered and sorted by the API, paged. */
import { get, query } from '../api.js';
import { fill, h } from '../dom.js';
import { dateTime, int, usd, compact } from '../format.js';
import { button, field, pageHeader, pager, panel, select, table } from '../ui.js';
import { inputTokens } from '../usage.js';

const PAGE = 50;
const FILTERS = ['consumer', 'provider', 'model', 'unpriced', 'sort', 'order', 'q'];

/** @param {import('../types.js').Errors} e */
const errorTotal = (e) => e.upstream_4xx + e.upstream_5xx + e.bad_input + e.truncated + e.aborted;

/** @type {import('../types.js').Page} */
export async function renderInventory(root, ctx) {
  const p = ctx.params;
  const offset = Number(p.get('offset') ?? 0) || 0;
  /** @type {Record<string, string>} */
  const current = {};
  for (const k of FILTERS) {
    const v = p.get(k);
    if (v) current[k] = v;
  }

  const consumer = h('input', { type: 'text', name: 'consumer', value: current.consumer ?? '', placeholder: 'exact consumer id' });
  const provider = select('provider', [['', 'All providers']], current.provider);
  const model = select('model', [['', 'All models']], current.model);
  const unpriced = select('unpriced', [['', 'Any'], ['true', 'Unpriced only'], ['false', 'Priced only']], current.unpriced ?? '');
  const sort = select('sort', [['last_seen', 'Last seen'], ['first_seen', 'First seen'], ['requests', 'Requests'], ['cost', 'Cost'], ['tokens', 'Tokens'], ['consumer', 'Consumer'], ['provider', 'Provider'], ['model', 'Model']], current.sort ?? 'last_seen');
  const search = h('input', { type: 'search', name: 'q', value: current.q ?? '', placeholder: 'text in consumer, provider, model' });
  const apply = () => {
    /** @type {Record<string, string>} */
    const next = { consumer: consumer.value.trim(), provider: provider.value, model: model.value, unpriced: unpriced.value, sort: sort.value === 'last_seen' ? '' : sort.value, q: search.value.trim() };
    ctx.go('inventory', next);
  };
  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Inventory filters' },
    field('Search', search),
    field('Consumer', consumer),
    field('Provider', provider),
    field('Model', model),
    field('Pricing', unpriced),
    field('Sort by', sort),
    button('Apply', { kind: 'primary', type: 'submit' }),
    button('Reset', { kind: 'ghost', onclick: () => ctx.go('inventory') }),
  );
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  for (const s of [provider, model, unpriced, sort]) s.addEventListener('change', apply);

  const body = h('div');
  fill(root, pageHeader('Inventory', [button('Refresh', { onclick: () => ctx.go('inventory', { ...current, offset: offset || undefined }) })], 'Every consumer × provider × model seen in traffic, across all sidecars.'), filters, body);

  // The provider and model lists come from the models the inventory holds.
  get('/api/v1/models?limit=1000')
    .then((/** @type {import('../types.js').Paged<import('../types.js').ModelRow>} */ page) => {
      const providers = [...new Set(page.items.map((m) => m.provider))].sort();
      const models = [...new Set(page.items.filter((m) => !current.provider || m.provider === current.provider).map((m) => m.model))].sort();
      for (const v of providers) provider.append(h('option', { value: v, selected: v === current.provider }, v));
      for (const v of models) model.append(h('option', { value: v, selected: v === current.model }, v || '(no model)'));
    })
    .catch(() => {
      // The table reports the API's error; the option lists simply stay short.
    });

  await panel(body, async () => {
    /** @type {import('../types.js').Paged<import('../types.js').InventoryRow>} */
    const page = await get(`/api/v1/inventory${query({ consumer: current.consumer, provider: current.provider, model: current.model, unpriced: current.unpriced, sort: current.sort, offset, limit: PAGE })}`);
    const needle = (current.q ?? '').toLowerCase();
    const rows = needle ? page.items.filter((r) => `${r.consumer} ${r.provider} ${r.model} ${r.response_models.join(' ')}`.toLowerCase().includes(needle)) : page.items;
    return [
      needle ? h('p', { class: 'muted' }, `${rows.length} of the ${page.items.length} records on this page match "${current.q}".`) : null,
      table({
        label: 'Inventory',
        rows,
        empty: page.total === 0 && Object.keys(current).length === 0 ? 'No traffic discovered yet. Send requests through Envoy (or run `tokenwarden demo`).' : 'No records match these filters.',
        columns: [
          { label: 'Consumer', cell: (r) => h('code', { class: 'id' }, r.consumer) },
          { label: 'Provider', cell: (r) => r.provider },
          { label: 'Model', cell: (r) => [h('code', {}, r.model || '(none)'), r.response_models.length ? h('div', { class: 'muted small' }, r.response_models.join(', ')) : null] },
          { label: 'API', cell: (r) => r.last_api },
          { label: 'Requests', num: true, cell: (r) => int(r.requests) },
          { label: 'Errors', num: true, cell: (r) => int(errorTotal(r.errors)) },
          { label: 'Input tok.', num: true, cell: (r) => compact(inputTokens(r.tokens.reported) + inputTokens(r.tokens.estimated)) },
          { label: 'Output tok.', num: true, cell: (r) => compact(r.tokens.reported.output + r.tokens.estimated.output) },
          { label: 'Cost', num: true, cell: (r) => [usd(r.cost_micro_usd), r.unpriced_requests > 0 ? h('span', { class: 'flag', title: `${r.unpriced_requests} requests without a price` }, ' unpriced') : null] },
          { label: 'First seen', cell: (r) => dateTime(r.first_seen) },
          { label: 'Last seen', cell: (r) => dateTime(r.last_seen) },
        ],
      }),
      pager({ offset, limit: PAGE, total: page.total, onPage: (o) => ctx.go('inventory', { ...current, offset: o }) }),
    ];
  });
}
