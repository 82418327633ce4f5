-- offline_many.lua: several offline xDR records of one shard in one call, each exactly as
-- offline.lua commits it (its own op id and idempotency record, never refused), in order, so
-- a subscriber's records apply in file order. One round trip and one read and write of each
-- account per call instead of per record.
-- KEYS[1] the shard's record stream; KEYS[2i], KEYS[2i + 1] record i's idempotency record and
--   account (every key under the one shard's hash tag)
-- ARGV[2i - 1], ARGV[2i] record i's request and context, as offline.lua's ARGV[1], ARGV[2]
-- Returns one entry per record: {0 or 1 (replayed), result} as offline.lua returns it, or
-- {2, error} when that record was refused (OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT:
-- raised before it wrote anything); the other records apply all the same. Any other error
-- stops the call there and is raised after the records before it are written.
local n = #ARGV / 2
if n < 1 or n > 64 or #ARGV % 2 ~= 0 or #KEYS ~= 2 * n + 1 then
  fail('BADARG', 'offline_many: 1 to 64 records, two keys and two arguments each')
end
local accounts, out, fault = {}, {}, nil
for i = 1, n do
  local ok, res = pcall(offline_apply, KEYS[2 * i], KEYS[2 * i + 1], KEYS[1], ARGV[2 * i - 1],
    ARGV[2 * i], accounts)
  if ok then
    out[i] = res
  else
    -- Redis hands pcall the error's text; a refusal starts with OCS_ (that record only).
    local text = type(res) == 'table' and res.err or tostring(res)
    if ssub(text, 1, 4) ~= 'OCS_' then
      fault = text
      break
    end
    out[i] = {2, text}
  end
end
-- The accounts are written even after a fault: the records before it are committed (their
-- records and idempotency entries are written), as they would be one call each.
for k = 1, #accounts do
  local key = accounts[k]
  rcall('SET', key, mp_pack(accounts[key]))
end
if fault then error(fault) end
return out
