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
