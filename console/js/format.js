// @ts-check
/** Number, money and time formatting for display (pure). */

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const compactFmt = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** @param {number} n */
export function int(n) {
  return integer.format(n);
}

/** 1234567 -> "1.2M"; below 10 000 the exact figure. @param {number} n */
export function compact(n) {
  return Math.abs(n) < 10_000 ? integer.format(n) : compactFmt.format(n);
}

/**
 * Micro-dollars as USD: cents from $1, four significant decimals below (LLM calls cost fractions
 * of a cent, and "$0.00" would hide them).
 * @param {number} micro
 */
export function usd(micro) {
  const dollars = micro / 1e6;
  if (micro === 0) return '$0';
  if (Math.abs(dollars) >= 1) return `$${dollars.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  return `$${dollars.toLocaleString('en-US', { maximumSignificantDigits: 4 })}`;
}

/** @param {string | number} t ISO time or epoch ms */
export function dateTime(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').slice(0, 16) + 'Z';
}

/** @param {number} ms @param {'hour' | 'day' | 'month'} bucket */
export function bucketLabel(ms, bucket) {
  const iso = new Date(ms).toISOString();
  if (bucket === 'hour') return `${iso.slice(11, 13)}:00`;
  if (bucket === 'day') return iso.slice(5, 10);
  return iso.slice(0, 7);
}

/** @param {number} part @param {number} whole */
export function percent(part, whole) {
  if (whole <= 0) return '–';
  const p = (part / whole) * 100;
  return `${p < 10 && p > 0 ? p.toFixed(1) : Math.round(p)}%`;
}

/** Labels object as `k=v, k=v`. @param {Record<string, string> | undefined} labels */
export function labelText(labels) {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/**
 * `k=v` per line or comma: the labels typed in a form. Throws naming the bad entry.
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function parseLabels(text) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const part of text.split(/[\n,]/)) {
    const entry = part.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new Error(`labels: "${entry}" is not key=value`);
    out[entry.slice(0, eq).trim()] = entry.slice(eq + 1).trim();
  }
  return out;
}

/** Comma- or newline-separated list, blanks dropped. @param {string} text */
export function parseList(text) {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
