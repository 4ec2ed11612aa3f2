-- One shard's part of a batch. KEYS[1] the shard's batch id key. ARGV: the shard's key base, batch id
-- TTL (s), deltas (JSON), oldest retained hour. Every other key shares KEYS[1]'s hash tag (same slot).
-- Returns 0 when this shard already applied the batch.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return 0 end
local p = ARGV[1]

local function incr(key, counters)
  for field, n in pairs(counters) do redis.call('HINCRBY', key, field, n) end
end

-- Widens the hash's first/last span. Returns its lastSeen and whether the delta is the latest.
local function span(key, first, last)
  local cur = redis.call('HMGET', key, 'first', 'last')
  if not cur[1] or first < tonumber(cur[1]) then redis.call('HSET', key, 'first', first) end
  if cur[2] and last < tonumber(cur[2]) then return tonumber(cur[2]), false end
  redis.call('HSET', key, 'last', last)
  return last, true
end

-- A rollup hash, its place in the index and the record in its member zset.
local function rollup(key, index, name, members, d, recLast)
  incr(key, d.n)
  redis.call('ZADD', index, (span(key, d.first, d.last)), name)
  redis.call('ZADD', members, recLast, d.rec)
end

for _, d in ipairs(cjson.decode(ARGV[3])) do
  local rec = p .. 'rec:' .. d.rec
  incr(rec, d.n)
  local last, latest = span(rec, d.first, d.last)
  if latest then redis.call('HSET', rec, 'api', d.api, 'resolver', d.res) end
  if #d.rm > 0 then redis.call('SADD', p .. 'rm:' .. d.rec, unpack(d.rm)) end
  redis.call('ZADD', p .. 'idx:rec', last, d.rec)
  rollup(p .. 'con:' .. d.con, p .. 'idx:con', d.con, p .. 'conrecs:' .. d.con, d, last)
  rollup(p .. 'mod:' .. d.mod, p .. 'idx:mod', d.mod, p .. 'modrecs:' .. d.mod, d, last)
  if d.hour then
    local members = p .. 'hourrecs:' .. d.hour
    for _, b in ipairs(d.b) do
      local bucket = p .. 'hour:' .. d.hour .. ':' .. b.id
      incr(bucket, b.n)
      redis.call('PEXPIRE', bucket, d.ttl)
      redis.call('SADD', members, b.id)
    end
    redis.call('PEXPIRE', members, d.ttl)
    redis.call('ZADD', p .. 'hours', d.hour, d.hour)
  end
end
redis.call('ZREMRANGEBYSCORE', p .. 'hours', '-inf', '(' .. ARGV[4])
return 1
