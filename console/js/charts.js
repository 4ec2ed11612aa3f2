// @ts-check
/** Inline SVG charts (no library): a time-series line/area chart, horizontal bars, a sparkline. */
import { bucketLabel } from './format.js';
import { h, svg } from './dom.js';

/**
 * The smallest 1, 2, 2.5 or 5 × 10^n at or above `v`, so axis ticks are round numbers.
 * @param {number} v
 */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * @typedef {{ name: string, values: number[] }} Series
 * @param {{ label: string, xs: number[], bucket: 'hour' | 'day' | 'month', series: Series[], format: (v: number) => string, area?: boolean }} opts
 */
export function lineChart(opts) {
  const W = 640;
  const H = 220;
  const pad = { l: 64, r: 24, t: 10, b: 26 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const n = opts.xs.length;
  const top = niceMax(Math.max(0, ...opts.series.flatMap((s) => s.values)));
  const x = (/** @type {number} */ i) => pad.l + (n <= 1 ? iw / 2 : (i / (n - 1)) * iw);
  const y = (/** @type {number} */ v) => pad.t + ih - (v / top) * ih;

  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    svg('g', { class: 'tick' }, svg('line', { x1: pad.l, x2: W - pad.r, y1: y(top * f), y2: y(top * f) }), svg('text', { x: pad.l - 6, y: y(top * f) + 4, 'text-anchor': 'end' }, opts.format(top * f))),
  );
  const step = Math.max(1, Math.ceil(n / 8));
  const xLabels = opts.xs.flatMap((t, i) => (i % step === 0 ? [svg('text', { class: 'xlabel', x: x(i), y: H - 8, 'text-anchor': 'middle' }, bucketLabel(t, opts.bucket))] : []));
  const lines = opts.series.map((s, si) => {
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const path = `M${pts.join('L')}`;
    return svg(
      'g',
      { class: `series series-${si}` },
      opts.area && n > 1 ? svg('path', { class: 'area', d: `${path}L${x(n - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z` }) : null,
      svg('path', { class: 'line', d: path }),
      s.values.map((v, i) => svg('circle', { cx: x(i), cy: y(v), r: 2.5 }, svg('title', {}, `${s.name} ${bucketLabel(opts.xs[i] ?? 0, opts.bucket)}: ${opts.format(v)}`))),
    );
  });
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.label }, svg('title', {}, opts.label), grid, xLabels, lines);
  const legend = opts.series.length > 1 ? h('ul', { class: 'legend' }, opts.series.map((s, si) => h('li', { class: `series-${si}` }, h('span', { class: 'swatch' }), s.name))) : null;
  return h('figure', { class: 'chart-figure' }, chart, legend);
}

/**
 * Horizontal bars, largest first as given.
 * @param {{ label: string, items: { name: string, value: number, display: string }[] }} opts
 */
export function barList(opts) {
  const max = Math.max(0, ...opts.items.map((i) => i.value));
  return h(
    'ul',
    { class: 'bars', 'aria-label': opts.label },
    opts.items.map((item) => {
      const bar = h('span', { class: 'bar-fill' });
      // CSSOM width: allowed by the console's CSP, which forbids inline style attributes.
      bar.style.width = `${max > 0 ? Math.max(1, (item.value / max) * 100) : 0}%`;
      return h('li', {}, h('span', { class: 'bar-label', title: item.name }, item.name), h('span', { class: 'bar-track' }, bar), h('span', { class: 'bar-value' }, item.display));
    }),
  );
}

/**
 * Used against a maximum, coloured from 80% and when full.
 * @param {number} used @param {number} max @param {string} label
 */
export function meter(used, max, label) {
  const ratio = max > 0 ? Math.min(1, used / max) : 0;
  const fillEl = h('span', { class: `meter-fill ${ratio >= 1 ? 'full' : ratio >= 0.8 ? 'high' : ''}` });
  fillEl.style.width = `${ratio * 100}%`;
  return h('span', { class: 'meter', role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': used }, fillEl);
}

/**
 * A small bar sparkline of counts.
 * @param {number[]} values @param {string} label
 */
export function sparkline(values, label) {
  const W = 120;
  const H = 22;
  const max = Math.max(1, ...values);
  const w = W / Math.max(values.length, 1);
  return svg(
    'svg',
    { class: 'spark', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label },
    values.map((v, i) => svg('rect', { x: i * w + 0.5, y: H - (v / max) * H, width: Math.max(1, w - 1), height: (v / max) * H })),
  );
}
