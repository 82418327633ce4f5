-- expire.lua: the sweeper for one shard: void every reservation whose deadline has passed.
-- KEYS[1] shard expiry index {t:<tenant>:<vshard>}:exp, KEYS[2] shard record stream
-- ARGV[1] msgpack {key_prefix "{t:<tenant>:<vshard>}", tenant, now_s, limit}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Account keys are key_prefix .. ':a:' .. subscriber (same hash slot as KEYS[1]).
-- Each due rating-group reservation is released once and gets one 'expiry' record; the account's
-- index entry moves to its next deadline (or goes).
-- Returns msgpack list of {subscriber, session_id, rating_group, units_released, money_released}.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local prefix, tenant = str(req[1], 'key_prefix'), str(req[2], 'tenant')
local now = num(req[3], 'now_s')
local limit = int(req[4], 'limit', 1)
local due = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local released = {}
for _, subscriber in ipairs(due) do
  local key = prefix .. ':a:' .. subscriber
  local raw = rcall('GET', key)
  if not raw then
    rcall('ZREM', KEYS[1], subscriber)
  else
    local acct = mp_unpack(raw)
    local expired_sessions = {}
    for _, s in ipairs(acct[A_SESSIONS]) do
      for _, r in ipairs(s[3]) do
        if #r[2] > 0 and r[4] > 0 and r[4] <= now then
          local units, money = 0, 0
          for _, h in ipairs(r[2]) do
            if h[3] == 1 then money = money + h[2] else units = units + h[2] end
            settle_hold(acct, h, false)
          end
          r[2] = {}
          r[4] = 0
          released[#released + 1] = {subscriber, s[1], r[1], units, money}
          expired_sessions[s[1]] = true
          append_record(KEYS[2], record('expiry', tenant, subscriber, s[1], '', '', r[1], units, 0,
            0, {}, 0, 0, {}, now, acct[A_BALANCE], '', money), ctx)
        end
      end
    end
    -- A session whose every reservation expired is closed: Tcc supervision ended it, and a
    -- later UPDATE/TERMINATION for it is answered as an unknown session.
    local open = {}
    for _, s in ipairs(acct[A_SESSIONS]) do
      local holding = false
      for _, r in ipairs(s[3]) do if #r[2] > 0 then holding = true end end
      if holding or not expired_sessions[s[1]] then open[#open + 1] = s end
    end
    acct[A_SESSIONS] = open
    index_deadline(KEYS[1], subscriber, acct)
    rcall('SET', key, mp_pack(acct))
  end
end
return mp_pack(released)
