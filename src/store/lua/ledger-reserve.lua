-- KEYS[1] the request's lease record. ARGV: base, now, request id, lease expiry, record TTL,
-- would-block hash, its TTL, then per item: counter, max, amount, enforce (1/0), counter TTL,
-- rolling ms (0 = calendar), sub-bucket ms, would-block field.
-- Returns admitted (1/0), then used, reserved, exceeded (1/0) per item.
local ITEM_ARGS = 8
local id = ARGV[3]
-- A retried reserve of a request that holds its leases reserves nothing twice.
local replay = redis.call('EXISTS', KEYS[1]) == 1
local items = {}
local refused = false
for a = 8, #ARGV, ITEM_ARGS do
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
