// @ts-check
/**
 * Consumers: who is calling, and what the platform team decided about each (status, owner,
 * labels, display name, budget templates); bulk resolution by pattern through consumer rules.
 */
import { api, get, query, seg } from '../api.js';
import { fill, h } from '../dom.js';
import { dateTime, int, labelText, parseLabels, usd } from '../format.js';
import { badge, button, card, deleteButton, dialog, errorBox, field, pageHeader, pager, panel, select, table, toast } from '../ui.js';

const PAGE = 50;
/** @type {Array<[string, string]>} */
const STATUSES = [
  ['added', 'added (resolved, governed)'],
  ['ignored', 'ignored (reviewed, left alone)'],
  ['discovered', 'discovered (undecided)'],
];

/**
 * Owners and templates for the dialogs; either list may be unavailable (empty then).
 * @returns {Promise<{ owners: import('../types.js').Owner[], templates: string[] }>}
 */
async function choices() {
  const [owners, templates] = await Promise.all([
    get('/api/v1/owners').then((r) => /** @type {import('../types.js').Owner[]} */ (r.items), () => []),
    get('/api/v1/budget-templates').then((r) => /** @type {{ id: string }[]} */ (r.items).map((t) => t.id), () => []),
  ]);
  return { owners, templates };
}

/** @param {import('../types.js').Owner[]} owners @param {string | null | undefined} value */
function ownerSelect(owners, value) {
  return select('owner', [['', '— no owner —'], ...owners.map((o) => /** @type {[string, string]} */ ([o.id, `${o.name} (${o.id})`]))], value ?? '');
}

/** @param {string[]} templates @param {string[]} chosen */
function templateChecks(templates, chosen) {
  if (templates.length === 0) return { el: h('p', { class: 'muted' }, 'No budget templates defined.'), read: () => /** @type {string[]} */ ([]) };
  const boxes = templates.map((t) => h('input', { type: 'checkbox', name: 'template', value: t, checked: chosen.includes(t) }));
  return {
    el: h('fieldset', { class: 'checks' }, h('legend', {}, 'Budget templates'), boxes.map((b) => h('label', {}, b, ` ${b.value}`))),
    read: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

/**
 * @param {import('../types.js').ConsumerRow} c
 * @param {{ owners: import('../types.js').Owner[], templates: string[] }} opts
 */
function resolveDialog(c, opts) {
  const r = c.resolution;
  const status = select('status', STATUSES, r && r.status !== 'discovered' ? r.status : 'added');
  const owner = ownerSelect(opts.owners, r?.owner);
  const displayName = h('input', { type: 'text', name: 'displayName', value: r?.displayName ?? '' });
  const labels = h('textarea', { name: 'labels', rows: 3, placeholder: 'team=payments\nenv=prod' }, Object.entries(r?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join('\n'));
  const templates = templateChecks(opts.templates, r?.budgetTemplates ?? []);
  return dialog({
    title: `Resolve ${c.consumer}`,
    body: [
      r && r.resolvedBy.startsWith('rule:') ? h('p', { class: 'muted' }, `Currently resolved by ${r.resolvedBy}; an entry for this consumer takes precedence.`) : null,
      h('div', { class: 'form-grid' }, field('Status', status), field('Owner', owner), field('Display name', displayName), field('Labels (key=value per line)', labels)),
      templates.el,
    ],
    submitLabel: 'Save',
    async onSubmit() {
      /** @type {Record<string, unknown>} */
      const body = { status: status.value, labels: parseLabels(labels.value), budgetTemplates: templates.read() };
      if (owner.value) body.owner = owner.value;
      if (displayName.value.trim()) body.displayName = displayName.value.trim();
      await api('PUT', `/api/v1/consumers/${seg(c.consumer)}`, { body });
    },
  });
}

/** @param {{ owners: import('../types.js').Owner[], templates: string[] }} opts */
function bulkDialog(opts) {
  const match = h('input', { type: 'text', name: 'match', required: true, placeholder: 'spiffe://prod/ns/payments/*' });
  const id = h('input', { type: 'text', name: 'id', required: true, placeholder: 'payments-prod' });
  const priority = h('input', { type: 'number', name: 'priority', value: 100 });
  const status = select('status', STATUSES, 'added');
  const owner = ownerSelect(opts.owners, '');
  const labels = h('input', { type: 'text', name: 'labels', placeholder: 'team=payments, env=prod' });
  const templates = templateChecks(opts.templates, []);
  const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
  const runPreview = async () => {
    fill(preview, h('p', { class: 'muted' }, 'Matching…'));
    try {
      /** @type {{ matches: string[], total: number }} */
      const r = await api('POST', '/api/v1/consumer-rules/preview', { body: { match: match.value.trim() } });
      fill(preview, h('p', {}, h('strong', { 'data-testid': 'preview-total' }, `${r.total} known consumer${r.total === 1 ? '' : 's'} match`), r.total > r.matches.length ? ` (first ${r.matches.length} shown)` : ''), h('ul', { class: 'match-list' }, r.matches.map((m) => h('li', {}, h('code', {}, m)))));
    } catch (err) {
      fill(preview, errorBox(err));
    }
  };
  return dialog({
    title: 'Bulk resolve by pattern',
    wide: true,
    body: [
      h('p', { class: 'muted' }, 'A consumer rule applies to every consumer whose id matches the pattern (* and ?), now and when discovered later, unless the consumer has its own decision. Lower priority numbers are tried first.'),
      h('div', { class: 'form-grid' }, field('Pattern', match), field('Rule id', id), field('Priority', priority), field('Status', status), field('Owner', owner), field('Labels', labels)),
      templates.el,
      h('div', {}, button('Preview matches', { onclick: runPreview })),
      preview,
    ],
    submitLabel: 'Create rule',
    async onSubmit() {
      /** @type {Record<string, unknown>} */
      const body = { id: id.value.trim(), match: match.value.trim(), priority: Number(priority.value), status: status.value, labels: parseLabels(labels.value), budgetTemplates: templates.read() };
      if (owner.value) body.owner = owner.value;
      await api('POST', '/api/v1/consumer-rules', { body });
    },
  });
}

/** @type {import('../types.js').Page} */
export async function renderConsumers(root, ctx) {
  const p = ctx.params;
  const offset = Number(p.get('offset') ?? 0) || 0;
  const filter = { status: p.get('status') ?? '', owner: p.get('owner') ?? '', q: p.get('q') ?? '' };
  const errors = h('div');
  const body = h('div');
  const rulesBody = h('div');
  const reload = () => ctx.go('consumers', { ...filter, offset: offset || undefined });
  const opts = await choices();

  const status = select('status', [['', 'Any status'], ['discovered', 'discovered'], ['added', 'added'], ['ignored', 'ignored']], filter.status);
  const owner = select('owner', [['', 'Any owner'], ...opts.owners.map((o) => /** @type {[string, string]} */ ([o.id, o.name]))], filter.owner);
  const q = h('input', { type: 'search', name: 'q', value: filter.q, placeholder: 'part of the consumer id' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Consumer filters' }, field('Search', q), field('Status', status), field('Owner', owner), button('Apply', { kind: 'primary', type: 'submit' }));
  const apply = () => ctx.go('consumers', { status: status.value, owner: owner.value, q: q.value.trim() });
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  status.addEventListener('change', apply);
  owner.addEventListener('change', apply);

  const bulk = ctx.canWrite ? button('Bulk resolve…', { kind: 'primary', onclick: async () => (await bulkDialog(opts)) && (toast('Consumer rule created'), reload()) }) : null;
  fill(root, pageHeader('Consumers', [bulk], 'Resolve discovered consumers to owners; governance (labels, budget templates) follows.'), filters, errors, body, card('Consumer rules', rulesBody));

  await Promise.all([
    panel(body, async () => {
      /** @type {import('../types.js').Paged<import('../types.js').ConsumerRow>} */
      const page = await get(`/api/v1/consumers${query({ status: filter.status, owner: filter.owner, q: filter.q, offset, limit: PAGE })}`);
      const ownerName = (/** @type {string | null} */ id) => (id ? opts.owners.find((o) => o.id === id)?.name ?? id : null);
      return [
        table({
          label: 'Consumers',
          rows: page.items,
          empty: 'No consumers match.',
          columns: [
            { label: 'Consumer', cell: (c) => h('div', { class: 'stack' }, c.resolution?.displayName ? h('strong', {}, c.resolution.displayName) : null, h('code', { class: 'id' }, c.consumer)) },
            { label: 'Status', cell: (c) => (c.resolution ? badge(c.resolution.status) : badge('unknown', 'off')) },
            { label: 'Owner', cell: (c) => ownerName(c.resolution?.owner ?? null) ?? h('span', { class: 'muted' }, '—') },
            { label: 'Labels', cell: (c) => labelText(c.resolution?.labels) },
            { label: 'Resolved by', cell: (c) => h('span', { class: 'muted' }, c.resolution?.resolvedBy ?? '') },
            { label: 'Models', num: true, cell: (c) => int(c.models) },
            { label: 'Requests', num: true, cell: (c) => int(c.requests) },
            { label: 'Cost', num: true, cell: (c) => usd(c.cost_micro_usd) },
            { label: 'Last seen', cell: (c) => dateTime(c.last_seen) },
            ...(ctx.canWrite
              ? [
                  {
                    label: 'Actions',
                    cell: (/** @type {import('../types.js').ConsumerRow} */ c) =>
                      h(
                        'div',
                        { class: 'row-actions' },
                        button('Resolve…', { onclick: async () => (await resolveDialog(c, opts)) && (toast(`${c.consumer} saved`), reload()) }),
                        c.resolution?.resolvedBy === 'entry'
                          ? deleteButton('Reset', {
                              kind: 'ghost',
                              tooltip: 'Forget the decision: back to discovered (or to a matching rule)',
                              title: `Reset ${c.consumer}?`,
                              message: 'Its status, owner, labels and templates are removed; a matching consumer rule applies again.',
                              path: `/api/v1/consumers/${seg(c.consumer)}`,
                              errors,
                              reload,
                            })
                          : null,
                      ),
                  },
                ]
              : []),
          ],
        }),
        pager({ offset, limit: PAGE, total: page.total, onPage: (o) => ctx.go('consumers', { ...filter, offset: o }) }),
      ];
    }),
    panel(rulesBody, async () => {
      /** @type {{ items: import('../types.js').ConsumerRule[] }} */
      const rules = await get('/api/v1/consumer-rules');
      return table({
        label: 'Consumer rules',
        rows: [...rules.items].sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : 1)),
        empty: 'No consumer rules. Use "Bulk resolve" to resolve many consumers by pattern.',
        columns: [
          { label: 'Priority', num: true, cell: (r) => r.priority },
          { label: 'Rule', cell: (r) => r.id },
          { label: 'Pattern', cell: (r) => h('code', {}, r.match) },
          { label: 'Status', cell: (r) => badge(r.status) },
          { label: 'Owner', cell: (r) => r.owner ?? '—' },
          { label: 'Labels', cell: (r) => labelText(r.labels) },
          { label: 'Templates', cell: (r) => (r.budgetTemplates ?? []).join(', ') },
          { label: 'Source', cell: (r) => badge(r.source) },
          ...(ctx.canWrite
            ? [
                {
                  label: 'Actions',
                  cell: (/** @type {import('../types.js').ConsumerRule} */ r) =>
                    r.source === 'api'
                      ? deleteButton('Delete', {
                          title: `Delete rule ${r.id}?`,
                          message: `Consumers matching ${r.match} without their own decision go back to discovered (or the next matching rule).`,
                          path: `/api/v1/consumer-rules/${seg(r.id)}`,
                          errors,
                          reload,
                        })
                      : h('span', { class: 'muted' }, 'config file'),
                },
              ]
            : []),
        ],
      });
    }),
  ]);
}
