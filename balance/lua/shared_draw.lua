-- shared_draw.lua: a group member draws units from the group's shared bucket: at most what the
-- pool has left and what the member's cap leaves, never less than min_units (then nothing).
-- Atomic in the group's slot, so two members drawing at once never overdraw the pool. The
-- units then go onto the member's account as a bucket (the second call, bucket.lua, op id
-- "share:<op_id>"): the draw is kept in the pending hash until the caller has granted it and
-- removed it, so a draw whose grant was lost is granted again from there (balance/shared.py
-- repair), and a retried draw replays its stored result.
-- KEYS[1] idempotency record {t:<tenant>:g:<group>}:op:<op_id>, KEYS[2] pool, KEYS[3] members
-- (see shared_fill.lua), KEYS[4] pending draws (hash op_id -> msgpack {member, units, kind,
-- unit, expires_at_s, priority})
-- ARGV[1] msgpack {op_id, digest, member, units, min_units, now_s, idem_ttl_s}
-- Returns {replayed, msgpack {units, kind, unit, expires_at_s, priority, pool_left,
-- member_left}}; units 0: nothing drawn (and nothing stored: a later retry may draw).
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT (no such group, not a member).
local req = mp_unpack(ARGV[1])
local op_id, digest, member = str(req[1], 'op_id'), str(req[2], 'digest'), str(req[3], 'member')
local units, least = int(req[4], 'units', 1), int(req[5], 'min_units', 0)
local now, ttl = num(req[6], 'now_s'), int(req[7], 'idem_ttl_s', 1)
local replay = idem_lookup(rcall('GET', KEYS[1]), digest)
if replay then return {1, replay} end
local raw = rcall('GET', KEYS[2])
if not raw then fail('UNKNOWN_ACCOUNT', 'no such group') end
local pool = mp_unpack(raw)
local drawn = rcall('HGET', KEYS[3], member)
if not drawn then fail('UNKNOWN_ACCOUNT', 'not a member of the group') end
drawn = tonumber(drawn)
local kind, unit, expires, priority = pool[2], pool[3], pool[6], pool[7]
local take = min(units, pool[4], pool[5] - drawn)
if (expires ~= 0 and now >= expires) or take < max(least, 1) then take = 0 end
local member_left = pool[5] - drawn - take
if take == 0 then
  return {0, mp_pack({0, kind, unit, expires, priority, pool[4], member_left})}
end
pool[4] = pool[4] - take
rcall('SET', KEYS[2], mp_pack(pool))
rcall('HSET', KEYS[3], member, drawn + take)
rcall('HSET', KEYS[4], op_id, mp_pack({member, take, kind, unit, expires, priority}))
local result = mp_pack({take, kind, unit, expires, priority, pool[4], member_left})
idem_store(KEYS[1], digest, result, ttl)
return {0, result}
