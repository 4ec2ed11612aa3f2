// @ts-check
/** Exports: inventory and usage CSV, showback CSV, FOCUS CSV for FinOps tools, and the catalog as YAML. */
import { download, query } from '../api.js';
import { fill, h } from '../dom.js';
import { attempt, button, card, field, pageHeader, select, toast } from '../ui.js';
import { DAY_MS } from '../usage.js';

/** A date input's value for `ms` (UTC). @param {number} ms */
const day = (ms) => new Date(ms).toISOString().slice(0, 10);

/**
 * @param {string} title
 * @param {string} description
 * @param {HTMLElement[]} controls
 * @param {() => { path: string, name: string }} target
 */
function exportCard(title, description, controls, target) {
  const status = h('div', { class: 'export-status', 'aria-live': 'polite' });
  const go = button('Download', {
    kind: 'primary',
    onclick: async () => {
      const t = target();
      let name = '';
      if (await attempt(status, async () => (name = await download(t.path, t.name)))) {
        fill(status, h('p', { class: 'muted' }, `Downloaded ${name}`));
        toast(`Downloaded ${name}`);
      }
    },
  });
  go.setAttribute('aria-label', `Download ${title}`);
  return card(title, [h('p', { class: 'muted' }, description), h('div', { class: 'form-grid' }, controls), h('div', { class: 'card-foot' }, go), status]);
}

/** @param {string} label @param {string} value */
function dateInput(label, value) {
  return field(label, h('input', { type: 'date', name: label.toLowerCase(), value }));
}

/** @param {HTMLElement} wrap */
const valueOf = (wrap) => /** @type {HTMLInputElement | HTMLSelectElement} */ (wrap.querySelector('input, select')).value;

/** @type {import('../types.js').Page} */
export function renderExports(root) {
  const now = Date.now();
  const monthAgo = day(now - 30 * DAY_MS);
  const tomorrow = day(now + DAY_MS);
  /** Inclusive start day and exclusive end day as RFC 3339. @param {HTMLElement} f @param {HTMLElement} t */
  const range = (f, t) => ({ from: `${valueOf(f)}T00:00:00Z`, to: `${valueOf(t)}T00:00:00Z` });

  const sbGroup = field('Group by', select('group_by', [['owner', 'Owner'], ['consumer', 'Consumer'], ['provider', 'Provider'], ['model', 'Model'], ['api', 'API']], 'owner'));
  const sbBucket = field('Period', select('bucket', [['day', 'Day'], ['month', 'Month'], ['hour', 'Hour']], 'day'));
  const sbFrom = dateInput('From', monthAgo);
  const sbTo = dateInput('To', tomorrow);

  const focusBucket = field('Charge period', select('bucket', [['day', 'Day'], ['month', 'Month'], ['hour', 'Hour']], 'day'));
  const focusFrom = dateInput('From', monthAgo);
  const focusTo = dateInput('To', tomorrow);

  const usageGroup = field('Group by', select('group_by', [['consumer', 'Consumer'], ['provider', 'Provider'], ['model', 'Model']], 'consumer'));
  const usageBucket = field('Bucket', select('bucket', [['hour', 'Hour'], ['day', 'Day']], 'day'));
  const usageFrom = dateInput('From', monthAgo);
  const usageTo = dateInput('To', tomorrow);

  fill(
    root,
    pageHeader('Exports', [], 'Files for showback, chargeback and GitOps. Dates are UTC; "To" is exclusive.'),
    h(
      'div',
      { class: 'grid-2' },
      exportCard('FOCUS CSV', 'FinOps Open Cost and Usage Specification: one row per charge period, consumer, model and token class, with list and effective cost. Estimated usage is flagged.', [focusBucket, focusFrom, focusTo], () => ({
        path: `/api/v1/export/focus.csv${query({ bucket: valueOf(focusBucket), ...range(focusFrom, focusTo) })}`,
        name: 'tokenwarden-focus.csv',
      })),
      exportCard('Showback CSV', 'Usage and cost per owner, consumer, provider, model or API and period; totals reconcile with the inventory.', [sbGroup, sbBucket, sbFrom, sbTo], () => ({
        path: `/api/v1/showback.csv${query({ group_by: valueOf(sbGroup), bucket: valueOf(sbBucket), ...range(sbFrom, sbTo) })}`,
        name: 'tokenwarden-showback.csv',
      })),
      exportCard('Inventory CSV', 'Every consumer × provider × model record with first/last seen, requests, errors, tokens and cost.', [], () => ({ path: '/api/v1/inventory.csv', name: 'tokenwarden-inventory.csv' })),
      exportCard('Usage CSV', 'Time series of requests, tokens and cost (up to 366 days).', [usageGroup, usageBucket, usageFrom, usageTo], () => ({
        path: `/api/v1/usage.csv${query({ group_by: valueOf(usageGroup), bucket: valueOf(usageBucket), ...range(usageFrom, usageTo) })}`,
        name: 'tokenwarden-usage.csv',
      })),
      exportCard('Catalog YAML', 'Owners, consumers, consumer rules, resources, policies, budgets and templates in force, in the config-file format: paste into the config to keep them in Git.', [], () => ({
        path: '/api/v1/catalog/export',
        name: 'tokenwarden-catalog.yaml',
      })),
    ),
  );
}
