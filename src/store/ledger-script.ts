/**
 * The budget ledger's Redis key layout, its Lua scripts and their argument encoding. The semantics
 * are MemoryLedger's (ledger-memory.ts), rule for rule.
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
import { counterExpiry, rollingBuckets, SETTLE_GRACE_MS, settledCounterExpiry, wouldBlockField } from './ledger-memory.js';
import { baseTag } from './redis-layout.js';
import { HOUR_MS } from './types.js';

export class LedgerKeys {
  readonly base: string;

  constructor(prefix: string) {
    this.base = `${baseTag(prefix)}:budget:`;
  }

  counter = (name: string): string => `${this.base}cnt:${name}`;
  request = (id: string): string => `${this.base}req:${id}`;
  wouldBlock = (hour: number): string => `${this.base}wb:${hour}`;
}

/** ARGV[1] key base, ARGV[2] now (epoch ms). Helpers shared by the scripts. */
const PRELUDE = `
local p = ARGV[1]
local now = tonumber(ARGV[2])

local function num(v) return tonumber(v) or 0 end
local function floor(t, sub) return t - (t % sub) end

-- Sets the key's TTL to ms unless it already lives longer.
local function extend(key, ms)
  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end

-- Drops the counter's expired leases (expiry <= now) from its reserved total.
local function cleanup(c)
  local lz = p .. 'lz:' .. c
  local expired = redis.call('ZRANGEBYSCORE', lz, '-inf', now)
  if #expired == 0 then return end
  local la = p .. 'la:' .. c
  local freed = 0
  for _, id in ipairs(expired) do
    freed = freed + num(redis.call('HGET', la, id))
    redis.call('HDEL', la, id)
  end
  redis.call('ZREMRANGEBYSCORE', lz, '-inf', now)
  local ck = p .. 'cnt:' .. c
  if redis.call('EXISTS', ck) == 1 then redis.call('HINCRBY', ck, 'reserved', -freed) end
end

-- used and reserved of a counter now; rolling sub-buckets that no longer count are dropped.
local function load(c)
  cleanup(c)
  local ck = p .. 'cnt:' .. c
  local h = redis.call('HGETALL', ck)
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  local used = num(f.used)
  local sub = tonumber(f.sub)
  if sub then
    local oldest = floor(now - tonumber(f.roll), sub)
    used = 0
    for k, v in pairs(f) do
      if string.sub(k, 1, 1) == 'b' then
        if tonumber(string.sub(k, 2)) >= oldest then used = used + tonumber(v) else redis.call('HDEL', ck, k) end
      end
    end
  end
  return used, num(f.reserved)
end
`;

/** Arguments per item in RESERVE_LUA. */
const ITEM_ARGS = 8;

/**
 * KEYS[1] the request's lease record. ARGV: base, now, request id, lease expiry, record TTL,
 * would-block hash, its TTL, then per item: counter, max, amount, enforce (1/0), counter TTL,
 * rolling ms (0 = calendar), sub-bucket ms, would-block field.
 * Returns admitted (1/0), then used, reserved, exceeded (1/0) per item.
 */
export const RESERVE_LUA = `${PRELUDE}
local id = ARGV[3]
-- A retried reserve of a request that holds its leases reserves nothing twice.
local replay = redis.call('EXISTS', KEYS[1]) == 1
local items = {}
local refused = false
for a = 8, #ARGV, ${ITEM_ARGS} do
  local it = { c = ARGV[a], amount = tonumber(ARGV[a + 2]), ttl = ARGV[a + 4], roll = ARGV[a + 5], sub = ARGV[a + 6] }
  if replay then it.amount = 0 end
  it.used, it.reserved = load(it.c)
  it.exceeded = it.used + it.reserved + it.amount > tonumber(ARGV[a + 1])
  if it.exceeded and not replay then
    redis.call('HINCRBY', ARGV[6], ARGV[a + 7], 1)
    extend(ARGV[6], ARGV[7])
    if ARGV[a + 3] == '1' then refused = true end
  end
  items[#items + 1] = it
end
if not refused and not replay then
  for _, it in ipairs(items) do
    local ck, lz, la = p .. 'cnt:' .. it.c, p .. 'lz:' .. it.c, p .. 'la:' .. it.c
    redis.call('ZADD', lz, ARGV[4], id)
    redis.call('HSET', la, id, it.amount)
    redis.call('HINCRBY', ck, 'reserved', it.amount)
    if it.roll ~= '0' then redis.call('HSET', ck, 'roll', it.roll, 'sub', it.sub) end
    extend(ck, it.ttl)
    extend(lz, it.ttl)
    extend(la, it.ttl)
    redis.call('SADD', KEYS[1], it.c)
    it.reserved = it.reserved + it.amount
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local out = { refused and 0 or 1 }
for _, it in ipairs(items) do
  out[#out + 1] = it.used
  out[#out + 1] = it.reserved
  out[#out + 1] = it.exceeded and 1 or 0
end
return out
`;

/** Arguments per counter of a settlement. */
const FINALISE_ARGS = 5;

/**
 * finalise(id, markerTtl, first, n): settles (n counters, their arguments from ARGV[first]) or
 * releases (n = 0) request `id` at `now`, once. Per counter: name, actual amount, TTL of the counter
 * if this settle creates it (0: never), rolling ms (0 = calendar), sub-bucket ms. Returns 0 when the
 * request was already finalised.
 */
const FINALISE_FN = `
local function finalise(id, markerTtl, first, n)
  if not redis.call('SET', p .. 'done:' .. id, '1', 'NX', 'PX', markerTtl) then return 0 end
  local record = p .. 'req:' .. id
  local actual, names = {}, {}
  for i = first, first + (n - 1) * ${FINALISE_ARGS}, ${FINALISE_ARGS} do
    actual[ARGV[i]] = { n = tonumber(ARGV[i + 1]), ttl = tonumber(ARGV[i + 2]), roll = ARGV[i + 3], sub = ARGV[i + 4] }
    names[#names + 1] = ARGV[i]
  end
  for _, c in ipairs(redis.call('SMEMBERS', record)) do
    if not actual[c] then names[#names + 1] = c end
  end
  redis.call('DEL', record)
  for _, c in ipairs(names) do
    local ck = p .. 'cnt:' .. c
    local a = actual[c]
    local amount = a and a.n or 0
    -- Usage of a request that reserved nothing here (admitted on a store error, or its counter lost
    -- in a failover) creates the counter while its window lasts; an expired window gets nothing.
    local exists = redis.call('EXISTS', ck) == 1
    if not exists and amount > 0 and a.ttl > 0 then
      if a.roll ~= '0' then redis.call('HSET', ck, 'roll', a.roll, 'sub', a.sub) else redis.call('HSET', ck, 'used', 0) end
      redis.call('PEXPIRE', ck, a.ttl)
      exists = true
    end
    if exists then
      cleanup(c)
      local la = p .. 'la:' .. c
      local leased = redis.call('HGET', la, id)
      if leased then
        redis.call('HDEL', la, id)
        redis.call('ZREM', p .. 'lz:' .. c, id)
        redis.call('HINCRBY', ck, 'reserved', -tonumber(leased))
      end
      if amount > 0 then
        local sub = tonumber(redis.call('HGET', ck, 'sub'))
        if sub then
          redis.call('HINCRBY', ck, 'b' .. string.format('%.0f', floor(now, sub)), amount)
          extend(ck, tonumber(redis.call('HGET', ck, 'roll')) + sub)
        else
          redis.call('HINCRBY', ck, 'used', amount)
        end
      end
    end
  end
  return 1
end
`;

const FINALISE_MANY = `${PRELUDE}${FINALISE_FN}
local out = {}
local i = 2
while i <= #ARGV do
  now = tonumber(ARGV[i + 1])
  local n = tonumber(ARGV[i + 3])
  out[#out + 1] = finalise(ARGV[i], ARGV[i + 2], i + 4, n)
  i = i + 4 + n * ${FINALISE_ARGS}
end
return out
`;

/**
 * Settlements and releases, many in one call. KEYS[1] any key of the ledger (the slot). ARGV:
 * base, then per request: id, its time, marker TTL, counter count, the counters' arguments.
 * Returns finalise's result per request (0: already finalised).
 */
export const FINALISE_LUA = FINALISE_MANY;

/**
 * The same script for second sends and retries: its own text (so its own SHA) lets Redis's
 * MONITOR and commandstats tell them from first sends (bench/capacity.ts counts both).
 */
export const REFINALISE_LUA = `-- second sends and retries\n${FINALISE_MANY}`;

/** KEYS[1] any key of the ledger (the slot). ARGV: base, now, counters. Returns used, reserved per counter. */
export const READ_LUA = `${PRELUDE}
local out = {}
for i = 3, #ARGV do
  local used, reserved = load(ARGV[i])
  out[#out + 1] = used
  out[#out + 1] = reserved
end
return out
`;

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
