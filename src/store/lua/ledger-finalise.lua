-- Settlements and releases, many in one call. KEYS[1] any key of the ledger (the slot). ARGV:
-- base, then per request: id, its time, marker TTL, counter count, the counters' arguments.
-- Returns finalise's result per request (0: already finalised).
local FINALISE_ARGS = 5

-- finalise(id, markerTtl, first, n): settles (n counters, their arguments from ARGV[first]) or
-- releases (n = 0) request `id` at `now`, once. Per counter: name, actual amount, TTL of the counter
-- if this settle creates it (0: never), rolling ms (0 = calendar), sub-bucket ms. Returns 0 when the
-- request was already finalised.
local function finalise(id, markerTtl, first, n)
  if not redis.call('SET', p .. 'done:' .. id, '1', 'NX', 'PX', markerTtl) then return 0 end
  local record = p .. 'req:' .. id
  local actual, names = {}, {}
  for i = first, first + (n - 1) * FINALISE_ARGS, FINALISE_ARGS do
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

local out = {}
local i = 2
while i <= #ARGV do
  now = tonumber(ARGV[i + 1])
  local n = tonumber(ARGV[i + 3])
  out[#out + 1] = finalise(ARGV[i], ARGV[i + 2], i + 4, n)
  i = i + 4 + n * FINALISE_ARGS
end
return out
