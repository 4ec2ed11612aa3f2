// @ts-check
/** The would-block report: requests budgets would have rejected (monitor mode), by budget and consumer. */
import { get, query } from '../api.js';
import { sparkline } from '../charts.js';
import { fill, h } from '../dom.js';
import { dateTime, int } from '../format.js';
import { badge, field, pageHeader, panel, select, table } from '../ui.js';
import { HOUR_MS } from '../usage.js';

/** @type {Array<[string, string]>} */
const RANGES = [
  ['24', 'Last 24 hours'],
  ['168', 'Last 7 days'],
  ['744', 'Last 31 days'],
];

/** @typedef {{ budget: string, mode: string | null, count: number, consumers: number }} BudgetCount */
/** @typedef {{ budget: string, consumer: string, count: number, hours: { hour_start: string, count: number }[] }} PairCount */

/** @type {import('../types.js').Page} */
export async function renderWouldBlock(root, ctx) {
  const hours = Number(ctx.params.get('hours') ?? 24) || 24;
  const budget = ctx.params.get('budget') ?? '';
  const range = select('hours', RANGES, String(hours));
  range.addEventListener('change', () => ctx.go('would-block', { hours: range.value, budget }));
  const body = h('div');
  fill(root, pageHeader('Would-block report', [field('Range', range)], 'Requests that a budget in monitor mode would have rejected had it enforced. Enforce a budget only when this is what you want.'), body);
  const to = Date.now();
  const from = to - hours * HOUR_MS;
  await panel(body, async () => {
    /** @type {{ from: string, to: string, total: number, budgets: BudgetCount[], items: PairCount[] }} */
    const r = await get(`/api/v1/would-block${query({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), budget })}`);
    /** @type {number[]} */
    const hourStarts = [];
    for (let t = Date.parse(r.from); t < Date.parse(r.to); t += HOUR_MS) hourStarts.push(t);
    /** @param {PairCount} p */
    const series = (p) => {
      const byHour = new Map(p.hours.map((x) => [Date.parse(x.hour_start), x.count]));
      return hourStarts.map((t) => byHour.get(t) ?? 0);
    };
    return [
      h('p', { class: 'summary' }, h('strong', { 'data-testid': 'would-block-total' }, int(r.total)), ` would-block requests from ${dateTime(r.from)} to ${dateTime(r.to)}`, budget ? ` for budget ${budget} (` : '', budget ? h('a', { href: `#/would-block?hours=${hours}` }, 'all budgets') : null, budget ? ')' : ''),
      h('h2', { class: 'section-title' }, 'By budget'),
      table({
        label: 'Would-block by budget',
        rows: r.budgets,
        empty: 'No budget would have blocked a request in this range.',
        columns: [
          { label: 'Budget', cell: (b) => h('a', { href: `#/would-block?hours=${hours}&budget=${encodeURIComponent(b.budget)}` }, b.budget) },
          { label: 'Mode now', cell: (b) => (b.mode ? badge(b.mode) : badge('deleted', 'off')) },
          { label: 'Requests', num: true, cell: (b) => int(b.count) },
          { label: 'Consumers', num: true, cell: (b) => int(b.consumers) },
        ],
      }),
      h('h2', { class: 'section-title' }, 'By budget and consumer'),
      table({
        label: 'Would-block by budget and consumer',
        rows: r.items,
        empty: 'Nothing to show.',
        columns: [
          { label: 'Budget', cell: (p) => p.budget },
          { label: 'Consumer', cell: (p) => h('code', { class: 'id' }, p.consumer) },
          { label: 'Requests', num: true, cell: (p) => int(p.count) },
          { label: 'Per hour', cell: (p) => sparkline(series(p), `${p.budget} ${p.consumer} per hour`) },
          { label: 'Last hour seen', cell: (p) => dateTime(p.hours[p.hours.length - 1]?.hour_start ?? r.to) },
        ],
      }),
    ];
  });
}
