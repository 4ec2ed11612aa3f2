-- KEYS[1] the new version key, KEYS[2..] the new hashes. ARGV[1] the old version, ARGV[2] the old
-- hashes' contents (JSON array of objects id -> definition JSON). Copies only while the new version
-- key is absent; returns 1 when it copied.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i, fields in ipairs(cjson.decode(ARGV[2])) do
  for id, json in pairs(fields) do redis.call('HSET', KEYS[i + 1], id, json) end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
