-- expiry_warn.lua: the expiry-warning sweep for one shard: one 'bundle_expiring' event per
-- bucket that expires within the tenant's warning window, written in the same call that takes
-- the bucket off the shard's expiry index, so it fires once whichever process sweeps and
-- however late (a second sweeper finds the member gone; one back from downtime warns late,
-- once, or not at all when the bucket expired meanwhile: 'bundle_expired' tells that).
-- KEYS[1] shard bucket-expiry index {t:<tenant>:<vshard>}:bx (zset "<subscriber>|<bucket id>"
--         -> expires_at_s, written by bucket.lua and grant.lua), KEYS[2] shard record stream
--         (the event stream is derived from it)
-- ARGV[1] msgpack {key_prefix "{t:<tenant>:<vshard>}", tenant, now_s, window_s (0: the tenant
--                  warns of nothing: only members already expired are dropped), limit}
-- Account keys are key_prefix .. ':a:' .. subscriber (same hash slot as KEYS[1]).
-- Returns msgpack {warned, dropped}.
local req = mp_unpack(ARGV[1])
local prefix, tenant = str(req[1], 'key_prefix'), str(req[2], 'tenant')
local now = num(req[3], 'now_s')
local window = int(req[4], 'window_s', 0)
local limit = int(req[5], 'limit', 1)
local due = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now + window, 'WITHSCORES', 'LIMIT', 0, limit)
local ev_key = event_stream(KEYS[2])
local warned, dropped = 0, 0
for k = 1, #due, 2 do
  local member, expires = due[k], tonumber(due[k + 1])
  local cut = sfind(member, '|', 1, true)
  local raw = cut and rcall('GET', prefix .. ':a:' .. ssub(member, 1, cut - 1))
  local acct = raw and mp_unpack(raw)
  local b = acct and acct[A_STATE] ~= DELETED and find_bucket(acct, ssub(member, cut + 1))
  if window > 0 and b and b[B_EXPIRES] == expires and now < expires
      and b[B_REMAINING] + b[B_HELD] > 0 then
    emit_event(ev_key, 'bundle_expiring', tenant, ssub(member, 1, cut - 1), '', now,
      {bucket = b[B_ID], kind = b[B_KIND], unit = b[B_UNIT], remaining = b[B_REMAINING] + b[B_HELD],
       expires_at = expires})
    warned = warned + 1
  else
    dropped = dropped + 1
  end
  rcall('ZREM', KEYS[1], member)
end
return mp_pack({warned, dropped})
