-- shared_fill.lua: (re)fill a group's shared bucket for one period: the pool's amount, the
-- per-member cap, the members (each with nothing drawn yet) and when the pool expires.
-- Idempotent on the period: filling the period the pool is in already changes nothing (a
-- retried fill must not reset what members drew).
-- KEYS[1] pool {t:<tenant>:g:<group>}:pool (msgpack {period, kind, unit, remaining, cap,
--         expires_at_s, priority}), KEYS[2] members {t:<tenant>:g:<group>}:m (hash member ->
--         units drawn this period)
-- ARGV[1] msgpack {period, kind, unit, amount, cap, expires_at_s (0 never), priority, members}
-- Returns 0 filled, 1 that period was filled already.
-- Errors: OCS_BADARG.
local req = mp_unpack(ARGV[1])
local period = str(req[1], 'period')
local kind, unit = str(req[2], 'kind'), str(req[3], 'unit')
local amount, cap = int(req[4], 'amount', 0), int(req[5], 'cap', 1)
local expires = num(req[6], 'expires_at_s')
local priority = int(req[7], 'priority')
local members = req[8]
if period == '' or kind == '' then fail('BADARG', 'period and kind must not be empty') end
if unit ~= 'bytes' and unit ~= 'seconds' and unit ~= 'events' then
  fail('BADARG', 'unit must be bytes, seconds or events')
end
if type(members) ~= 'table' or #members == 0 or #members > 1000 then
  fail('BADARG', 'members: 1 to 1000 subscribers')
end
for i = 1, #members do str(members[i], 'member', i) end
local raw = rcall('GET', KEYS[1])
if raw and mp_unpack(raw)[1] == period then return 1 end
rcall('SET', KEYS[1], mp_pack({period, kind, unit, amount, cap, expires, priority}))
rcall('DEL', KEYS[2])
for i = 1, #members do rcall('HSET', KEYS[2], members[i], 0) end
return 0
