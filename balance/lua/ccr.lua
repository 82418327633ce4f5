-- ccr.lua: one credit-control request, all its rating groups, atomically.
--
-- KEYS[1] idempotency record   {t:<tenant>:<vshard>}:op:<op_id>
-- KEYS[2] account              {t:<tenant>:<vshard>}:a:<subscriber>
-- KEYS[3] shard expiry index   {t:<tenant>:<vshard>}:exp     (zset subscriber -> deadline)
-- KEYS[4] shard record stream  {t:<tenant>:<vshard>}:cdr
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, session_id, now_s, idem_ttl_s,
--                  session_idle_s, sessions_max, items, valid_until_s (one per item),
--                  request_kind, request_number}
--   request_kind: 1 INITIAL (the session must not be open), 2 UPDATE / 3 TERMINATION (it must
--   be), 0 no session rule (callers without RFC 4006 sessions). request_number (-1 = none) must
--   grow within a session: a smaller or equal one that is not a replay is refused.
--   item = {rating_group, service, used_legs, requested_units, default_units, kinds, payg(0/1),
--           terminate(0/1), reserve_leg_key, reserve_price (price or {})}
--   (deadlines travel apart from the items: a retransmission carries the same items, so the
--   caller can digest the items' bytes as they are)
--   used_leg = {leg_key, units, price}
-- Per item, in this order: commit the used legs (held units first, then live buckets of the
-- kinds, then money at the leg's price, cumulatively per leg; what cannot be paid is leakage),
-- release what is left of the old hold, reserve the requested units (buckets of the kinds in
-- order, then money if payg). A terminate item also releases every hold of the session and
-- forgets the session. One usage record per item that carries used legs.
-- Returns {replayed(0/1), result} where result is msgpack
--   {items, balance_available, held_money}
--   item result = {rating_group, outcome, granted_units, final(0/1), used_units, bucket_units,
--                  retail, wholesale, leakage_units, leakage_money, valid_until_s}
--   outcome: 0 OK, 1 CREDIT_LIMIT_REACHED, 2 END_USER_SERVICE_DENIED, 3 UNKNOWN_ACCOUNT
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_LIMIT, OCS_NO_SESSION, OCS_SESSION_OPEN,
-- OCS_OUT_OF_ORDER (all raised before anything is written). redis.calls: 1 MGET, 1 SET account, 1 SET
-- idempotency, 1 XADD per committed item, 0-1 ZADD/ZREM: 5 for two committed rating groups.

local OK, CREDIT_LIMIT, DENIED, UNKNOWN = 0, 1, 2, 3

local req = mp_unpack(ARGV[1])
local op_id, digest = str(req[1], 'op_id'), str(req[2], 'digest')
local tenant, subscriber, session_id = str(req[3], 'tenant'), str(req[4], 'subscriber'),
  str(req[5], 'session_id')
local now = num(req[6], 'now_s')
local idem_ttl = int(req[7], 'idem_ttl_s', 1)
local idle_s = num(req[8], 'session_idle_s')
local sessions_max = int(req[9], 'sessions_max', 1)
local items, deadlines = req[10], req[11]
local request_kind = int0(req[12], 'request_kind', 0)
local request_number = req[13] == nil and -1 or int(req[13], 'request_number', -1)
if type(items) ~= 'table' or #items == 0 or #items > 64 then
  fail('BADARG', 'items: 1 to 64 rating groups')
end
if type(deadlines) ~= 'table' then fail('BADARG', 'valid_until_s must be a list') end

local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end

-- Validate everything before deciding anything.
for i, it in ipairs(items) do
  num(deadlines[i], 'valid_until_s', i)
  int(it[1], 'rating_group', 0, i)
  str(it[2], 'service', i)
  if type(it[3]) ~= 'table' then fail('BADARG', where('used_legs must be a list', i)) end
  for j, leg in ipairs(it[3]) do
    str(leg[1], 'key', i, j)
    leg[2] = int0(leg[2], 'units', 0, i, j)
    check_price(leg[3], 'price', i, j)
  end
  int(it[4], 'requested_units', -1, i)
  it[5] = int0(it[5], 'default_units', 0, i)
  if type(it[6]) ~= 'table' then fail('BADARG', where('kinds must be a list', i)) end
  for _, k in ipairs(it[6]) do str(k, 'kind', i) end
  it[7] = int0(it[7], 'payg', 0, i)
  it[8] = int0(it[8], 'terminate', 0, i)
  str(it[9], 'reserve_leg_key', i)
  if type(it[10]) ~= 'table' then fail('BADARG', where('reserve_price must be a price or {}', i)) end
  local priced = next(it[10]) ~= nil
  if priced then check_price(it[10], 'reserve_price', i) end
  if it[7] == 1 and not priced and it[4] ~= 0 then
    fail('BADARG', where('payg needs a reserve_price', i))
  end
end

if not got[2] then
  local results = {}
  for i, it in ipairs(items) do results[i] = {it[1], UNKNOWN, 0, true, 0, 0, 0, 0, 0, 0, 0} end
  return {0, mp_pack({results, 0, 0})}
end
local acct = mp_unpack(got[2])

-- Forget idle sessions that hold nothing (their cumulative legs are no longer needed).
local kept = {}
for _, s in ipairs(acct[A_SESSIONS]) do
  local holding = false
  for _, r in ipairs(s[3]) do if #r[2] > 0 then holding = true end end
  if holding or s[1] == session_id or now - s[2] < idle_s then kept[#kept + 1] = s end
end
acct[A_SESSIONS] = kept

local session = find_session(acct, session_id)
if request_kind == 1 and session and #session[3] > 0 then
  fail('SESSION_OPEN', 'session ' .. session_id .. ' is already open')
elseif (request_kind == 2 or request_kind == 3) and not session then
  fail('NO_SESSION', 'no open session ' .. session_id)
end
if session and request_number >= 0 and (session[4] or -1) >= request_number then
  fail('OUT_OF_ORDER', 'CC-Request-Number ' .. request_number .. ' after ' .. session[4])
end
if not session then
  if #acct[A_SESSIONS] >= sessions_max then
    fail('LIMIT', 'subscriber has ' .. sessions_max .. ' open sessions')
  end
  session = {session_id, now, {}}
  acct[A_SESSIONS][#acct[A_SESSIONS] + 1] = session
end
session[2] = now
if request_number >= 0 then session[4] = request_number end

local records, results = {}, {}
local terminate = false

for i, it in ipairs(items) do
  local rg_id, service, used_legs, kinds = it[1], it[2], it[3], it[6]
  local r = find_rg(session, rg_id)
  if not r then
    r = {rg_id, {}, {}, 0, 0}
    session[3][#session[3] + 1] = r
  end
  local unit_buckets, money_buckets = eligible(acct, kinds, now)
  local used_total, bucket_units, retail_total, wholesale_total = 0, 0, 0, 0
  local leak_units, leak_money = 0, 0

  -- 1. Commit: money holds go back first (the leg price decides the cost), unit holds pay first.
  if #used_legs > 0 then
    for _, h in ipairs(r[2]) do
      if h[3] == 1 then settle_hold(acct, h, false) end
    end
    local drawn, leg_out = {}, {}
    for _, leg in ipairs(used_legs) do
      local key, units, p = leg[1], leg[2], leg[3]
      local need = units
      local from_buckets = 0
      for _, h in ipairs(r[2]) do
        if need <= 0 then break end
        if h[3] == 0 and h[2] > 0 then
          local take = min(need, h[2])
          settle_hold(acct, {h[1], take, 0}, true)
          h[2] = h[2] - take
          need = need - take
          from_buckets = from_buckets + take
          drawn[#drawn + 1] = {h[1], take}
        end
      end
      for _, b in ipairs(unit_buckets) do
        if need <= 0 then break end
        local take = min(need, b[B_REMAINING])
        if take > 0 then
          b[B_REMAINING] = b[B_REMAINING] - take
          need = need - take
          from_buckets = from_buckets + take
          drawn[#drawn + 1] = {b[B_ID], take}
        end
      end
      local state = find_leg(r, key)
      local leg_retail = 0
      local paid_units = 0
      if need > 0 then
        local cost = retail(p, state[2] + need) - retail(p, state[2])
        local avail = 0
        if it[7] == 1 then avail = money_available(acct, money_buckets) end
        paid_units = need
        if cost > avail then
          paid_units = affordable(p, state[2], avail)
          if paid_units < 0 or paid_units > need then paid_units = need end
          local paid = retail(p, state[2] + paid_units) - retail(p, state[2])
          leak_units = leak_units + need - paid_units
          leak_money = leak_money + cost - paid
          cost = paid
        end
        if cost > 0 then
          local moved = take_money(acct, money_buckets, cost, false, {})
          for _, m in ipairs(moved) do
            if m[1] ~= '' then drawn[#drawn + 1] = {m[1], m[2]} end
          end
        end
        leg_retail = cost
        state[2] = state[2] + paid_units
      end
      local leg_wholesale = wholesale(p, state[3] + units) - wholesale(p, state[3])
      state[3] = state[3] + units
      used_total = used_total + units
      bucket_units = bucket_units + from_buckets
      retail_total = retail_total + leg_retail
      wholesale_total = wholesale_total + leg_wholesale
      leg_out[#leg_out + 1] = {key, units, leg_retail, leg_wholesale, paid_units}
    end
    records[#records + 1] = record('usage', tenant, subscriber, session_id, op_id, service, rg_id,
      used_total, retail_total, wholesale_total, drawn, leak_units, leak_money, leg_out, now,
      0, '', -retail_total)
  end

  -- 2. Release what is left of the old hold.
  for _, h in ipairs(r[2]) do settle_hold(acct, h, false) end
  r[2] = {}
  r[4] = 0

  -- 3. Reserve.
  local requested = it[4]
  if requested == -1 then requested = it[5] end
  local outcome, granted, final = OK, 0, false
  if it[8] == 1 then
    terminate = true
    requested = 0
  end
  if requested > 0 and acct[A_STATE] == BLOCKED then
    outcome, final = DENIED, true
  elseif requested > 0 then
    local holds = {}
    for _, b in ipairs(unit_buckets) do
      if granted >= requested then break end
      local take = min(requested - granted, b[B_REMAINING])
      if take > 0 then
        b[B_REMAINING] = b[B_REMAINING] - take
        b[B_HELD] = b[B_HELD] + take
        holds[#holds + 1] = {b[B_ID], take, 0}
        granted = granted + take
      end
    end
    local more_money = 0
    if it[7] == 1 then
      local p = it[10]
      local state = find_leg(r, it[9])
      local from_money = 0
      if granted < requested then
        local need = requested - granted
        local avail = money_available(acct, money_buckets)
        from_money = affordable(p, state[2], avail)
        if from_money < 0 or from_money > need then from_money = need end
        local cost = retail(p, state[2] + from_money) - retail(p, state[2])
        if cost > 0 then take_money(acct, money_buckets, cost, true, holds) end
        granted = granted + from_money
      end
      more_money = affordable(p, state[2] + from_money, money_available(acct, money_buckets))
    end
    local more_units = 0
    for _, b in ipairs(unit_buckets) do more_units = more_units + b[B_REMAINING] end
    if granted < requested or (more_units == 0 and more_money == 0) then final = true end
    if granted == 0 then outcome = CREDIT_LIMIT end
    r[2] = holds
    r[5] = granted
    if #holds > 0 then r[4] = deadlines[i] end
  end
  results[i] = {rg_id, outcome, granted, final, used_total, bucket_units, retail_total,
    wholesale_total, leak_units, leak_money, r[4]}
end

if terminate then
  for _, r in ipairs(session[3]) do
    for _, h in ipairs(r[2]) do settle_hold(acct, h, false) end
  end
  local _, index = find_session(acct, session_id)
  tremove(acct[A_SESSIONS], index)
end

for _, rec in ipairs(records) do rec[16] = acct[A_BALANCE] end
local result = mp_pack({results, acct[A_BALANCE], acct[A_HELD]})
index_deadline(KEYS[3], subscriber, acct)
rcall('SET', KEYS[2], mp_pack(acct))
idem_store(KEYS[1], digest, result, idem_ttl)
for _, rec in ipairs(records) do append_record(KEYS[4], rec) end
return {0, result}
