/**
 * The budget ledger contract: counters per budget limit and window, with leased reservations.
 * One implementation in memory, one on Redis (one Lua call per decision); both pass one contract
 * suite. The ledger knows nothing of selectors or prices: admission computes the items.
 *
 * Semantics per counter (one limit of one budget in one window):
 *   used     = settled amounts
 *   reserved = amounts of live leases (expired leases count for nothing and are cleaned up lazily)
 *   a reservation of `amount` fits when used + reserved + amount <= max
 */

/** One counter touched by a decision. */
export interface LedgerItem {
  /** Counter key, built by admission: budget id, limit index and window (start) in it. */
  counter: string;
  /** The budget the counter belongs to (for the would-block report). */
  budgetId: string;
  /** The limit (integer). */
  max: number;
  /** Amount to reserve (integer, >= 0). */
  amount: number;
  /** enforce: the whole decision is refused if this item does not fit. monitor: never refuses. */
  enforce: boolean;
  /**
   * Calendar windows: epoch ms when the counter's window ends (the counter expires a while after).
   * Rolling windows: the window length in ms; the ledger keeps sub-buckets and sums the last ones.
   */
  windowEndMs?: number;
  rollingMs?: number;
}

export interface ReserveRequest {
  /** Unique per HTTP request (x-request-id or generated); the key of the lease. */
  requestId: string;
  /** The lease lasts this long unless settled or released. */
  leaseMs: number;
  items: LedgerItem[];
  /** Who asked: an item that does not fit counts one would-block event for (budget, consumer, hour). */
  consumer: string;
  /** Decision time, epoch ms (the hour of the would-block event). */
  nowMs: number;
}

/** Would-block events per budget, consumer and UTC hour (monitor and enforce items that did not fit). */
export interface WouldBlockCount {
  budgetId: string;
  consumer: string;
  hourStart: number;
  count: number;
}

export interface ItemState {
  counter: string;
  used: number;
  reserved: number;
  max: number;
  /** Would this item alone have refused the request? (monitor items report it too.) */
  exceeded: boolean;
}

export interface ReserveResult {
  /** False when an enforce item did not fit: then NOTHING was reserved (all or nothing). */
  admitted: boolean;
  /** State of every item after the decision (used and reserved include this reservation when admitted). */
  items: ItemState[];
}

/** The window of a counter, as in its LedgerItem. */
export type CounterWindow = Pick<LedgerItem, 'windowEndMs' | 'rollingMs'>;

export interface SettleRequest {
  requestId: string;
  /** Actual amounts per counter (same counters as the reservation; missing = 0). */
  actual: Record<string, number>;
  /**
   * The window of each counter in `actual`. With it a settle creates a counter that does not exist
   * while its window lasts: a request admitted without a reservation (a store error under
   * `on_store_error: open`), or one whose counter a failed-over Redis lost, is still counted.
   */
  windows?: Record<string, CounterWindow>;
}

export interface BudgetLedger {
  /** Atomic over all items: check every enforce item, then reserve all or nothing. */
  reserve(req: ReserveRequest): Promise<ReserveResult>;
  /**
   * Replaces the request's reservation with its actual usage, exactly once per requestId (a
   * repeated settle, or a settle after the lease expired, changes nothing twice). Settling an
   * expired lease still adds the actual usage (it was spent), and so does a settle of a request
   * that holds no reservation, to counters whose window lasts (created when `windows` says how).
   */
  settle(req: SettleRequest): Promise<void>;
  /** Drops the reservation without usage (failed upstream call, cancelled before sending). */
  release(requestId: string): Promise<void>;
  /** Would-block counts in [fromMs, toMs), kept as long as the inventory's hourly buckets. */
  wouldBlock(fromMs: number, toMs: number): Promise<WouldBlockCount[]>;
  /** Current used/reserved of counters (for the admin API and response headers). */
  read(counters: { counter: string; max: number; rollingMs?: number }[]): Promise<ItemState[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
