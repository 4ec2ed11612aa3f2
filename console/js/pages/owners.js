// @ts-check
/** Owners: the teams that answer for consumers (showback subjects): create, edit, delete. */
import { api, get, seg } from '../api.js';
import { fill, h } from '../dom.js';
import { parseList } from '../format.js';
import { badge, button, deleteButton, dialog, field, pageHeader, panel, table, toast } from '../ui.js';

/** @param {{ initial?: import('../types.js').Owner }} opts */
function ownerDialog(opts) {
  const o = opts.initial;
  const id = h('input', { type: 'text', name: 'id', required: true, value: o?.id ?? '', disabled: o !== undefined, placeholder: 'payments' });
  const name = h('input', { type: 'text', name: 'name', required: true, value: o?.name ?? '', placeholder: 'Payments team' });
  const costCenter = h('input', { type: 'text', name: 'costCenter', value: o?.costCenter ?? '', placeholder: 'CC-1042' });
  const contacts = h('input', { type: 'text', name: 'contacts', value: (o?.contacts ?? []).join(', '), placeholder: 'payments@example.com, #payments-oncall' });
  return dialog({
    title: o ? `Edit owner ${o.id}` : 'New owner',
    body: h('div', { class: 'form-grid' }, field('Id', id, 'Referenced by consumers, policies and exports'), field('Name', name), field('Cost center', costCenter), field('Contacts', contacts, 'Comma-separated')),
    submitLabel: o ? 'Save' : 'Create',
    async onSubmit() {
      /** @type {Record<string, unknown>} */
      const body = { id: o?.id ?? id.value.trim(), name: name.value.trim(), contacts: parseList(contacts.value) };
      if (costCenter.value.trim()) body.costCenter = costCenter.value.trim();
      if (o) await api('PUT', `/api/v1/owners/${seg(o.id)}`, { body });
      else await api('POST', '/api/v1/owners', { body });
    },
  });
}

/** @type {import('../types.js').Page} */
export async function renderOwners(root, ctx) {
  const errors = h('div');
  const body = h('div');
  const reload = () => ctx.go('owners');
  const create = ctx.canWrite ? button('New owner', { kind: 'primary', onclick: async () => (await ownerDialog({})) && (toast('Owner created'), reload()) }) : null;
  fill(root, pageHeader('Owners', [create], 'Teams and departments that answer for consumers, for showback and chargeback.'), errors, body);
  await panel(body, async () => {
    /** @type {{ items: import('../types.js').Owner[] }} */
    const list = await get('/api/v1/owners');
    return table({
      label: 'Owners',
      rows: list.items,
      empty: 'No owners yet. Create one, then resolve consumers to it.',
      columns: [
        { label: 'Id', cell: (o) => h('code', {}, o.id) },
        { label: 'Name', cell: (o) => h('strong', {}, o.name) },
        { label: 'Cost center', cell: (o) => o.costCenter ?? '—' },
        { label: 'Contacts', cell: (o) => (o.contacts ?? []).join(', ') },
        { label: 'Source', cell: (o) => badge(o.source) },
        { label: 'Consumers', cell: (o) => h('a', { href: `#/consumers?owner=${encodeURIComponent(o.id)}` }, 'View') },
        ...(ctx.canWrite
          ? [
              {
                label: 'Actions',
                cell: (/** @type {import('../types.js').Owner} */ o) =>
                  o.source === 'config'
                    ? h('span', { class: 'muted' }, 'config file')
                    : h(
                        'div',
                        { class: 'row-actions' },
                        button('Edit', { onclick: async () => (await ownerDialog({ initial: o })) && reload() }),
                        deleteButton('Delete', {
                          title: `Delete owner ${o.name}?`,
                          message: `Consumers and rules that name ${o.id} keep the id but lose its name and cost center in reports.`,
                          path: `/api/v1/owners/${seg(o.id)}`,
                          errors,
                          reload,
                        }),
                      ),
              },
            ]
          : []),
      ],
    });
  });
}
