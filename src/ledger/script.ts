/**
 * The budget ledger's Redis key layout, its Lua scripts and their argument encoding. The semantics
 * are MemoryLedger's (memory.ts), rule for rule.
 *
 * Every key starts with `{<prefix>}:budget:`: one hash tag for the whole ledger, so one script can
 * touch every counter of a decision atomically, on Redis Cluster too. It is the tag every key had
 * before the other data moved to tags of their own (redis-layout.ts): upgrades keep the counters.
 *
 *   cnt:<counter>   hash: reserved (sum of live leases), used (calendar counters), roll + sub (rolling
 *                   counters: window and sub-bucket length), b<start> (rolling: usage per sub-bucket).
 *                   Expires after its window (calendar) or when idle (rolling): no reset job.
 *   lz:<counter>    zset: request id -> lease expiry (epoch ms), so expired leases are found in one read
 *   la:<counter>    hash: request id -> leased amount; lz, la and cnt:reserved change together
 *   req:<id>        set: the counters the request holds leases on (lease + SETTLE_GRACE_MS)
 *   done:<id>       "1": the request was settled or released (SETTLE_GRACE_MS)
 *   wb:<hour>       hash: JSON [budget id, consumer] -> would-block events in that UTC hour
 *
 * Times in the scripts are the callers' epoch ms; TTLs are given relative to them.
 */
import type { ItemState, ReserveRequest, ReserveResult, SettleRequest } from '../governance/ledger.js';
import { counterExpiry, rollingBuckets, SETTLE_GRACE_MS, settledCounterExpiry, wouldBlockField } from './rules.js';
import { baseTag } from '../store/redis-layout.js';
import { HOUR_MS } from '../time.js';
import { loadLua } from '../store/lua.js';

export class LedgerKeys {
  readonly base: string;

  constructor(prefix: string) {
    this.base = `${baseTag(prefix)}:budget:`;
  }

  counter = (name: string): string => `${this.base}cnt:${name}`;
  request = (id: string): string => `${this.base}req:${id}`;
  wouldBlock = (hour: number): string => `${this.base}wb:${hour}`;
}

/** ARGV[1] key base, ARGV[2] now (epoch ms). Helpers shared by the scripts (lua/ledger-prelude.lua). */
const PRELUDE = loadLua('ledger-prelude');

/** Arguments per item in RESERVE_LUA (its ITEM_ARGS). */
export const ITEM_ARGS = 8;

/** lua/ledger-reserve.lua: one decision over every counter of a request. */
export const RESERVE_LUA = PRELUDE + loadLua('ledger-reserve');

/** Arguments per counter of a settlement (FINALISE_LUA's FINALISE_ARGS). */
export const FINALISE_ARGS = 5;

/** lua/ledger-finalise.lua: settlements and releases, many in one call. */
export const FINALISE_LUA = PRELUDE + loadLua('ledger-finalise');

/**
 * The same script for second sends and retries: its own text (so its own SHA) lets Redis's
 * MONITOR and commandstats tell them from first sends (bench/capacity.ts counts both).
 */
export const REFINALISE_LUA = `-- second sends and retries\n${FINALISE_LUA}`;

/** lua/ledger-read.lua: used and reserved per counter (dropping expired leases on the way). */
export const READ_LUA = PRELUDE + loadLua('ledger-read');

export function encodeReserve(keys: LedgerKeys, req: ReserveRequest, wouldBlockRetentionMs: number): { key: string; args: string[] } {
  const now = req.nowMs;
  const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
  const args = [
    keys.base,
    String(now),
    req.requestId,
    String(now + req.leaseMs),
    String(req.leaseMs + SETTLE_GRACE_MS),
    keys.wouldBlock(hour),
    String(hour + HOUR_MS + wouldBlockRetentionMs - now),
  ];
  for (const item of req.items) {
    args.push(
      item.counter,
      String(item.max),
      String(item.amount),
      item.enforce ? '1' : '0',
      String(counterExpiry(item, now, req.leaseMs) - now),
      String(item.rollingMs ?? 0),
      String(item.rollingMs === undefined ? 0 : rollingBuckets(item.rollingMs, now).subMs),
      wouldBlockField(item.budgetId, req.consumer),
    );
  }
  return { key: keys.request(req.requestId), args };
}

export function decodeReserve(req: ReserveRequest, reply: number[]): ReserveResult {
  const items: ItemState[] = req.items.map((item, i) => ({
    counter: item.counter,
    used: reply[1 + 3 * i]!,
    reserved: reply[2 + 3 * i]!,
    max: item.max,
    exceeded: reply[3 + 3 * i] === 1,
  }));
  return { admitted: reply[0] === 1, items };
}

/**
 * One request's part of a FINALISE_LUA call: settle (a SettleRequest) or release (null) at `now`:
 * id, now, marker TTL, counter count, then each counter's arguments.
 */
export function encodeFinalise(requestId: string, settle: SettleRequest | null, now: number): string[] {
  const counters = Object.entries(settle?.actual ?? {});
  const part = [requestId, String(now), String(SETTLE_GRACE_MS), String(counters.length)];
  for (const [counter, n] of counters) {
    const window = settle?.windows?.[counter];
    const expiry = window ? settledCounterExpiry(window, now) : null;
    const rollingMs = window?.rollingMs;
    part.push(
      counter,
      String(n),
      String(expiry === null ? 0 : expiry - now),
      String(rollingMs ?? 0),
      String(rollingMs === undefined ? 0 : rollingBuckets(rollingMs, now).subMs),
    );
  }
  return part;
}
