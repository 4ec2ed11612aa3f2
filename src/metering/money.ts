/** Money as integer micro-dollars (1 USD = 1,000,000 µUSD): exact to add up in counters. */

/**
 * USD (a float from price arithmetic) to micro-dollars, rounded once, half up.
 * The product is first cut to 15 significant digits so binary noise (2.4999999999999996 for an
 * exact 2.5) does not decide the rounding; prices have far fewer significant digits than that.
 */
export function usdToMicro(usd: number): number {
  if (!Number.isFinite(usd)) return 0;
  const micro = Number((usd * 1e6).toPrecision(15));
  return micro >= 0 ? Math.floor(micro + 0.5) : -Math.floor(-micro + 0.5);
}

/** Micro-dollars as a USD decimal string with 6 decimals, e.g. 1234567 -> "1.234567". */
export function formatUsd(microUsd: number): string {
  if (!Number.isFinite(microUsd)) return '0.000000';
  const micro = Math.round(microUsd);
  const sign = micro < 0 ? '-' : '';
  const digits = Math.abs(micro).toString().padStart(7, '0');
  return `${sign}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}
