// @ts-check
/** Shared widgets: dialogs, inline errors, switches, tables, pagers, page headers. */
import { api, ApiError } from './api.js';
import { fill, h } from './dom.js';

/** @typedef {import('./dom.js').Child} Child */

/**
 * An inline error with the API's message (and the field it names), or a plain notice when the
 * server has no such endpoint.
 * @param {unknown} err
 */
export function errorBox(err) {
  if (err instanceof ApiError && err.missingEndpoint) {
    return h('div', { class: 'notice', role: 'status' }, `Not available on this server: ${err.message}. Upgrade tokenwarden to use this page.`);
  }
  const message = err instanceof Error ? err.message : String(err);
  const field = err instanceof ApiError && err.parameter ? ` (field: ${err.parameter})` : '';
  return h('div', { class: 'alert', role: 'alert' }, `Error: ${message}${field}`);
}

export function loading() {
  return h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…');
}

/**
 * Runs `load` and shows its result in `el`, or the error in its place.
 * @param {Element} el
 * @param {() => Promise<Child | Child[]>} load
 */
export async function panel(el, load) {
  fill(el, loading());
  try {
    fill(el, await load());
  } catch (err) {
    fill(el, errorBox(err));
  }
}

/**
 * @param {string} title
 * @param {Child[]} [actions]
 * @param {string} [subtitle]
 */
export function pageHeader(title, actions = [], subtitle) {
  return h('header', { class: 'page-header' }, h('div', {}, h('h1', {}, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null), h('div', { class: 'actions' }, actions));
}

/**
 * @param {string} title
 * @param {Child | Child[]} body
 * @param {{ cls?: string, actions?: Child[] }} [opts]
 */
export function card(title, body, opts = {}) {
  const id = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h(
    'section',
    { class: `card ${opts.cls ?? ''}`, 'aria-labelledby': id },
    h('div', { class: 'card-head' }, h('h2', { id }, title), h('div', { class: 'actions' }, opts.actions ?? [])),
    h('div', { class: 'card-body' }, body),
  );
}

/** @param {string} text @param {string} [kind] */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/**
 * @param {string} label
 * @param {{ kind?: 'primary' | 'danger' | 'ghost', onclick?: (e: Event) => void, type?: string, title?: string, disabled?: boolean }} [opts]
 */
export function button(label, opts = {}) {
  return h('button', { type: opts.type ?? 'button', class: `btn ${opts.kind ? `btn-${opts.kind}` : ''}`, onclick: opts.onclick, title: opts.title, disabled: opts.disabled }, label);
}

/**
 * An on/off switch. `onChange(next)` runs first; the switch moves only when it resolves to
 * something other than false (a cancelled confirmation) and does not throw.
 * @param {{ checked: boolean, label: string, onText?: string, offText?: string, disabled?: boolean, onChange?: (next: boolean) => Promise<boolean | void> }} opts
 */
export function toggle(opts) {
  let checked = opts.checked;
  const text = h('span', { class: 'switch-text' });
  const btn = h('button', { type: 'button', role: 'switch', class: 'switch', 'aria-label': opts.label, disabled: opts.disabled || !opts.onChange }, h('span', { class: 'switch-track' }, h('span', { class: 'switch-thumb' })), text);
  const show = () => {
    btn.setAttribute('aria-checked', String(checked));
    fill(text, checked ? opts.onText ?? 'On' : opts.offText ?? 'Off');
  };
  show();
  btn.addEventListener('click', async () => {
    if (!opts.onChange) return;
    btn.disabled = true;
    try {
      if ((await opts.onChange(!checked)) !== false) checked = !checked;
    } finally {
      btn.disabled = false;
      show();
    }
  });
  return btn;
}

/**
 * @template T
 * @typedef {{ label: string, cell: (row: T) => Child | Child[], num?: boolean, cls?: string }} Column
 */

/**
 * @template T
 * @param {{ columns: Column<T>[], rows: T[], empty: string, label: string }} opts
 */
export function table(opts) {
  if (opts.rows.length === 0) return h('p', { class: 'empty' }, opts.empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'data', 'aria-label': opts.label },
      h('thead', {}, h('tr', {}, opts.columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : c.cls }, c.label)))),
      h(
        'tbody',
        {},
        opts.rows.map((row) => h('tr', {}, opts.columns.map((c) => h('td', { class: c.num ? 'num' : c.cls }, c.cell(row))))),
      ),
    ),
  );
}

/**
 * Previous / next over an offset-limit page.
 * @param {{ offset: number, limit: number, total: number, onPage: (offset: number) => void }} p
 */
export function pager(p) {
  const last = Math.min(p.offset + p.limit, p.total);
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    h('span', { class: 'muted' }, p.total === 0 ? 'No rows' : `${p.offset + 1}–${last} of ${p.total}`),
    button('‹ Previous', { disabled: p.offset === 0, onclick: () => p.onPage(Math.max(0, p.offset - p.limit)) }),
    button('Next ›', { disabled: last >= p.total, onclick: () => p.onPage(p.offset + p.limit) }),
  );
}

/**
 * A labelled form field.
 * @param {string} label
 * @param {HTMLElement} control
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

/**
 * @param {string} name
 * @param {Array<[string, string]>} options value, label
 * @param {string} [value]
 */
export function select(name, options, value) {
  return h('select', { name }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

/**
 * Opens a modal dialog; resolves when it closes.
 * @param {{ title: string, body: Child | Child[], submitLabel: string, danger?: boolean, onSubmit: () => Promise<void | boolean> | void | boolean, wide?: boolean }} opts
 *   onSubmit resolving to false keeps the dialog open (e.g. a declined confirmation)
 * @returns {Promise<boolean>} true when submitted successfully, false when cancelled
 */
export function dialog(opts) {
  return new Promise((resolve) => {
    const error = h('div', { class: 'dialog-error' });
    const submit = button(opts.submitLabel, { kind: opts.danger ? 'danger' : 'primary', type: 'submit' });
    const titleId = `dlg-${Math.random().toString(36).slice(2, 9)}`;
    const form = h('form', { method: 'dialog', novalidate: true }, h('h2', { id: titleId }, opts.title), h('div', { class: 'dialog-body' }, opts.body), error, h('div', { class: 'dialog-actions' }, button('Cancel', { kind: 'ghost', onclick: () => close(false) }), submit));
    const dlg = h('dialog', { class: opts.wide ? 'wide' : '', 'aria-labelledby': titleId }, form);
    let done = false;
    /** @param {boolean} ok */
    const close = (ok) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(ok);
    };
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      close(false);
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      submit.disabled = true;
      fill(error);
      try {
        if ((await opts.onSubmit()) !== false) close(true);
      } catch (err) {
        fill(error, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/**
 * Asks before a destructive or blocking change.
 * @param {{ title: string, message: string, confirmLabel: string }} opts
 */
export function confirmAction(opts) {
  return dialog({ title: opts.title, body: h('p', {}, opts.message), submitLabel: opts.confirmLabel, danger: true, onSubmit: () => {} });
}

/** A short-lived message at the bottom of the screen. @param {string} message */
export function toast(message) {
  const el = h('div', { class: 'toast', role: 'status' }, message);
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 3000);
}

/**
 * Runs a write and reports its failure inline next to `where` (rather than a dialog).
 * @param {Element} where
 * @param {() => Promise<unknown>} write
 * @returns {Promise<boolean>}
 */
export async function attempt(where, write) {
  fill(where);
  try {
    await write();
    return true;
  } catch (err) {
    fill(where, errorBox(err));
    return false;
  }
}

/**
 * A button that deletes something through the API after a confirmation; a failure shows inline in
 * `errors`, a success runs `reload`.
 * @param {string} label
 * @param {{ title: string, message: string, confirmLabel?: string, path: string, errors: Element, reload: () => void, kind?: 'danger' | 'ghost', tooltip?: string }} opts
 */
export function deleteButton(label, opts) {
  return button(label, {
    kind: opts.kind ?? 'danger',
    title: opts.tooltip,
    onclick: async () => {
      const ok = await confirmAction({ title: opts.title, message: opts.message, confirmLabel: opts.confirmLabel ?? label });
      if (ok && (await attempt(opts.errors, () => api('DELETE', opts.path)))) opts.reload();
    },
  });
}
