/**
 * The Grafana dashboard (envoy-configs/kubernetes/dashboards/tokenwarden.json): every PromQL query
 * names only metrics a real server exports on /metrics (histogram series as _bucket/_sum/_count),
 * with labels those metrics have; it is well-formed Grafana JSON (ids, layout, datasource variable,
 * template variables); and kustomization.yaml turns it into the ConfigMap the Grafana sidecar loads.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DASHBOARD_FILE = 'envoy-configs/kubernetes/dashboards/tokenwarden.json';
const DASHBOARD_TEXT = fs.readFileSync(ROOT + DASHBOARD_FILE, 'utf8');

// ---- The dashboard's shape (the fields checked here) ------------------------------------------------

interface Datasource {
  type: string;
  uid: string;
}
interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: Datasource;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: Datasource;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
  datasource?: Datasource;
  includeAll?: boolean;
  multi?: boolean;
  allValue?: string;
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(DASHBOARD_TEXT) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== 'row');
const queries = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
const variables = dashboard.templating.list;
const variableQuery = (v: Variable): string => (typeof v.query === 'string' ? v.query : v.query.query);

// ---- A small PromQL reader: which metrics an expression selects, with which labels ----------------

type Token = { kind: 'ident' | 'number' | 'string' | 'var' | 'punct' | 'op'; text: string };

/** Tokens of a PromQL expression (Grafana's $variables kept as one token). */
function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|(\$\{?\w+\}?)|((?:\d+(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?(?:ms|[smhdwy])*)\b|([A-Za-z_:][\w:]*)|([(){}[\],])|(=~|!~|!=|==|<=|>=|[-+*/%^<>=])/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < expr.length) {
    re.lastIndex = at;
    m = re.exec(expr);
    if (!m) throw new Error(`cannot read PromQL at ${JSON.stringify(expr.slice(at, at + 20))} in ${expr}`);
    at = re.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: 'string', text: m[1] });
    else if (m[2] !== undefined) tokens.push({ kind: 'var', text: m[2] });
    else if (m[3] !== undefined) tokens.push({ kind: 'number', text: m[3] });
    else if (m[4] !== undefined) tokens.push({ kind: 'ident', text: m[4] });
    else if (m[5] !== undefined) tokens.push({ kind: 'punct', text: m[5] });
    else if (m[6] !== undefined) tokens.push({ kind: 'op', text: m[6] });
  }
  return tokens;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

interface Selector {
  /** The series name as written (a histogram's with its _bucket/_sum/_count suffix). */
  metric: string;
  /** Labels in the selector's matchers. */
  labels: string[];
}
interface Grouping {
  clause: string;
  labels: string[];
  /** The selectors of the expression the clause applies to (an aggregation's argument). */
  over: Selector[];
}
interface PromqlUses {
  selectors: Selector[];
  groupings: Grouping[];
  functions: string[];
  /** Grafana variables used ($provider, ${model}, $__rate_interval). */
  variables: string[];
}

/** The index just past the bracket group that opens at `open`. */
function closeOf(tokens: Token[], open: number): number {
  const pairs: Record<string, string> = { '(': ')', '{': '}', '[': ']' };
  const stack: string[] = [];
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!.text;
    if (tokens[i]!.kind !== 'punct') continue;
    if (pairs[t]) stack.push(pairs[t]);
    else if (t === stack.at(-1)) {
      stack.pop();
      if (stack.length === 0) return i + 1;
    } else if (t === ')' || t === '}' || t === ']') throw new Error(`unbalanced ${t}`);
  }
  throw new Error('unclosed bracket');
}

/** The index of the bracket that opens the group ending just before `end` (a `)`). */
function openOf(tokens: Token[], end: number): number {
  let depth = 0;
  for (let i = end - 1; i >= 0; i--) {
    const t = tokens[i]!;
    if (t.kind !== 'punct') continue;
    if (t.text === ')') depth++;
    else if (t.text === '(' && --depth === 0) return i;
  }
  throw new Error('unbalanced )');
}

function promqlUses(expr: string): PromqlUses {
  const tokens = tokenize(expr);
  const uses: PromqlUses = { selectors: [], groupings: [], functions: [], variables: [] };
  const selectorsAt: { at: number; selector: Selector }[] = [];
  const labelList = (open: number): { labels: string[]; end: number } => {
    const end = closeOf(tokens, open);
    const labels = tokens.slice(open + 1, end - 1).filter((t) => t.text !== ',');
    for (const l of labels) if (l.kind !== 'ident') throw new Error(`expected a label name, got ${l.text} in ${expr}`);
    return { labels: labels.map((l) => l.text), end };
  };
  const pendingGroupings: { clause: string; labels: string[]; at: number; end: number }[] = [];
  for (let i = 0; i < tokens.length; ) {
    const t = tokens[i]!;
    const next = tokens[i + 1];
    if (t.kind === 'var') {
      uses.variables.push(t.text.replace(/^\$\{?|\}$/g, ''));
      i++;
    } else if (t.kind === 'string') {
      for (const v of t.text.matchAll(/\$\{?(\w+)\}?/g)) uses.variables.push(v[1]!);
      i++;
    } else if (t.kind === 'punct' && t.text === '[') {
      // A range or subquery: durations and $__rate_interval.
      const end = closeOf(tokens, i);
      for (const v of tokens.slice(i, end).filter((x) => x.kind === 'var')) uses.variables.push(v.text.replace(/^\$\{?|\}$/g, ''));
      i = end;
    } else if (t.kind === 'punct' && t.text === '{') {
      throw new Error(`a selector without a metric name in ${expr}`);
    } else if (t.kind === 'ident' && GROUPING.has(t.text)) {
      if (next?.text !== '(') {
        // group_left and group_right may go without a label list.
        if (!t.text.startsWith('group_')) throw new Error(`${t.text} without a label list in ${expr}`);
        pendingGroupings.push({ clause: t.text, labels: [], at: i, end: i + 1 });
        i++;
        continue;
      }
      const { labels, end } = labelList(i + 1);
      pendingGroupings.push({ clause: t.text, labels, at: i, end });
      i = end;
    } else if (t.kind === 'ident' && KEYWORDS.has(t.text)) {
      i++;
    } else if (t.kind === 'ident' && (next?.text === '(' || (next?.kind === 'ident' && (next.text === 'by' || next.text === 'without')))) {
      // A function, or an aggregation written `sum by (...) (...)`.
      uses.functions.push(t.text);
      i++;
    } else if (t.kind === 'ident') {
      const selector: Selector = { metric: t.text, labels: [] };
      let end = i + 1;
      if (next?.text === '{') {
        end = closeOf(tokens, i + 1);
        const inside = tokens.slice(i + 2, end - 1);
        for (let j = 0; j < inside.length; ) {
          const [name, op, value] = [inside[j], inside[j + 1], inside[j + 2]];
          if (name?.kind !== 'ident' || op?.kind !== 'op' || value?.kind !== 'string') throw new Error(`bad matcher in ${expr}`);
          selector.labels.push(name.text);
          for (const v of value.text.matchAll(/\$\{?(\w+)\}?/g)) uses.variables.push(v[1]!);
          j += 3;
          if (inside[j]?.text === ',') j++;
        }
      }
      uses.selectors.push(selector);
      selectorsAt.push({ at: i, selector });
      i = end;
    } else {
      i++;
    }
  }
  for (const g of pendingGroupings) {
    // `sum by (l) (expr)` or `sum (expr) by (l)`; on/ignoring/group_* apply to both sides of a binary
    // operator: there, every selector of the expression is taken.
    let range: [number, number];
    if (g.clause === 'by' || g.clause === 'without') {
      range = tokens[g.end]?.text === '(' ? [g.end, closeOf(tokens, g.end)] : [openOf(tokens, g.at), g.at];
    } else range = [0, tokens.length];
    uses.groupings.push({ clause: g.clause, labels: g.labels, over: selectorsAt.filter((s) => s.at >= range[0] && s.at < range[1]).map((s) => s.selector) });
  }
  return uses;
}

/** `label_values(selector, label)`: the selector's uses and the label. */
function labelValuesQuery(q: string): { uses: PromqlUses; label: string } {
  const m = /^label_values\((.*),\s*(\w+)\)$/.exec(q.trim());
  if (!m) throw new Error(`not a label_values query: ${q}`);
  return { uses: promqlUses(m[1]!), label: m[2]! };
}

// ---- The server's metrics ---------------------------------------------------------------------------

const HISTOGRAM_SERIES = ['_bucket', '_sum', '_count'];
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

let srv: TestServer;
/** Metric name → type, from the `# TYPE` lines of /metrics. */
const exported = new Map<string, string>();

beforeAll(async () => {
  // consumer_labels on: the consumer panels use tokenwarden_consumer, which exists only then.
  srv = await startTestServer((c) => {
    c.admin.address = '127.0.0.1:0';
    c.metrics.consumer_labels = true;
  });
  const text = await (await fetch(`http://${srv.adminAddress}/metrics`)).text();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) exported.set(m[1]!, m[2]!);
});

afterAll(async () => {
  await srv?.stop();
});

/** The exported metric a series name belongs to, or null. */
function metricOf(series: string): { name: string; type: string; suffix: string } | null {
  const type = exported.get(series);
  if (type !== undefined) return type === 'histogram' || type === 'summary' ? null : { name: series, type, suffix: '' };
  for (const suffix of HISTOGRAM_SERIES) {
    if (!series.endsWith(suffix)) continue;
    const name = series.slice(0, -suffix.length);
    const t = exported.get(name);
    if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return { name, type: t, suffix };
  }
  return null;
}

/** The labels a series has (null: cannot tell, the metric is not in the server's registry). */
function labelsOf(series: string): string[] | null {
  const metric = metricOf(series);
  if (!metric) return null;
  const registered = srv.server.metrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] } | undefined;
  if (!registered || !Array.isArray(registered.labelNames)) return null;
  return [...registered.labelNames, ...(metric.suffix === '_bucket' ? ['le'] : []), ...TARGET_LABELS];
}

const allUses = [
  ...queries.map((q) => ({ where: `${q.panel} / ${q.refId}`, uses: promqlUses(q.expr), legend: q.legendFormat })),
  ...variables.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, uses: labelValuesQuery(variableQuery(v)).uses, legend: undefined })),
];

// ---- Tests ------------------------------------------------------------------------------------------

describe('PromQL reader', () => {
  it('finds selectors, suffixes, matchers and grouping labels, not functions, keywords or variables', () => {
    const u = promqlUses(
      'histogram_quantile(0.9, sum by (le, gen_ai_provider_name) (rate(x_seconds_bucket{a="1", b=~"$provider"}[$__rate_interval]))) / on(instance) group_left sum(y_total offset 5m) * 3600 > bool 1e3 or vector(0)',
    );
    expect(u.selectors).toEqual([
      { metric: 'x_seconds_bucket', labels: ['a', 'b'] },
      { metric: 'y_total', labels: [] },
    ]);
    expect(u.functions).toEqual(['histogram_quantile', 'sum', 'rate', 'sum', 'vector']);
    expect(u.groupings.map((g) => [g.clause, g.labels, g.over.map((s) => s.metric)])).toEqual([
      ['by', ['le', 'gen_ai_provider_name'], ['x_seconds_bucket']],
      ['on', ['instance'], ['x_seconds_bucket', 'y_total']],
      ['group_left', [], ['x_seconds_bucket', 'y_total']],
    ]);
    expect(u.variables).toEqual(['provider', '__rate_interval']);
    expect(promqlUses('sum(rate(z_total{q="a,b}"}[5m])) by (q)').groupings[0]).toMatchObject({ labels: ['q'], over: [{ metric: 'z_total' }] });
    expect(() => promqlUses('{__name__="x"}')).toThrow(/without a metric name/);
  });
});

describe('Grafana dashboard', () => {
  it('is a dashboard with a stable uid, unique panel ids and panels laid out without overlap', () => {
    expect(dashboard).toMatchObject({ uid: 'tokenwarden', title: 'tokenwarden' });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const taken = new Set<string>();
    for (const p of panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && h > 0 && x + w <= 24, `${p.title}: ${JSON.stringify(p.gridPos)}`).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(taken.has(`${i},${j}`), `${p.title} overlaps another panel`).toBe(false);
          taken.add(`${i},${j}`);
        }
      }
      expect(p.title.length, `panel ${p.id} has a title`).toBeGreaterThan(0);
    }
    expect(queryPanels.length).toBeGreaterThan(30);
    for (const p of queryPanels) {
      expect(p.description, `${p.title} says what it shows`).toBeTruthy();
      expect(p.targets?.length, `${p.title} has queries`).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, `${p.title}: refIds`).toBe(refIds.length);
      for (const t of p.targets!) expect(t.expr.trim(), `${p.title} / ${t.refId}`).not.toBe('');
    }
  });

  it('queries the Prometheus datasource chosen in its ${datasource} variable, and defines every variable it uses', () => {
    const ds = variables.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const viaVariable = { type: 'prometheus', uid: '${datasource}' };
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual(viaVariable);
      for (const t of p.targets!) expect(t.datasource ?? viaVariable, `${p.title} / ${t.refId}`).toEqual(viaVariable);
    }
    for (const v of variables.filter((x) => x.type === 'query')) {
      expect(v.datasource, v.name).toEqual(viaVariable);
      expect(v.definition ?? variableQuery(v), v.name).toBe(variableQuery(v));
      if (v.includeAll) expect(v.allValue, `${v.name}: All must match series without the label too`).toBe('.*');
    }
    expect(variables.map((v) => v.name)).toEqual(expect.arrayContaining(['datasource', 'provider', 'model']));
    // Grafana's own ($__rate_interval, $__range, ...) and the dashboard's.
    const defined = new Set(variables.map((v) => v.name));
    for (const { where, uses } of allUses) {
      for (const v of uses.variables) expect(v.startsWith('__') || defined.has(v), `${where}: $${v} is not a variable`).toBe(true);
    }
    // Every query panel follows the provider and model selection where its metric has those labels.
    const filtered = queries.filter((q) => q.expr.includes('gen_ai_provider_name=~"$provider"'));
    expect(filtered.length).toBeGreaterThan(20);
  });

  it('names only metrics the server exports on /metrics (histograms as _bucket, _sum, _count)', () => {
    expect(exported.get('tokenwarden_exchanges_total')).toBe('counter');
    const unknown = allUses.flatMap(({ where, uses }) => uses.selectors.filter((s) => metricOf(s.metric) === null).map((s) => `${where}: ${s.metric}`));
    expect(unknown).toEqual([]);
    // And the dashboard covers the exported per-exchange metrics.
    const used = new Set(allUses.flatMap(({ uses }) => uses.selectors.map((s) => metricOf(s.metric)?.name)));
    const perExchange = [...exported.keys()].filter((n) => !/^tokenwarden_(process|nodejs)_/.test(n));
    expect(perExchange.filter((n) => !used.has(n))).toEqual([]);
  });

  it('uses only labels those metrics have, in matchers, grouping clauses, legends and variables', () => {
    const problems: string[] = [];
    for (const { where, uses, legend } of allUses) {
      for (const s of uses.selectors) {
        const labels = labelsOf(s.metric);
        for (const l of s.labels) if (labels && !labels.includes(l)) problems.push(`${where}: ${s.metric} has no label ${l}`);
      }
      for (const g of uses.groupings.filter((x) => x.clause === 'by' || x.clause === 'without')) {
        expect(g.over.length, `${where}: ${g.clause} (${g.labels.join(', ')}) applies to a selector`).toBeGreaterThan(0);
        for (const s of g.over) {
          const labels = labelsOf(s.metric);
          for (const l of g.labels) if (labels && !labels.includes(l)) problems.push(`${where}: ${s.metric} has no label ${l} (${g.clause})`);
        }
      }
      // {{label}} in a legend: a label the query keeps (a `by` label).
      const kept = new Set(uses.groupings.filter((g) => g.clause === 'by').flatMap((g) => g.labels));
      for (const m of (legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) if (!kept.has(m[1]!)) problems.push(`${where}: legend {{${m[1]}}} is not kept by the query`);
    }
    for (const v of variables.filter((x) => x.type === 'query')) {
      const { uses, label } = labelValuesQuery(variableQuery(v));
      for (const s of uses.selectors) {
        const labels = labelsOf(s.metric);
        if (labels && !labels.includes(label)) problems.push(`variable ${v.name}: ${s.metric} has no label ${label}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('Grafana dashboard ConfigMap (kustomize)', () => {
  const kustomization = parse(fs.readFileSync(ROOT + 'envoy-configs/kubernetes/kustomization.yaml', 'utf8')) as {
    configMapGenerator?: { name: string; namespace?: string; files?: string[]; options?: { disableNameSuffixHash?: boolean; labels?: Record<string, string> } }[];
  };

  it('generates a ConfigMap from the dashboard file itself, labelled for the Grafana sidecar', () => {
    const generated = kustomization.configMapGenerator?.find((g) => g.name === 'tokenwarden-grafana-dashboard');
    expect(generated).toMatchObject({
      namespace: 'tokenwarden',
      files: ['dashboards/tokenwarden.json'],
      options: { disableNameSuffixHash: true, labels: { grafana_dashboard: '1' } },
    });
    // kustomize reads the file as it is: the ConfigMap's key tokenwarden.json is this JSON, byte for byte.
    expect(fs.readFileSync(ROOT + 'envoy-configs/kubernetes/' + generated!.files![0]!, 'utf8')).toBe(DASHBOARD_TEXT);
    // A ConfigMap holds at most 1 MiB.
    expect(Buffer.byteLength(DASHBOARD_TEXT)).toBeLessThan(1024 * 1024);
  });
});
