// @ts-check
/** Budgets (live used/remaining per limit) and budget templates: create, edit, mode, delete. */
import { api, get, query, seg } from '../api.js';
import { meter } from '../charts.js';
import { fill, h } from '../dom.js';
import { dateTime } from '../format.js';
import { attempt, badge, button, confirmAction, deleteButton, pageHeader, pager, panel, table, toast, toggle } from '../ui.js';
import { editDefinition, limitMetric, limitState, selectText, toBody, windowText } from './budget-form.js';

const PAGE = 50;

/**
 * The monitor/enforce switch of an API definition; enforcing asks first.
 * @param {'budget' | 'template'} kind
 * @param {import('../types.js').BudgetView | import('../types.js').TemplateView} def
 * @param {Element} errors
 * @param {() => void} reload
 */
function modeSwitch(kind, def, errors, reload) {
  const base = kind === 'budget' ? '/api/v1/budgets' : '/api/v1/budget-templates';
  return toggle({
    checked: def.mode === 'enforce',
    label: `Enforce ${def.id}`,
    onText: 'enforce',
    offText: 'monitor',
    async onChange(enforce) {
      if (enforce) {
        const ok = await confirmAction({ title: `Enforce ${def.id}?`, message: `Requests over its limits will be rejected with 429 before they reach the provider.`, confirmLabel: 'Enforce' });
        if (!ok) return false;
      }
      const saved = await attempt(errors, () => api('PUT', `${base}/${seg(def.id)}`, { body: { ...toBody(def), mode: enforce ? 'enforce' : 'monitor' } }));
      if (saved) {
        toast(`${def.id} now ${enforce ? 'enforces' : 'monitors'}`);
        reload();
      }
      return saved;
    },
  });
}

/**
 * @param {import('../types.js').BudgetView | import('../types.js').TemplateView} def
 * @param {boolean} canWrite
 */
function editable(def, canWrite) {
  return canWrite && def.source === 'api' && !('template' in def && def.template);
}

/**
 * @param {'budget' | 'template'} kind
 * @param {import('../types.js').BudgetView | import('../types.js').TemplateView} def
 * @param {Element} errors
 * @param {() => void} reload
 */
function rowActions(kind, def, errors, reload) {
  const base = kind === 'budget' ? '/api/v1/budgets' : '/api/v1/budget-templates';
  return h(
    'div',
    { class: 'row-actions' },
    button('Edit', {
      onclick: async () => {
        if (await editDefinition({ kind, initial: def, save: (body) => api('PUT', `${base}/${seg(def.id)}`, { body }) })) reload();
      },
    }),
    deleteButton('Delete', {
      title: `Delete ${def.id}?`,
      message: kind === 'budget' ? 'Its limits stop applying at once; its counters are kept until their windows end.' : 'No new instances are created; budgets it created stop applying.',
      path: `${base}/${seg(def.id)}`,
      errors,
      reload,
    }),
  );
}

/** @param {string} kind @param {string[] | undefined} shadowed */
function shadowNotice(kind, shadowed) {
  if (!shadowed || shadowed.length === 0) return null;
  return h('p', { class: 'notice', role: 'status' }, `The config file defines ${kind} with the same id as API ones, and wins: ${shadowed.join(', ')}.`);
}

/** @type {import('../types.js').Page} */
export async function renderBudgets(root, ctx) {
  const offset = Number(ctx.params.get('offset') ?? 0) || 0;
  const errors = h('div');
  const body = h('div');
  const reload = () => ctx.go('budgets', { offset: offset || undefined });
  const create = ctx.canWrite ? button('New budget', { kind: 'primary', onclick: async () => (await editDefinition({ kind: 'budget', save: (b) => api('POST', '/api/v1/budgets', { body: b }) })) && reload() }) : null;
  fill(root, pageHeader('Budgets', [button('Refresh', { onclick: reload }), create], 'Limits in force now, with what their current windows have used.'), errors, body);
  await panel(body, async () => {
    /** @type {import('../types.js').Paged<import('../types.js').BudgetView> & { shadowed?: string[] }} */
    const page = await get(`/api/v1/budgets${query({ offset, limit: PAGE })}`);
    return [
      shadowNotice('budgets', page.shadowed),
      table({
        label: 'Budgets',
        rows: page.items,
        empty: 'No budgets yet. Create one, or declare them under budgets: in the config file.',
        columns: [
          { label: 'Budget', cell: (b) => [h('strong', {}, b.id), b.description ? h('div', { class: 'muted' }, b.description) : null, b.template ? h('div', { class: 'muted' }, `from template ${b.template.id}`) : null] },
          { label: 'Source', cell: (b) => badge(b.template ? 'template' : b.source) },
          { label: 'Mode', cell: (b) => (editable(b, ctx.canWrite) ? modeSwitch('budget', b, errors, reload) : badge(b.mode)) },
          { label: 'Applies to', cell: (b) => h('span', { class: 'selector' }, selectText(b.select)) },
          {
            label: 'Limits: used / remaining',
            cls: 'limits-cell',
            cell: (b) =>
              b.limits.map((/** @type {import('../types.js').LimitState} */ l) =>
                h(
                  'div',
                  { class: `limit ${l.exhausted ? 'exhausted' : ''}`, 'data-limit': `${b.id}` },
                  h('span', { class: 'limit-name' }, `${limitMetric(l)} ${windowText(l)}`),
                  meter(l.used + l.reserved, l.max, `${b.id}: ${limitMetric(l)} ${windowText(l)}`),
                  limitState(h('span', { class: 'limit-state' }), l),
                  h('span', { class: 'muted' }, ` · resets ${dateTime(l.window_end)}`),
                ),
              ),
          },
          ...(ctx.canWrite ? [{ label: 'Actions', cell: (/** @type {import('../types.js').BudgetView} */ b) => (editable(b, true) ? rowActions('budget', b, errors, reload) : h('span', { class: 'muted' }, b.source === 'config' ? 'config file' : '')) }] : []),
        ],
      }),
      pager({ offset, limit: PAGE, total: page.total, onPage: (o) => ctx.go('budgets', { offset: o }) }),
    ];
  });
}

/** @type {import('../types.js').Page} */
export async function renderTemplates(root, ctx) {
  const errors = h('div');
  const body = h('div');
  const reload = () => ctx.go('templates');
  const create = ctx.canWrite ? button('New template', { kind: 'primary', onclick: async () => (await editDefinition({ kind: 'template', save: (b) => api('POST', '/api/v1/budget-templates', { body: b }) })) && reload() }) : null;
  fill(root, pageHeader('Budget templates', [create], 'One budget per consumer, team or model, created as soon as it is discovered.'), errors, body);
  await panel(body, async () => {
    /** @type {{ items: import('../types.js').TemplateView[], shadowed?: string[] }} */
    const list = await get('/api/v1/budget-templates');
    return [
      shadowNotice('templates', list.shadowed),
      table({
        label: 'Budget templates',
        rows: list.items,
        empty: 'No budget templates yet.',
        columns: [
          { label: 'Template', cell: (t) => [h('strong', {}, t.id), t.description ? h('div', { class: 'muted' }, t.description) : null] },
          { label: 'Source', cell: (t) => badge(t.source) },
          { label: 'Mode', cell: (t) => (editable(t, ctx.canWrite) ? modeSwitch('template', t, errors, reload) : badge(t.mode)) },
          { label: 'Group by', cell: (t) => h('code', {}, t.group_by) },
          { label: 'Applies to', cell: (t) => h('span', { class: 'selector' }, selectText(t.select)) },
          { label: 'Limits (each instance)', cell: (t) => t.limits.map((l) => h('div', {}, `${limitMetric(l)} ${windowText(l)}`)) },
          ...(ctx.canWrite ? [{ label: 'Actions', cell: (/** @type {import('../types.js').TemplateView} */ t) => (editable(t, true) ? rowActions('template', t, errors, reload) : h('span', { class: 'muted' }, 'config file')) }] : []),
        ],
      }),
    ];
  });
}
