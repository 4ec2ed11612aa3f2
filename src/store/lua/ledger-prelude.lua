-- ARGV[1] key base, ARGV[2] now (epoch ms). Helpers shared by the scripts.
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
