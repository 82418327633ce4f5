-- ccr.lua: one credit-control request, all its rating groups, atomically.
--
-- KEYS[1] idempotency record   {t:<tenant>:<vshard>}:op:<op_id>
-- KEYS[2] account              {t:<tenant>:<vshard>}:a:<subscriber>
-- KEYS[3] shard expiry index   {t:<tenant>:<vshard>}:exp     (zset subscriber -> deadline)
-- KEYS[4] shard record stream  {t:<tenant>:<vshard>}:cdr
-- The shard's event stream {t:<tenant>:<vshard>}:ev (threshold crossings) is derived from
-- KEYS[4] (lib.lua event_stream: same hash tag, so the same cluster slot).
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, session_id, now_s, idem_ttl_s,
--                  session_idle_s, sessions_max, {items, prices}, valid_until_s (one per item),
--                  request_kind, request_number, balance_below (optional: notification
--                  levels in micro-units; depleted and negative are always evaluated; a
--                  last entry that is a list holds the bucket-percent levels)}
-- ARGV[2] (optional) record context: msgpack RecordContext (balance/records.py), written as
--   field 19 of every record this call makes, byte for byte (never decoded here).
--   request_kind: 1 INITIAL (the session must not be open; if every item is refused it leaves
--   no session), 2 UPDATE / 3 TERMINATION (it must be), 0 no session rule (callers without
--   RFC 4006 sessions). A new session past sessions_max replaces the least recently active
--   one that holds nothing (OCS_LIMIT only when every session holds a reservation).
--   request_number (-1 = none) must
--   grow within a session: a smaller or equal one that is not a replay is refused.
--   prices = list of 8-field prices (each distinct price once; items refer to them by position)
--   item = {rating_group, service, used_legs, requested_units, default_units, kinds, payg(0/1),
--           terminate(0/1), reserve_leg_key, reserve_price (1-based index into prices, 0 none),
--           block_kinds (optional: with payg 0, only a live bucket of these kinds stops money)}
--   (deadlines travel apart from the items: a retransmission carries the same items, so the
--   caller can digest the items' bytes as they are)
--   used_leg = {leg_key, units, price (1-based index into prices)}
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
--
-- Cost notes (this runs once per CCR; every Lua function call, table and msgpack element costs
-- a measurable fraction of a microsecond): prices arrive once each and are checked once; the
-- request's items are not copied; buckets are only sorted when an item names bucket kinds;
-- holds are settled in place.

local OK, CREDIT_LIMIT, DENIED, UNKNOWN = 0, 1, 2, 3

local req = mp_unpack(ARGV[1])
local ctx = ARGV[2]
if ctx ~= nil then ctx = record_context(ctx) end
local op_id, digest = req[1], req[2]
local tenant, subscriber, session_id = req[3], req[4], req[5]
if type(op_id) ~= 'string' or type(digest) ~= 'string' or type(tenant) ~= 'string'
    or type(subscriber) ~= 'string' or type(session_id) ~= 'string' then
  str(op_id, 'op_id') str(digest, 'digest') str(tenant, 'tenant') str(subscriber, 'subscriber')
  str(session_id, 'session_id')
end
-- The checks below test the usual valid value inline and call num/int (which raise the error)
-- only when that test fails: type() interns its answer string and a Lua call costs more than
-- the test. x == tonumber(x) holds exactly for numbers other than NaN; x % 1 ~= 0 is true for
-- fractions, NaN and infinities.
local now, idem_ttl, idle_s, sessions_max = req[6], req[7], req[8], req[9]
if now == nil or tonumber(now) ~= now then num(now, 'now_s') end
if idem_ttl == nil or tonumber(idem_ttl) ~= idem_ttl or idem_ttl < 1 or idem_ttl % 1 ~= 0
    or idem_ttl >= 9007199254740992 then
  int(idem_ttl, 'idem_ttl_s', 1)
end
if idle_s == nil or tonumber(idle_s) ~= idle_s then num(idle_s, 'session_idle_s') end
if sessions_max == nil or tonumber(sessions_max) ~= sessions_max or sessions_max < 1
    or sessions_max % 1 ~= 0 or sessions_max >= 9007199254740992 then
  int(sessions_max, 'sessions_max', 1)
end
local body, deadlines = req[10], req[11]
local request_kind = req[12]
if request_kind == nil then
  request_kind = 0
elseif tonumber(request_kind) ~= request_kind or request_kind < 0 or request_kind % 1 ~= 0
    or request_kind >= 9007199254740992 then
  int(request_kind, 'request_kind', 0)
end
local request_number = req[13]
if request_number == nil then
  request_number = -1
elseif tonumber(request_number) ~= request_number or request_number < -1
    or request_number % 1 ~= 0 or request_number >= 9007199254740992 then
  int(request_number, 'request_number', -1)
end
if type(body) ~= 'table' then fail('BADARG', 'items and prices must be a list of two') end
local items, prices = body[1], body[2]
if type(items) ~= 'table' or #items == 0 or #items > 64 then
  fail('BADARG', 'items: 1 to 64 rating groups')
end
if type(prices) ~= 'table' or #prices > 128 then fail('BADARG', 'prices: at most 128') end
if type(deadlines) ~= 'table' then fail('BADARG', 'valid_until_s must be a list') end

local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end

-- Validate everything before deciding anything.
for k = 1, #prices do check_price(prices[k], 'price') end
local price_count = #prices
for i = 1, #items do
  local it = items[i]
  if type(it) ~= 'table' then fail('BADARG', where('must be a list', i)) end
  local rg_id, requested, legs = it[1], it[4], it[3]
  local deadline = deadlines[i]
  if deadline == nil or tonumber(deadline) ~= deadline then num(deadline, 'valid_until_s', i) end
  if rg_id == nil or tonumber(rg_id) ~= rg_id or rg_id < 0 or rg_id % 1 ~= 0
      or rg_id >= 9007199254740992 then
    int(rg_id, 'rating_group', 0, i)
  end
  if type(it[2]) ~= 'string' then str(it[2], 'service', i) end
  if type(legs) ~= 'table' then fail('BADARG', where('used_legs must be a list', i)) end
  for j = 1, #legs do
    local leg = legs[j]
    if type(leg) ~= 'table' then fail('BADARG', where('must be a list', i, j)) end
    if type(leg[1]) ~= 'string' then str(leg[1], 'key', i, j) end
    local units = leg[2]
    if units == nil then
      leg[2] = 0
    elseif tonumber(units) ~= units or units < 0 or units % 1 ~= 0
        or units >= 9007199254740992 then
      int(units, 'units', 0, i, j)
    end
    local p = leg[3]
    if p == nil or tonumber(p) ~= p or p < 1 or p > price_count or p % 1 ~= 0 then
      fail('BADARG', where('price must index prices', i, j))
    end
    leg[3] = prices[p]
  end
  if requested == nil or tonumber(requested) ~= requested or requested < -1
      or requested % 1 ~= 0 or requested >= 9007199254740992 then
    int(requested, 'requested_units', -1, i)
  end
  local default_units = it[5]
  if default_units == nil then
    it[5] = 0
  elseif tonumber(default_units) ~= default_units or default_units < 0
      or default_units % 1 ~= 0 or default_units >= 9007199254740992 then
    int(default_units, 'default_units', 0, i)
  end
  local kinds = it[6]
  if type(kinds) ~= 'table' then fail('BADARG', where('kinds must be a list', i)) end
  for k = 1, #kinds do
    if type(kinds[k]) ~= 'string' then str(kinds[k], 'kind', i) end
  end
  local payg, stop = it[7], it[8]
  if payg == nil then it[7] = 0 elseif payg ~= 0 and payg ~= 1 then int(payg, 'payg', 0, i) end
  if stop == nil then it[8] = 0 elseif stop ~= 0 and stop ~= 1 then int(stop, 'terminate', 0, i) end
  if type(it[9]) ~= 'string' then str(it[9], 'reserve_leg_key', i) end
  local rp = it[10]
  if rp == nil then rp = 0 end
  if tonumber(rp) ~= rp or rp < 0 or rp > price_count or rp % 1 ~= 0 then
    fail('BADARG', where('reserve_price must index prices (0 = none)', i))
  end
  local bk = it[11]
  if bk ~= nil then
    if type(bk) ~= 'table' then fail('BADARG', where('block_kinds must be a list', i)) end
    for k = 1, #bk do str(bk[k], 'block kind', i) end
  end
  if rp == 0 then
    if (it[7] == 1 or (bk and #bk > 0)) and requested ~= 0 then
      fail('BADARG', where('payg needs a reserve_price', i))
    end
    it[10] = false
  else
    it[10] = prices[rp]
  end
end

if not got[2] then
  local results = {}
  for i = 1, #items do results[i] = {items[i][1], UNKNOWN, 0, true, 0, 0, 0, 0, 0, 0, 0} end
  return {0, mp_pack({results, 0, 0})}
end
local acct = mp_unpack(got[2])
local posted_before = acct[A_BALANCE] + acct[A_HELD]
local bucket_before = bucket_snapshot(acct, req[14])  -- nil unless bucket-percent levels

-- Forget idle sessions that hold nothing (their cumulative legs are no longer needed).
local sessions = acct[A_SESSIONS]
local session, session_index = nil, nil
do
  -- A new list only once a session is dropped (the usual call drops none).
  local kept, n = nil, 0
  for s_i = 1, #sessions do
    local s = sessions[s_i]
    local keep = s[1] == session_id or now - s[2] < idle_s
    if not keep then
      local rgs = s[3]
      for r_i = 1, #rgs do if #rgs[r_i][2] > 0 then keep = true break end end
    end
    if keep then
      n = n + 1
      if kept then kept[n] = s end
      if s[1] == session_id and not session then session, session_index = s, n end
    elseif not kept then
      kept = {}
      for k = 1, n do kept[k] = sessions[k] end
    end
  end
  if kept then
    sessions = kept
    acct[A_SESSIONS] = kept
  end
end

if request_kind == 1 and session and #session[3] > 0 then
  fail('SESSION_OPEN', 'session ' .. session_id .. ' is already open')
elseif (request_kind == 2 or request_kind == 3) and not session then
  fail('NO_SESSION', 'no open session ' .. session_id)
end
if session and request_number >= 0 and (session[4] or -1) >= request_number then
  fail('OUT_OF_ORDER', 'CC-Request-Number ' .. request_number .. ' after ' .. session[4])
end
if not session then
  if #sessions >= sessions_max then
    -- Full: the least recently active session that holds nothing makes room (a gateway that
    -- vanished without CCR-T must not lock the subscriber out for session_idle_s). Only
    -- sessions that all hold a reservation are a real limit (Tcc releases those in time).
    local idle_i, idle_at = nil, nil
    for s_i = 1, #sessions do
      local s = sessions[s_i]
      if not idle_at or s[2] < idle_at then
        local rgs, holding = s[3], false
        for r_i = 1, #rgs do if #rgs[r_i][2] > 0 then holding = true break end end
        if not holding then idle_i, idle_at = s_i, s[2] end
      end
    end
    if not idle_i then
      fail('LIMIT', 'subscriber has ' .. sessions_max .. ' open sessions')
    end
    tremove(sessions, idle_i)
  end
  session = {session_id, now, {}}
  session_index = #sessions + 1
  sessions[session_index] = session
end
session[2] = now
if request_number >= 0 then session[4] = request_number end

local records, record_count, results = {}, 0, {}
local terminate = false
local refused = request_kind == 1  -- a CCR-I stays refused while no item gets OK
local session_rgs = session[3]
local buckets = acct[A_BUCKETS]
local blocked = acct[A_STATE] ~= ACTIVE  -- blocked, provisioning (held) or deleted
local none = {}
local last_kinds, last_units, last_money = nil, none, none

for i = 1, #items do
  local it = items[i]
  local rg_id, used_legs, kinds = it[1], it[3], it[6]
  local payg = it[7] == 1 or pays_money(acct, it[7], it[11], now)
  local r
  for k = 1, #session_rgs do
    if session_rgs[k][1] == rg_id then r = session_rgs[k] break end
  end
  if not r then
    r = {rg_id, {}, {}, 0, 0}
    session_rgs[#session_rgs + 1] = r
  end
  local holds = r[2]
  local unit_buckets, money_buckets = none, none
  if #kinds > 0 and #buckets > 0 then
    -- Rating groups of one CCR usually name the same kinds: the eligible lists depend only on
    -- the kinds, the buckets' kind, liveness and order keys, which nothing here changes.
    local same = last_kinds ~= nil and #last_kinds == #kinds
    if same then
      for k = 1, #kinds do
        if kinds[k] ~= last_kinds[k] then same = false break end
      end
    end
    if not same then
      last_units, last_money = eligible(acct, kinds, now)
      last_kinds = kinds
    end
    unit_buckets, money_buckets = last_units, last_money
  end
  local used_total, bucket_units, retail_total, wholesale_total = 0, 0, 0, 0
  local leak_units, leak_money = 0, 0

  -- 1. Commit: money holds go back first (the leg price decides the cost), unit holds pay first.
  if #used_legs > 0 then
    for k = 1, #holds do
      local h = holds[k]
      if h[3] == 1 then settle_hold(acct, h, false) end
    end
    local drawn, leg_out = {}, {}
    for j = 1, #used_legs do
      local leg = used_legs[j]
      local key, units, p = leg[1], leg[2], leg[3]
      local need = units
      local from_buckets = 0
      for k = 1, #holds do
        if need <= 0 then break end
        local h = holds[k]
        if h[3] == 0 and h[2] > 0 then
          local take = need
          if h[2] < need then take = h[2] end
          local b = find_bucket(acct, h[1])
          if b then b[B_HELD] = b[B_HELD] - take end
          h[2] = h[2] - take
          need = need - take
          from_buckets = from_buckets + take
          drawn[#drawn + 1] = {h[1], take}
        end
      end
      local taken
      need, taken = draw_units(unit_buckets, need, drawn)
      from_buckets = from_buckets + taken
      local state = find_leg(r, key)
      local money_before = state[2]
      local leg_retail = 0
      local paid_units = 0
      if need > 0 then
        local base = retail(p, money_before)
        local cost = retail(p, money_before + need) - base
        local avail = 0
        if payg then avail = money_available(acct, money_buckets) end
        paid_units = need
        if cost > avail then
          paid_units = affordable(p, money_before, avail)
          if paid_units < 0 or paid_units > need then paid_units = need end
          local paid = retail(p, money_before + paid_units) - base
          leak_units = leak_units + need - paid_units
          leak_money = leak_money + cost - paid
          cost = paid
        end
        if cost > 0 then take_money(acct, money_buckets, cost, false, drawn, true) end
        leg_retail = cost
        state[2] = money_before + paid_units
      end
      local leg_wholesale = 0
      local all_before = state[3]
      if p[3] > 0 then
        -- wholesale(p, all_before + units) - wholesale(p, all_before), inline
        local all_after = all_before + units
        if all_after > 0 then leg_wholesale = ceil_mul_div(all_after, p[3], p[4]) end
        if all_before > 0 then
          leg_wholesale = leg_wholesale - ceil_mul_div(all_before, p[3], p[4])
        end
      end
      state[3] = all_before + units
      used_total = used_total + units
      bucket_units = bucket_units + from_buckets
      retail_total = retail_total + leg_retail
      wholesale_total = wholesale_total + leg_wholesale
      leg_out[j] = {key, units, leg_retail, leg_wholesale, paid_units}
    end
    record_count = record_count + 1
    -- Positions: balance/records.py LedgerRecord; balance_after (16) is set before writing.
    records[record_count] = {'usage', tenant, subscriber, session_id, op_id, it[2], rg_id,
      used_total, retail_total, wholesale_total, drawn, leak_units, leak_money, leg_out, now,
      0, '', -retail_total}
  end

  -- 2. Release what is left of the old hold.
  for k = 1, #holds do settle_hold(acct, holds[k], false) end
  r[2] = none
  r[4] = 0

  -- 3. Reserve.
  local requested = it[4]
  if requested == -1 then requested = it[5] end
  local outcome, granted, final = OK, 0, false
  if it[8] == 1 then
    terminate = true
    requested = 0
  end
  if requested > 0 and blocked then
    outcome, final = DENIED, true
  elseif requested > 0 then
    local new_holds = {}
    for k = 1, #unit_buckets do
      if granted >= requested then break end
      local b = unit_buckets[k]
      local take = requested - granted
      if b[B_REMAINING] < take then take = b[B_REMAINING] end
      if take > 0 then
        b[B_REMAINING] = b[B_REMAINING] - take
        b[B_HELD] = b[B_HELD] + take
        new_holds[#new_holds + 1] = {b[B_ID], take, 0}
        granted = granted + take
      end
    end
    local more_money = 0
    if payg then
      local p = it[10]
      local state = find_leg(r, it[9])
      local money_before = state[2]
      local from_money = 0
      local avail = money_available(acct, money_buckets)
      if granted < requested then
        local need = requested - granted
        from_money = affordable(p, money_before, avail)
        if from_money < 0 or from_money > need then from_money = need end
        local cost = retail(p, money_before + from_money) - retail(p, money_before)
        if cost > 0 then
          take_money(acct, money_buckets, cost, true, new_holds, false)
          avail = avail - cost
        end
        granted = granted + from_money
      end
      more_money = affordable(p, money_before + from_money, avail)
    end
    local more_units = 0
    for k = 1, #unit_buckets do more_units = more_units + unit_buckets[k][B_REMAINING] end
    if granted < requested or (more_units == 0 and more_money == 0) then final = true end
    if granted == 0 then outcome = CREDIT_LIMIT end
    r[2] = new_holds
    r[5] = granted
    if #new_holds > 0 then r[4] = deadlines[i] end
  end
  if outcome == OK then refused = false end
  results[i] = {rg_id, outcome, granted, final, used_total, bucket_units, retail_total,
    wholesale_total, leak_units, leak_money, r[4]}
end

-- A refused CCR-I (every item refused, so nothing is held) establishes no session: it must not
-- count toward sessions_max while the gateway, told so, never sends a CCR-T.
if refused then terminate = true end

if terminate then
  for k = 1, #session_rgs do
    local holds = session_rgs[k][2]
    for m = 1, #holds do settle_hold(acct, holds[m], false) end
  end
  tremove(sessions, session_index)
end

local balance = acct[A_BALANCE]
local result = mp_pack({results, balance, acct[A_HELD]})
-- Notifications: one comparison unless the posted balance went down (a commit).
local posted = balance + acct[A_HELD]
if posted < posted_before then
  emit_crossings(event_stream(KEYS[4]), tenant, subscriber, op_id, now, posted_before, posted, req[14])
end
if bucket_before then
  emit_bucket_crossings(event_stream(KEYS[4]), tenant, subscriber, op_id, now, acct, bucket_before,
    req[14])
end
index_deadline(KEYS[3], subscriber, acct)
rcall('SET', KEYS[2], mp_pack(acct))
idem_store(KEYS[1], digest, result, idem_ttl)
for k = 1, record_count do
  local rec = records[k]
  rec[16] = balance
  local packed = mp_pack(rec)
  if ctx then packed = '\220\0\19' .. ssub(packed, 4) .. ctx end
  rcall('XADD', KEYS[4], '*', 'r', packed)
end
return {0, result}
