// @ts-check
/**
 * Dashboard: what needs attention (unresolved consumers, unreviewed and unsanctioned models,
 * would-block), spend and tokens over time, top consumers/models/owners, budget utilisation.
 * Every panel loads on its own, so one missing API leaves the others working.
 */
import { get, query } from '../api.js';
import { barList, lineChart, meter } from '../charts.js';
import { fill, h } from '../dom.js';
import { compact, int, percent, usd } from '../format.js';
import { badge, card, errorBox, loading as loadingText, pageHeader, panel, select, table } from '../ui.js';
import { bucketStarts, perBucket, rangeOf, RANGES, showbackRows, top, usageRows, utilisation } from '../usage.js';
import { limitMetric } from './budget-form.js';

/** @type {import('../types.js').Page} */
export async function renderDashboard(root, ctx) {
  const range = rangeOf(ctx.params.get('range'));
  const to = Date.now();
  const from = to - range.ms;
  const span = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const picker = select('range', RANGES.map((r) => [r.id, r.label]), range.id);
  picker.setAttribute('aria-label', 'Time range');
  picker.addEventListener('change', () => ctx.go('dashboard', { range: picker.value }));

  /** @param {string} label @param {string} name */
  const kpi = (label, name) => h('div', { class: 'kpi', 'data-kpi': name }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, '…'));
  const kpis = {
    spend: kpi('Spend', 'spend'),
    requests: kpi('Requests', 'requests'),
    unresolved: kpi('Unresolved consumers', 'unresolved'),
    unreviewed: kpi('Unreviewed resources', 'unreviewed'),
    unsanctioned: kpi('Unsanctioned requests', 'unsanctioned'),
    wouldBlock: kpi('Would-block', 'would-block'),
  };
  /** @param {HTMLElement} el @param {string} value @param {boolean} [alert] */
  const setKpi = (el, value, alert = false) => {
    fill(/** @type {Element} */ (el.querySelector('.kpi-value')), value);
    el.classList.toggle('kpi-alert', alert);
  };

  const spendChart = h('div', {}, loadingText());
  const tokenChart = h('div', {}, loadingText());
  const topConsumers = h('div');
  const topModels = h('div');
  const topOwners = h('div');
  const unresolved = h('div');
  const unreviewed = h('div');
  const unsanctioned = h('div');
  const budgets = h('div');
  const wouldBlock = h('div');

  fill(
    root,
    pageHeader('Dashboard', [picker], `Usage ${range.label.toLowerCase()}; catalog state now.`),
    h('div', { class: 'kpis' }, Object.values(kpis)),
    h('div', { class: 'grid-2' }, card('Spend over time', spendChart), card('Tokens over time', tokenChart)),
    h('div', { class: 'grid-3' }, card('Top consumers', topConsumers), card('Top models', topModels), card('Top owners', topOwners)),
    h('div', { class: 'grid-3' }, card('Unresolved consumers', unresolved), card('Unreviewed resources', unreviewed), card('Unsanctioned traffic', unsanctioned)),
    h('div', { class: 'grid-2' }, card('Budget utilisation', budgets), card('Would-block', wouldBlock)),
  );

  const usageByModel = get(`/api/v1/usage${query({ group_by: 'model', bucket: range.bucket, ...span })}`);
  const resources = get('/api/v1/resources');

  await Promise.all([
    (async () => {
      try {
        /** @type {import('../types.js').Usage} */
        const usage = await usageByModel;
        const xs = bucketStarts(from, to, range.bucket);
        const b = perBucket(usage, xs);
        setKpi(kpis.spend, usd(b.cost.reduce((a, c) => a + c, 0)));
        setKpi(kpis.requests, int(b.requests));
        fill(spendChart, lineChart({ label: `Spend per ${range.bucket}`, xs, bucket: range.bucket, series: [{ name: 'Spend', values: b.cost }], format: usd, area: true }));
        fill(tokenChart, lineChart({ label: `Tokens per ${range.bucket}`, xs, bucket: range.bucket, series: [{ name: 'Input', values: b.input }, { name: 'Output', values: b.output }], format: compact }));
      } catch (err) {
        fill(spendChart, errorBox(err));
        fill(tokenChart, errorBox(err));
      }
    })(),
    panel(topModels, async () => ranking(top(usageRows(await usageByModel), 8), 'Top models by spend')),
    panel(topConsumers, async () => ranking(top(usageRows(await get(`/api/v1/usage${query({ group_by: 'consumer', bucket: range.bucket, ...span })}`)), 8), 'Top consumers by spend')),
    panel(topOwners, async () => {
      const sb = await get(`/api/v1/showback${query({ group_by: 'owner', bucket: 'day', ...span })}`);
      return ranking(top(showbackRows(sb.items), 8), 'Top owners by spend');
    }),
    panel(unresolved, async () => {
      /** @type {import('../types.js').Paged<import('../types.js').ConsumerRow>} */
      const page = await get('/api/v1/consumers?status=discovered&limit=8');
      setKpi(kpis.unresolved, int(page.total), page.total > 0);
      return [
        table({ label: 'Unresolved consumers', rows: page.items, empty: 'Every consumer is resolved.', columns: [{ label: 'Consumer', cell: (c) => h('code', {}, c.consumer) }, { label: 'Requests', num: true, cell: (c) => int(c.requests) }, { label: 'Cost', num: true, cell: (c) => usd(c.cost_micro_usd) }] }),
        page.total > 0 ? h('a', { class: 'more', href: '#/consumers?status=discovered' }, `Resolve ${page.total} consumer${page.total === 1 ? '' : 's'} →`) : null,
      ];
    }),
    panel(unreviewed, async () => {
      /** @type {import('../types.js').ResourceRow[]} */
      const items = (await resources).items;
      const open = items.filter((r) => !r.reviewed);
      setKpi(kpis.unreviewed, int(open.length), open.length > 0);
      return [
        table({ label: 'Unreviewed resources', rows: open.slice(0, 8), empty: 'Every resource is reviewed.', columns: [{ label: 'Resource', cell: (r) => h('code', {}, r.id) }, { label: 'Requests', num: true, cell: (r) => int(r.requests) }, { label: 'Consumers', num: true, cell: (r) => int(r.consumers) }] }),
        open.length > 0 ? h('a', { class: 'more', href: '#/resources?filter=unreviewed' }, `Review ${open.length} resource${open.length === 1 ? '' : 's'} →`) : null,
      ];
    }),
    panel(unsanctioned, async () => {
      /** @type {import('../types.js').ResourceRow[]} */
      const items = (await resources).items;
      const used = items.filter((r) => !r.sanctioned && r.requests > 0).sort((a, b) => b.requests - a.requests);
      const total = used.reduce((a, r) => a + r.requests, 0);
      setKpi(kpis.unsanctioned, int(total), total > 0);
      return table({ label: 'Unsanctioned traffic', rows: used.slice(0, 8), empty: 'No traffic to unsanctioned models.', columns: [{ label: 'Model', cell: (r) => h('code', {}, r.id) }, { label: 'Requests', num: true, cell: (r) => int(r.requests) }, { label: 'Cost', num: true, cell: (r) => usd(r.costMicroUsd) }] });
    }),
    panel(budgets, async () => {
      /** @type {{ items: import('../types.js').BudgetView[] }} */
      const page = await get('/api/v1/budgets?limit=1000');
      const rows = page.items.map((b) => ({ b, ...utilisation(b) })).sort((x, y) => y.ratio - x.ratio).slice(0, 8);
      return [
        table({
          label: 'Budget utilisation',
          rows,
          empty: 'No budgets yet.',
          columns: [
            { label: 'Budget', cell: (r) => h('a', { href: '#/budgets' }, r.b.id) },
            { label: 'Mode', cell: (r) => badge(r.b.mode) },
            { label: 'Limit', cell: (r) => (r.limit ? `${limitMetric(r.limit)} / ${r.limit.per}` : '–') },
            { label: 'Used', cls: 'meter-cell', cell: (r) => (r.limit ? [meter(r.limit.used + r.limit.reserved, r.limit.max, `${r.b.id} used`), ' ', percent(r.limit.used + r.limit.reserved, r.limit.max)] : '–') },
          ],
        }),
      ];
    }),
    panel(wouldBlock, async () => {
      const report = await get(`/api/v1/would-block${query(range.ms > 31 * 24 * 3_600_000 ? {} : span)}`);
      setKpi(kpis.wouldBlock, int(report.total), report.total > 0);
      return [
        table({ label: 'Would-block by budget', rows: report.budgets.slice(0, 8), empty: 'No monitor-mode budget would have blocked a request.', columns: [{ label: 'Budget', cell: (/** @type {any} */ b) => b.budget }, { label: 'Mode', cell: (/** @type {any} */ b) => (b.mode ? badge(b.mode) : badge('deleted', 'off')) }, { label: 'Requests', num: true, cell: (/** @type {any} */ b) => int(b.count) }, { label: 'Consumers', num: true, cell: (/** @type {any} */ b) => int(b.consumers) }] }),
        h('a', { class: 'more', href: '#/would-block' }, 'Full report →'),
      ];
    }),
  ]).catch((err) => root.append(errorBox(err)));
  for (const el of Object.values(kpis)) if (el.querySelector('.kpi-value')?.textContent === '…') setKpi(el, '–');
}

/** @param {{ group: string, cost: number, requests: number }[]} rows @param {string} label */
function ranking(rows, label) {
  if (rows.length === 0) return h('p', { class: 'empty' }, 'No traffic in this range.');
  // Unpriced traffic (self-hosted models) still ranks, by requests, when nothing has a cost.
  const byCost = rows.some((r) => r.cost > 0);
  return barList({ label, items: rows.map((r) => ({ name: r.group, value: byCost ? r.cost : r.requests, display: byCost ? usd(r.cost) : `${int(r.requests)} req` })) });
}
