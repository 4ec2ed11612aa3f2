// @ts-check
/** The audit log: every change through the admin API, who made it and when, newest first. */
import { get, query } from '../api.js';
import { fill, h } from '../dom.js';
import { dateTime } from '../format.js';
import { badge, button, pageHeader, panel, table } from '../ui.js';

const PAGE = 100;

/** @param {unknown} v */
const json = (v) => (v === undefined ? '' : JSON.stringify(v, null, 2));

/** @param {import('../types.js').AuditEntry} e */
function change(e) {
  if (e.before === undefined && e.after === undefined) return h('span', { class: 'muted' }, '—');
  return h(
    'details',
    {},
    h('summary', {}, e.action === 'create' ? 'created as' : e.action === 'delete' ? 'deleted' : 'changed'),
    h('div', { class: 'diff' }, e.before !== undefined ? h('div', {}, h('div', { class: 'muted small' }, 'before'), h('pre', {}, json(e.before))) : null, e.after !== undefined ? h('div', {}, h('div', { class: 'muted small' }, 'after'), h('pre', {}, json(e.after))) : null),
  );
}

/** @type {import('../types.js').Page} */
export async function renderAudit(root, ctx) {
  const before = ctx.params.get('before') ?? '';
  const body = h('div');
  fill(root, pageHeader('Audit log', [before ? button('Newest', { onclick: () => ctx.go('audit') }) : null], 'Changes to owners, consumers, rules, resources, policies, budgets and templates, with the admin token that made them.'), body);
  await panel(body, async () => {
    /** @type {{ items: import('../types.js').AuditEntry[] }} */
    const r = await get(`/api/v1/audit${query({ limit: PAGE, before })}`);
    const last = r.items[r.items.length - 1];
    return [
      table({
        label: 'Audit log',
        rows: r.items,
        empty: before ? 'No older changes.' : 'No changes recorded yet.',
        columns: [
          { label: 'When (UTC)', cell: (e) => dateTime(e.at) },
          { label: 'Who', cell: (e) => h('strong', {}, e.actor) },
          { label: 'Action', cell: (e) => badge(e.action) },
          { label: 'Entity', cell: (e) => e.entity.replace('_', ' ') },
          { label: 'Id', cell: (e) => h('code', { class: 'id' }, e.id) },
          { label: 'Change', cell: change },
        ],
      }),
      r.items.length === PAGE && last ? h('nav', { class: 'pager', 'aria-label': 'Pages' }, button('Older ›', { onclick: () => ctx.go('audit', { before: last.at }) })) : null,
    ];
  });
}
