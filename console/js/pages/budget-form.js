// @ts-check
/**
 * The budget and template editor (one dialog for both), and the conversions between the API's
 * views and request bodies. Bodies are spelled as in the YAML config, like the API expects.
 */
import { dialog, field, select, button, confirmAction } from '../ui.js';
import { fill, h } from '../dom.js';
import { int, labelText, parseLabels, parseList } from '../format.js';

/** @type {Array<[string, string]>} */
export const METRICS = [
  ['requests', 'Requests'],
  ['input_tokens', 'Input tokens'],
  ['output_tokens', 'Output tokens'],
  ['total_tokens', 'Total tokens'],
  ['cost_usd', 'Cost (USD)'],
];
/** @type {Array<[string, string]>} */
const PERIODS = [
  ['minute', 'minute'],
  ['hour', 'hour'],
  ['day', 'day'],
  ['week', 'week'],
  ['month', 'month'],
  ['rolling', 'rolling seconds'],
];
const STATE_FIELDS = ['unit', 'max', 'used', 'reserved', 'remaining', 'usd', 'exhausted', 'window_start', 'window_end'];

/**
 * The metric a limit entry counts and its amount.
 * @param {import('../types.js').LimitDef} l
 * @returns {[string, number]}
 */
export function metricOf(l) {
  for (const [key] of METRICS) {
    const v = /** @type {Record<string, unknown>} */ (l)[key];
    if (typeof v === 'number') return [key, v];
  }
  return ['requests', 0];
}

/** "1,000 output tokens", "$50.00". @param {import('../types.js').LimitDef} l */
export function limitMetric(l) {
  const [metric, amount] = metricOf(l);
  if (metric === 'cost_usd') return `$${amount.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;
  const unit = metric.replace('_', ' ');
  return `${int(amount)} ${amount === 1 ? unit.replace(/s$/, '') : unit}`;
}

/** @param {import('../types.js').LimitDef} l */
export function windowText(l) {
  if (l.per === 'rolling') return `rolling ${l.seconds}s`;
  return l.timezone && l.timezone !== 'UTC' ? `per ${l.per} (${l.timezone})` : `per ${l.per}`;
}

/**
 * A budget (GET view) or template back to a request body: read-only fields dropped.
 * @param {import('../types.js').BudgetView | import('../types.js').TemplateView} v
 */
export function toBody(v) {
  /** @type {Record<string, unknown>} */
  const body = { ...v };
  delete body.source;
  delete body.template;
  body.limits = v.limits.map((l) => {
    /** @type {Record<string, unknown>} */
    const entry = { ...l };
    for (const k of STATE_FIELDS) delete entry[k];
    return entry;
  });
  return body;
}

/** @param {import('../types.js').Select} s */
export function selectText(s) {
  const parts = [];
  if (s.consumers) parts.push(`consumers: ${s.consumers.join(', ')}`);
  if (s.providers) parts.push(`providers: ${s.providers.join(', ')}`);
  if (s.models) parts.push(`models: ${s.models.join(', ')}`);
  if (s.apis) parts.push(`apis: ${s.apis.join(', ')}`);
  if (s.labels) parts.push(`labels: ${labelText(s.labels)}`);
  return parts.length === 0 ? 'all traffic' : parts.join('; ');
}

/** @param {import('../types.js').LimitDef} [initial] */
function limitRow(initial) {
  const [metric, amount] = initial ? metricOf(initial) : ['requests', NaN];
  const metricSel = select('metric', METRICS, metric);
  metricSel.setAttribute('aria-label', 'Limit metric');
  const amountIn = h('input', { type: 'number', name: 'amount', min: '0', step: 'any', 'aria-label': 'Limit amount', required: true, value: Number.isNaN(amount) ? '' : amount });
  const perSel = select('per', PERIODS, initial?.per ?? 'day');
  perSel.setAttribute('aria-label', 'Limit window');
  const tz = h('input', { type: 'text', name: 'timezone', 'aria-label': 'Time zone', placeholder: 'UTC', value: initial?.timezone && initial.timezone !== 'UTC' ? initial.timezone : '' });
  const seconds = h('input', { type: 'number', name: 'seconds', min: '1', 'aria-label': 'Rolling window seconds', placeholder: 'seconds', value: initial?.seconds ?? '' });
  const row = h('div', { class: 'limit-row' }, metricSel, amountIn, perSel, tz, seconds);
  const sync = () => {
    seconds.hidden = perSel.value !== 'rolling';
    tz.hidden = perSel.value === 'rolling';
  };
  perSel.addEventListener('change', sync);
  sync();
  row.append(button('Remove', { kind: 'ghost', title: 'Remove this limit', onclick: () => row.remove() }));
  /** @returns {Record<string, unknown>} */
  const read = () => {
    const n = Number(amountIn.value);
    if (amountIn.value.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error('limits: each limit needs an amount of 0 or more');
    /** @type {Record<string, unknown>} */
    const entry = { [metricSel.value]: n, per: perSel.value };
    if (perSel.value === 'rolling') entry.seconds = Number(seconds.value);
    else if (tz.value.trim() !== '') entry.timezone = tz.value.trim();
    if (initial?.week_start && perSel.value === 'week') entry.week_start = initial.week_start;
    return entry;
  };
  return Object.assign(row, { read });
}

/**
 * Create or edit a budget or template. `save` gets the body; a change to enforce is confirmed.
 * @param {{ kind: 'budget' | 'template', initial?: import('../types.js').BudgetView | import('../types.js').TemplateView, save: (body: Record<string, unknown>) => Promise<void> }} opts
 */
export function editDefinition(opts) {
  const init = opts.initial;
  const idIn = h('input', { type: 'text', name: 'id', required: true, value: init?.id ?? '', disabled: init !== undefined, autocomplete: 'off' });
  const description = h('input', { type: 'text', name: 'description', value: init?.description ?? '' });
  const mode = select('mode', [['monitor', 'monitor (record, report would-block)'], ['enforce', 'enforce (reject with 429)']], init?.mode ?? 'monitor');
  const groupBy = h('input', { type: 'text', name: 'group_by', value: init && 'group_by' in init ? init.group_by : 'consumer' });
  const s = init?.select ?? {};
  const consumers = h('input', { type: 'text', name: 'consumers', value: (s.consumers ?? []).join(', '), placeholder: 'checkout-*, spiffe://prod/ns/payments/*' });
  const providers = h('input', { type: 'text', name: 'providers', value: (s.providers ?? []).join(', '), placeholder: 'openai, anthropic' });
  const models = h('input', { type: 'text', name: 'models', value: (s.models ?? []).join(', '), placeholder: 'gpt-4o*' });
  const apis = h('input', { type: 'text', name: 'apis', value: (s.apis ?? []).join(', '), placeholder: 'chat_completions' });
  const labels = h('input', { type: 'text', name: 'labels', value: labelText(s.labels), placeholder: 'team=payments, env=prod' });
  const limits = h('div', { class: 'limits' });
  const rows = () => /** @type {Array<ReturnType<typeof limitRow>>} */ ([...limits.children]);
  for (const l of init?.limits ?? [undefined]) limits.append(limitRow(l));
  const addLimit = button('Add limit', { onclick: () => limits.append(limitRow()) });

  const body = [
    h('div', { class: 'form-grid' }, field('Id', idIn), field('Description', description), field('Mode', mode), opts.kind === 'template' ? field('Group by', groupBy, 'consumer, provider, model or label:<name>') : null),
    h('fieldset', {}, h('legend', {}, 'Applies to (empty = every request; globs with *)'), h('div', { class: 'form-grid' }, field('Consumers', consumers), field('Providers', providers), field('Models', models), field('APIs', apis), field('Labels', labels))),
    h('fieldset', {}, h('legend', {}, 'Limits (every one must admit a request)'), limits, addLimit),
  ];
  const title = `${init ? 'Edit' : 'New'} ${opts.kind === 'budget' ? 'budget' : 'budget template'}${init ? ` ${init.id}` : ''}`;
  return dialog({
    title,
    body,
    wide: true,
    submitLabel: init ? 'Save' : 'Create',
    async onSubmit() {
      /** @type {Record<string, unknown>} */
      const out = { ...(init ? toBody(init) : {}), id: init?.id ?? idIn.value.trim(), mode: mode.value };
      if (description.value.trim() !== '') out.description = description.value.trim();
      else delete out.description;
      if (opts.kind === 'template') out.group_by = groupBy.value.trim();
      /** @type {Record<string, unknown>} */
      const sel = {};
      for (const [key, input] of /** @type {const} */ ([['consumers', consumers], ['providers', providers], ['models', models], ['apis', apis]])) {
        const list = parseList(input.value);
        if (list.length > 0) sel[key] = list;
      }
      const lbl = parseLabels(labels.value);
      if (Object.keys(lbl).length > 0) sel.labels = lbl;
      out.select = sel;
      out.limits = rows().map((r) => r.read());
      if (out.mode === 'enforce' && init?.mode !== 'enforce') {
        const ok = await confirmAction({ title: 'Enforce this budget?', message: `Requests over the limits of ${String(out.id)} will be rejected with 429 before they reach the provider.`, confirmLabel: 'Enforce' });
        if (!ok) return false;
      }
      await opts.save(out);
    },
  });
}

/** @param {HTMLElement} el @param {import('../types.js').LimitState} l */
export function limitState(el, l) {
  const used = l.unit === 'micro_usd' && l.usd ? `$${l.usd.used} used, $${l.usd.remaining} left` : `${int(l.used)} used, ${int(l.remaining)} left`;
  fill(el, used, l.reserved > 0 ? ` (${l.unit === 'micro_usd' && l.usd ? `$${l.usd.reserved}` : int(l.reserved)} in flight)` : '');
  return el;
}
