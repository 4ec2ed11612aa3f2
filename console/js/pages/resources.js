// @ts-check
/** Resources: models at providers seen in traffic or declared, with the sanctioned switch and price overrides. */
import { api, get, seg } from '../api.js';
import { fill, h } from '../dom.js';
import { int, usd } from '../format.js';
import { attempt, badge, button, deleteButton, dialog, field, pageHeader, panel, select, table, toast, toggle } from '../ui.js';

/** @type {Array<[keyof import('../types.js').Price, string]>} */
const PRICE_FIELDS = [
  ['input_mtok', 'Input $/Mtok'],
  ['cached_input_mtok', 'Cached input $/Mtok'],
  ['cache_write_mtok', 'Cache write $/Mtok'],
  ['output_mtok', 'Output $/Mtok'],
];

/**
 * The body of PUT /api/v1/resources/{id}: the resource's decided fields, with changes.
 * @param {import('../types.js').ResourceRow} r
 * @param {Partial<import('../types.js').ResourceRow>} changes
 */
function resourceBody(r, changes) {
  const next = { ...r, ...changes };
  /** @type {Record<string, unknown>} */
  const body = { sanctioned: next.sanctioned };
  if (next.displayName) body.displayName = next.displayName;
  if (next.price && Object.keys(next.price).length > 0) body.price = next.price;
  if (next.endpoint) body.endpoint = next.endpoint;
  if (next.notes) body.notes = next.notes;
  return body;
}

/** @param {import('../types.js').Price | undefined} p */
function priceText(p) {
  if (!p) return h('span', { class: 'muted' }, 'catalog');
  return PRICE_FIELDS.filter(([k]) => p[k] !== undefined).map(([k, label]) => h('div', { class: 'small' }, `${label.replace(' $/Mtok', '')}: $${p[k]}`));
}

/** @param {import('../types.js').ResourceRow} r */
function editDialog(r) {
  const sanctioned = select('sanctioned', [['true', 'sanctioned'], ['false', 'not sanctioned']], String(r.sanctioned));
  const displayName = h('input', { type: 'text', name: 'displayName', value: r.displayName ?? '' });
  const endpoint = h('input', { type: 'text', name: 'endpoint', value: r.endpoint ?? '', placeholder: 'https://vllm.internal:8000 (self-hosted)' });
  const notes = h('textarea', { name: 'notes', rows: 2 }, r.notes ?? '');
  const prices = PRICE_FIELDS.map(([k, label]) => /** @type {const} */ ([k, label, h('input', { type: 'number', name: k, min: '0', step: 'any', value: r.price?.[k] ?? '', placeholder: 'catalog' })]));
  return dialog({
    title: `Resource ${r.id}`,
    wide: true,
    body: [
      h('div', { class: 'form-grid' }, field('Sanctioned', sanctioned), field('Display name', displayName), field('Endpoint', endpoint), field('Notes', notes)),
      h('fieldset', {}, h('legend', {}, 'Price override in USD per million tokens (empty keeps the catalog price)'), h('div', { class: 'form-grid' }, prices.map(([, label, input]) => field(label, input)))),
    ],
    submitLabel: 'Save',
    async onSubmit() {
      /** @type {import('../types.js').Price} */
      const price = {};
      for (const [k, label, input] of prices) {
        if (input.value.trim() === '') continue;
        const n = Number(input.value);
        if (!Number.isFinite(n) || n < 0) throw new Error(`${label}: must be a number of 0 or more`);
        price[k] = n;
      }
      const body = resourceBody(r, { sanctioned: sanctioned.value === 'true', displayName: displayName.value.trim(), endpoint: endpoint.value.trim(), notes: notes.value.trim(), price });
      if (Object.keys(price).length === 0) delete body.price;
      await api('PUT', `/api/v1/resources/${seg(r.id)}`, { body });
    },
  });
}

/** @type {import('../types.js').Page} */
export async function renderResources(root, ctx) {
  const filter = ctx.params.get('filter') ?? '';
  const needle = ctx.params.get('q') ?? '';
  const errors = h('div');
  const body = h('div');
  const reload = () => ctx.go('resources', { filter, q: needle });
  const show = select('filter', [['', 'All resources'], ['unreviewed', 'Unreviewed'], ['unsanctioned', 'Not sanctioned'], ['sanctioned', 'Sanctioned']], filter);
  const q = h('input', { type: 'search', name: 'q', value: needle, placeholder: 'provider/model' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Resource filters' }, field('Search', q), field('Show', show), button('Apply', { kind: 'primary', type: 'submit' }));
  const apply = () => ctx.go('resources', { filter: show.value, q: q.value.trim() });
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  show.addEventListener('change', apply);
  fill(root, pageHeader('Resources', [], 'Models at providers. Requests to models that are not sanctioned are flagged or blocked by the sanction policies.'), filters, errors, body);

  await panel(body, async () => {
    /** @type {{ items: import('../types.js').ResourceRow[] }} */
    const list = await get('/api/v1/resources');
    const rows = list.items.filter(
      (r) =>
        (filter === '' || (filter === 'unreviewed' && !r.reviewed) || (filter === 'unsanctioned' && !r.sanctioned) || (filter === 'sanctioned' && r.sanctioned)) &&
        (needle === '' || r.id.toLowerCase().includes(needle.toLowerCase())),
    );
    const writable = (/** @type {import('../types.js').ResourceRow} */ r) => ctx.canWrite && r.source !== 'config';
    return table({
      label: 'Resources',
      rows,
      empty: list.items.length === 0 ? 'No resources yet: none declared and no traffic discovered.' : 'No resources match.',
      columns: [
        { label: 'Resource', cell: (r) => h('div', { class: 'stack' }, r.displayName ? h('strong', {}, r.displayName) : null, h('code', { class: 'id' }, r.id), r.endpoint ? h('span', { class: 'muted small' }, r.endpoint) : null) },
        {
          label: 'Sanctioned',
          cell: (r) =>
            writable(r)
              ? toggle({
                  checked: r.sanctioned,
                  label: `Sanctioned ${r.id}`,
                  onText: 'sanctioned',
                  offText: 'not sanctioned',
                  onChange: async (next) => {
                    const ok = await attempt(errors, () => api('PUT', `/api/v1/resources/${seg(r.id)}`, { body: resourceBody(r, { sanctioned: next }) }));
                    if (ok) {
                      toast(`${r.id} ${next ? 'sanctioned' : 'not sanctioned'}`);
                      r.sanctioned = next;
                      r.reviewed = true;
                    }
                    return ok;
                  },
                })
              : badge(r.sanctioned ? 'sanctioned' : 'not sanctioned', r.sanctioned ? 'sanctioned' : 'unsanctioned'),
        },
        { label: 'Review', cell: (r) => (r.reviewed ? badge(r.source === 'config' ? 'config' : 'reviewed', r.source === 'config' ? 'config' : 'added') : badge('unreviewed', 'discovered')) },
        { label: 'Requests', num: true, cell: (r) => int(r.requests) },
        { label: 'Consumers', num: true, cell: (r) => int(r.consumers) },
        { label: 'Cost', num: true, cell: (r) => usd(r.costMicroUsd) },
        { label: 'Versions seen', cell: (r) => h('span', { class: 'small' }, r.responseModels.join(', ')) },
        { label: 'Price', cell: (r) => priceText(r.price) },
        ...(ctx.canWrite
          ? [
              {
                label: 'Actions',
                cell: (/** @type {import('../types.js').ResourceRow} */ r) =>
                  writable(r)
                    ? h(
                        'div',
                        { class: 'row-actions' },
                        button('Edit', { onclick: async () => (await editDialog(r)) && reload() }),
                        r.reviewed
                          ? deleteButton('Forget', {
                              kind: 'ghost',
                              tooltip: 'Remove the catalog entry: the model goes back to unreviewed (not sanctioned)',
                              title: `Remove ${r.id} from the catalog?`,
                              message: 'Its sanction, price override and notes are deleted; traffic to it counts as unsanctioned.',
                              confirmLabel: 'Remove',
                              path: `/api/v1/resources/${seg(r.id)}`,
                              errors,
                              reload,
                            })
                          : null,
                      )
                    : h('span', { class: 'muted' }, 'config file'),
              },
            ]
          : []),
      ],
    });
  });
}

