-- KEYS[1] any key of the ledger (the slot). ARGV: base, now, counters. Returns used, reserved per counter.
local out = {}
for i = 3, #ARGV do
  local used, reserved = load(ARGV[i])
  out[#out + 1] = used
  out[#out + 1] = reserved
end
return out
