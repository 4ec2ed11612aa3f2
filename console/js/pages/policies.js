// @ts-check
/**
 * Sanction policies: what happens to requests for models that are not sanctioned, globally and
 * per owner (off, monitor: flag and count, enforce: reject with 403), with allowlists.
 */
import { api, get, seg } from '../api.js';
import { fill, h } from '../dom.js';
import { parseList } from '../format.js';
import { attempt, badge, button, card, confirmAction, deleteButton, dialog, field, pageHeader, panel, select, table, toast } from '../ui.js';

/** @type {Array<[import('../types.js').PolicyMode, string]>} */
const MODES = [
  ['off', 'Off: no check'],
  ['monitor', 'Monitor: flag (header, metric), never block'],
  ['enforce', 'Enforce: reject with 403 before the provider'],
];

/**
 * Saves a policy; moving it to enforce asks first.
 * @param {string} id @param {import('../types.js').PolicyMode} mode @param {string[]} allow @param {import('../types.js').PolicyMode} before
 * @returns {Promise<boolean>} false when the user declined
 */
async function savePolicy(id, mode, allow, before) {
  if (mode === 'enforce' && before !== 'enforce') {
    const who = id === 'global' ? 'any consumer without an owner policy' : `consumers owned by ${id}`;
    const ok = await confirmAction({ title: `Enforce the ${id} policy?`, message: `Requests from ${who} to models that are neither sanctioned nor allowlisted will be rejected with 403.`, confirmLabel: 'Enforce' });
    if (!ok) return false;
  }
  await api('PUT', `/api/v1/policies/${seg(id)}`, { body: { mode, allow } });
  return true;
}

/** A mode chooser as a radio group. @param {string} name @param {import('../types.js').PolicyMode} value @param {boolean} disabled */
function modeRadios(name, value, disabled) {
  const inputs = MODES.map(([m, label]) => ({ m, input: h('input', { type: 'radio', name, value: m, checked: m === value, disabled }), label }));
  const el = h('fieldset', { class: 'modes' }, h('legend', {}, 'Mode'), inputs.map((i) => h('label', { class: `mode-option mode-${i.m}` }, i.input, ` ${i.label}`)));
  return { el, read: () => /** @type {import('../types.js').PolicyMode} */ (inputs.find((i) => i.input.checked)?.m ?? 'off') };
}

/** @param {{ owners: import('../types.js').Owner[], initial?: import('../types.js').Policy }} opts */
function ownerPolicyDialog(opts) {
  const p = opts.initial;
  const owner = select('owner', opts.owners.map((o) => /** @type {[string, string]} */ ([o.id, `${o.name} (${o.id})`])), p?.id);
  if (p) owner.disabled = true;
  const modes = modeRadios('owner-mode', p?.mode ?? 'monitor', false);
  const allow = h('textarea', { name: 'allow', rows: 3, placeholder: 'openai/gpt-4o*\nanthropic/*' }, (p?.allow ?? []).join('\n'));
  return dialog({
    title: p ? `Policy for ${p.id}` : 'New owner policy',
    body: [field('Owner', owner), modes.el, field('Allowlist (provider/model globs, one per line)', allow)],
    submitLabel: 'Save',
    onSubmit: () => savePolicy(p?.id ?? owner.value, modes.read(), parseList(allow.value), p?.mode ?? 'off'),
  });
}

/** @type {import('../types.js').Page} */
export async function renderPolicies(root, ctx) {
  const errors = h('div');
  const globalBody = h('div');
  const ownersBody = h('div');
  const reload = () => ctx.go('policies');
  /** @type {import('../types.js').Owner[]} */
  const owners = await get('/api/v1/owners').then((r) => r.items, () => []);
  const add = ctx.canWrite && owners.length > 0 ? button('New owner policy', { kind: 'primary', onclick: async () => (await ownerPolicyDialog({ owners })) && reload() }) : null;
  fill(
    root,
    pageHeader('Policies', [], 'A model is allowed when it is sanctioned (Resources) or matches the allowlist of the policy that applies: the owner’s own policy, else the global one.'),
    errors,
    card('Global policy', globalBody),
    card('Owner policies', ownersBody, { actions: [add] }),
  );

  await panel(globalBody, async () => {
    /** @type {{ items: import('../types.js').Policy[] }} */
    const list = await get('/api/v1/policies');
    const global = list.items.find((p) => p.id === 'global') ?? { id: 'global', mode: 'off', allow: [], source: 'api' };
    const locked = !ctx.canWrite || global.source === 'config';
    const modes = modeRadios('global-mode', global.mode, locked);
    const allow = h('textarea', { name: 'allow', rows: 3, disabled: locked, placeholder: 'openai/gpt-4o-mini\nollama/*' }, global.allow.join('\n'));
    const form = h('form', { class: 'policy-form', 'aria-label': 'Global policy' }, modes.el, field('Allowlist (provider/model globs, one per line)', allow), locked ? h('p', { class: 'muted' }, global.source === 'config' ? 'Defined in the config file (policies.unsanctioned), which wins over the API.' : '') : button('Save global policy', { kind: 'primary', type: 'submit' }));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let saved = false;
      if (await attempt(errors, async () => (saved = await savePolicy('global', modes.read(), parseList(allow.value), global.mode)))) {
        if (saved) {
          toast('Global policy saved');
          reload();
        }
      }
    });
    renderOwnerPolicies(ownersBody, list.items.filter((p) => p.id !== 'global'), owners, ctx.canWrite, errors, reload);
    return form;
  }).then(() => {
    if (globalBody.querySelector('.alert, .notice') && !ownersBody.hasChildNodes()) fill(ownersBody, h('p', { class: 'muted' }, 'Unavailable: see the global policy above.'));
  });
}

/**
 * @param {HTMLElement} el
 * @param {import('../types.js').Policy[]} policies
 * @param {import('../types.js').Owner[]} owners
 * @param {boolean} canWrite
 * @param {Element} errors
 * @param {() => void} reload
 */
function renderOwnerPolicies(el, policies, owners, canWrite, errors, reload) {
  fill(
    el,
    table({
      label: 'Owner policies',
      rows: policies,
      empty: 'No owner policies: every consumer follows the global policy.',
      columns: [
        { label: 'Owner', cell: (p) => owners.find((o) => o.id === p.id)?.name ?? p.id },
        { label: 'Mode', cell: (p) => badge(p.mode) },
        { label: 'Allowlist', cell: (p) => (p.allow.length ? p.allow.map((a) => h('code', { class: 'chip' }, a)) : h('span', { class: 'muted' }, 'none')) },
        { label: 'Source', cell: (p) => badge(p.source) },
        ...(canWrite
          ? [
              {
                label: 'Actions',
                cell: (/** @type {import('../types.js').Policy} */ p) =>
                  p.source === 'config'
                    ? h('span', { class: 'muted' }, 'config file')
                    : h(
                        'div',
                        { class: 'row-actions' },
                        button('Edit', { onclick: async () => (await ownerPolicyDialog({ owners, initial: p })) && reload() }),
                        deleteButton('Delete', {
                          title: `Delete the ${p.id} policy?`,
                          message: 'Consumers of this owner follow the global policy again.',
                          path: `/api/v1/policies/${seg(p.id)}`,
                          errors,
                          reload,
                        }),
                      ),
              },
            ]
          : []),
      ],
    }),
  );
}
