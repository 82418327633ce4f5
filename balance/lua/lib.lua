-- lib.lua: helpers shared by every ledger script. balance/scripts.py prepends this file (after
-- the #!lua shebang line) to each operation script, so a script is one self-contained chunk.
--
-- Data shapes (msgpack arrays; positions are the contract with balance/records.py):
--   price   = {num, den, cost_num, cost_den, first_units, step_units, connect_fee, min_charge}
--   account = {version, state(0 active, 1 blocked, 2 provisioning, 3 deleted), balance,
--              credit_limit, held_money, buckets, sessions, next_deadline_s}
--   bucket  = {id, kind, unit, remaining, priority, expires_at_s(0 never), held, size}
--   session = {session_id, last_seen_s, rgs}
--   rg      = {rating_group, holds, legs, valid_until_s, granted_units}
--   hold    = {bucket_id ("" = the monetary balance), amount, is_money(0/1)}
--   leg     = {leg_key, money_units, all_units}
-- Money is micro-units; Lua numbers are doubles, exact below 2^53, and every formula below keeps
-- intermediate values under max(operand, num*den) exactly as tariffs/price.py documents.
-- Errors: error({err = 'OCS_<CODE> message'}) before any write; balance/errors.py maps <CODE>.
-- Prices and 0-default numeric fields accept nil for 0 (see int0).

-- Globals as locals: in Redis 7 every global lookup goes through the protected global table,
-- which costs more than the arithmetic around it.
local floor, min, max, huge = math.floor, math.min, math.max, math.huge
local mp_pack, mp_unpack = cmsgpack.pack, cmsgpack.unpack
local rcall = redis.call
local ipairs, type, error, tonumber = ipairs, type, error, tonumber
local tsort, tremove, sfind, ssub, sbyte = table.sort, table.remove, string.find, string.sub,
  string.byte

-- Account states: PROVISIONING is held (no grants) until the host MNO confirms the new or
-- changed subscriber (activate.lua); DELETED is kept for its records and refused by every
-- operation but the charging of usage already granted.
local ACTIVE, BLOCKED, PROVISIONING, DELETED = 0, 1, 2, 3
local A_VERSION, A_STATE, A_BALANCE, A_LIMIT, A_HELD, A_BUCKETS, A_SESSIONS, A_NEXT = 1, 2, 3, 4, 5, 6, 7, 8
local B_ID, B_KIND, B_UNIT, B_REMAINING, B_PRIORITY, B_EXPIRES, B_HELD = 1, 2, 3, 4, 5, 6, 7
-- Size as granted (nil or 0 on buckets older than the field: no percent notification).
local B_SIZE = 8

local function fail(code, message)
  error({err = 'OCS_' .. code .. ' ' .. message})
end

-- Field names are built only when a check fails: concatenating them on every call would cost
-- more than the checks. i, j (optional) locate the field: item i, leg j.
local function where(what, i, j)
  if i == nil then return what end
  if j == nil then return 'item ' .. i .. ' ' .. what end
  return 'item ' .. i .. ' leg ' .. j .. ' ' .. what
end

local function num(value, what, i, j)
  if type(value) ~= 'number' or value ~= value then
    fail('BADARG', where(what, i, j) .. ' must be a number')
  end
  return value
end

local function int(value, what, low, i, j)
  num(value, what, i, j)
  if value ~= floor(value) then fail('BADARG', where(what, i, j) .. ' must be an integer') end
  if low ~= nil and value < low then fail('BADARG', where(what, i, j) .. ' must be >= ' .. low) end
  if value >= 9007199254740992 or value <= -9007199254740992 then
    fail('BADARG', where(what, i, j) .. ' is beyond 2^53')
  end
  return value
end

-- A numeric field whose natural default is 0 may be sent as msgpack nil (read as 0): lets a
-- payload be written without NUL bytes (redis-benchmark passes arguments as C strings).
local function int0(value, what, low, i, j)
  if value == nil then return 0 end
  return int(value, what, low, i, j)
end

local function str(value, what, i, j)
  if type(value) ~= 'string' then fail('BADARG', where(what, i, j) .. ' must be a string') end
  return value
end

local function check_price(p, what, i, j)
  if type(p) ~= 'table' then fail('BADARG', where(what, i, j) .. ' must be an 8-field price') end
  -- int0 inline for the usual valid field (v % 1 is NaN for NaN and infinities): a Lua call
  -- per field costs more than the whole check.
  for k = 1, 8 do
    local v = p[k]
    if v == nil then
      p[k] = 0
    elseif type(v) ~= 'number' or v < 0 or v % 1 ~= 0 or v >= 9007199254740992 then
      p[k] = int(v, what, 0, i, j)
    end
  end
  if p[2] <= 0 or p[4] <= 0 then
    fail('BADARG', where(what, i, j) .. ': denominators must be positive')
  end
  if p[6] <= 0 then fail('BADARG', where(what, i, j) .. ': increment must be positive') end
  if p[1] * p[2] >= 9007199254740992 or p[3] * p[4] >= 9007199254740992 then
    fail('BADARG', where(what, i, j) .. ': rate fraction too fine')
  end
  return p
end

-- Integer division of doubles must be corrected: a/b may round across an integer when a is
-- large, so every floor(a / b) below is followed by a remainder check. The price functions
-- inline this (a Lua call costs more than the arithmetic, and retail runs several times per
-- rating group), so each of them is one call.

-- Units as charged: at least first_units, then whole increments (ceiling).
local function rounded_units(p, units)
  if units <= 0 then return 0 end
  local first, step = p[5], p[6]
  if units <= first then return first end
  local x = units - first
  local q = floor(x / step)
  local r = x - q * step
  if r < 0 then q = q - 1 r = r + step elseif r >= step then q = q + 1 r = r - step end
  if r > 0 then q = q + 1 end
  return first + q * step
end

-- ceil(units * n / d) without an intermediate above max(units, n * d).
local function ceil_mul_div(units, n, d)
  local whole = floor(units / d)
  local rest = units - whole * d
  if rest < 0 then whole = whole - 1 rest = rest + d elseif rest >= d then
    whole = whole + 1 rest = rest - d
  end
  local y = rest * n
  local q = floor(y / d)
  local r = y - q * d
  if r < 0 then q = q - 1 r = r + d elseif r >= d then q = q + 1 r = r - d end
  if r > 0 then q = q + 1 end
  return whole * n + q
end

local function retail(p, units)
  if units <= 0 then return 0 end
  -- rounded_units, inline
  local first, step = p[5], p[6]
  local rounded = first
  if units > first then
    local x = units - first
    local q = floor(x / step)
    local r = x - q * step
    if r < 0 then q = q - 1 r = r + step elseif r >= step then q = q + 1 r = r - step end
    if r > 0 then q = q + 1 end
    rounded = first + q * step
  end
  -- ceil_mul_div(rounded, num, den), inline
  local n, d = p[1], p[2]
  local whole = floor(rounded / d)
  local rest = rounded - whole * d
  if rest < 0 then whole = whole - 1 rest = rest + d elseif rest >= d then
    whole = whole + 1 rest = rest - d
  end
  local y = rest * n
  local q = floor(y / d)
  local r = y - q * d
  if r < 0 then q = q - 1 r = r + d elseif r >= d then q = q + 1 r = r - d end
  if r > 0 then q = q + 1 end
  local money = whole * n + q
  if money < p[8] then money = p[8] end
  return p[7] + money
end

local function wholesale(p, units)
  if units <= 0 or p[3] == 0 then return 0 end
  return ceil_mul_div(units, p[3], p[4])
end

-- Most units beyond `before` that `money` pays for, on an increment boundary; -1 = unbounded.
local function affordable(p, before, money)
  if money < 0 then return 0 end
  local n, d, first, step = p[1], p[2], p[5], p[6]
  if n == 0 and p[7] == 0 and p[8] == 0 then return -1 end
  local budget = retail(p, before) + money
  if n == 0 then
    if before > 0 then return -1 end
    if budget >= p[7] + p[8] then return -1 end
    return 0
  end
  local spendable = budget - p[7]
  if spendable < p[8] or spendable < 0 then return 0 end
  -- max_rounded = floor(spendable * d / n), exactly
  local whole = floor(spendable / n)
  local rest = spendable - whole * n
  if rest < 0 then whole = whole - 1 rest = rest + n elseif rest >= n then
    whole = whole + 1 rest = rest - n
  end
  local y = rest * d
  local q = floor(y / n)
  local r = y - q * n
  if r < 0 then q = q - 1 elseif r >= n then q = q + 1 end
  local max_rounded = whole * d + q
  if max_rounded < max(first, 1) then return 0 end
  local total
  if max_rounded <= first then
    total = first
  else
    local x = max_rounded - first
    local k = floor(x / step)
    local m = x - k * step
    if m < 0 then k = k - 1 elseif m >= step then k = k + 1 end
    total = first + k * step
  end
  local rounded_before = rounded_units(p, before)
  if total <= rounded_before then
    return max(0, rounded_before - before)
  end
  return total - before
end

-- Idempotency: the record is the digest, a newline, then the stored result (bytes as returned).
local function idem_lookup(raw, digest)
  if digest == '' or sfind(digest, '\n', 1, true) then
    fail('BADARG', 'digest must be non-empty and on one line')
  end
  if not raw then return nil end
  local cut = sfind(raw, '\n', 1, true)
  if ssub(raw, 1, cut - 1) ~= digest then
    -- Stored by a release before the CCR digest's 'x' format (32 hex digits), met by one in
    -- it (120 = 'x'): maybe a retransmission across the upgrade, which only the caller can
    -- tell (it computes the earlier digest and calls again). Checked on a mismatch only.
    if cut == 33 and sbyte(digest) == 120 then
      fail('LEGACY_DIGEST', 'stored with an earlier digest format: call with that one')
    end
    fail('CONFLICT', 'operation id already used with different content')
  end
  return ssub(raw, cut + 1)
end

local function idem_store(key, digest, result, ttl_s)
  rcall('SET', key, digest .. '\n' .. result, 'EX', ttl_s)
end

local function load_account(raw)
  if not raw then fail('UNKNOWN_ACCOUNT', 'no such subscriber') end
  local acct = mp_unpack(raw)
  if acct[A_STATE] == DELETED then fail('UNKNOWN_ACCOUNT', 'subscriber was deleted') end
  return acct
end

local function is_live(b, now)
  return b[B_EXPIRES] == 0 or now < b[B_EXPIRES]
end

-- Numeric loops instead of ipairs here and below: ipairs calls its iterator (a C function) once
-- per element, which costs more than the loop body.
local function find_bucket(acct, id)
  local buckets = acct[A_BUCKETS]
  for k = 1, #buckets do
    local b = buckets[k]
    if b[B_ID] == id then return b end
  end
  return nil
end

-- Bucket order within a kind: priority, expiry (0 = never, last), id.
local function bucket_before(x, y)
  if x[B_PRIORITY] ~= y[B_PRIORITY] then return x[B_PRIORITY] < y[B_PRIORITY] end
  local ex = x[B_EXPIRES] == 0 and huge or x[B_EXPIRES]
  local ey = y[B_EXPIRES] == 0 and huge or y[B_EXPIRES]
  if ex ~= ey then return ex < ey end
  return x[B_ID] < y[B_ID]
end

-- Live buckets of the given kinds, in the kinds' order, then priority, expiry, id.
-- Returns two lists: unit buckets and money buckets. A kind with one live bucket (the usual
-- case) needs no sort and no group list.
local function eligible(acct, kinds, now)
  local units, money = {}, {}
  local buckets = acct[A_BUCKETS]
  local nu, nm = 0, 0
  for i = 1, #kinds do
    local kind = kinds[i]
    if kind == nil then break end
    local group, count, first = nil, 0, nil
    for k = 1, #buckets do
      local b = buckets[k]
      local expires = b[B_EXPIRES]
      if b[B_KIND] == kind and (expires == 0 or now < expires) then
        count = count + 1
        if count == 1 then
          first = b
        else
          if count == 2 then group = {first} end
          group[count] = b
        end
      end
    end
    if count == 1 then
      if first[B_UNIT] == 'money' then
        nm = nm + 1
        money[nm] = first
      else
        nu = nu + 1
        units[nu] = first
      end
    elseif count > 1 then
      tsort(group, bucket_before)
      for k = 1, count do
        local b = group[k]
        if b[B_UNIT] == 'money' then nm = nm + 1 money[nm] = b else nu = nu + 1 units[nu] = b end
      end
    end
  end
  return units, money
end

-- Whether money may pay after the buckets: `payg` (0/1) as rating said, except that with
-- `block_kinds` (kinds whose bundle says on_exhaust: block) only a live bucket of one of them
-- blocks money; a subscriber without such a bundle pays as you go.
local function pays_money(acct, payg, block_kinds, now)
  if payg == 1 then return true end
  if type(block_kinds) ~= 'table' or #block_kinds == 0 then return false end
  local buckets = acct[A_BUCKETS]
  for i = 1, #block_kinds do
    local kind = block_kinds[i]
    if kind == nil then break end
    for k = 1, #buckets do
      local b = buckets[k]
      if b[B_KIND] == kind and is_live(b, now) then return false end
    end
  end
  return true
end

local function money_available(acct, money_buckets)
  local total = acct[A_BALANCE] + acct[A_LIMIT]
  for k = 1, #money_buckets do total = total + money_buckets[k][B_REMAINING] end
  return total
end

-- Take `amount` micro-units from money buckets (in order) then the balance; `as_hold` moves it
-- to held, otherwise it is consumed. `out` receives {source, amount, 1} entries ("" = the
-- balance), or with `buckets_only` just {bucket_id, amount} for each bucket drawn (the shape a
-- usage record lists).
local function take_money(acct, money_buckets, amount, as_hold, out, buckets_only)
  local left = amount
  for k = 1, #money_buckets do
    if left <= 0 then break end
    local b = money_buckets[k]
    local take = left
    if b[B_REMAINING] < left then take = b[B_REMAINING] end
    if take > 0 then
      b[B_REMAINING] = b[B_REMAINING] - take
      if as_hold then b[B_HELD] = b[B_HELD] + take end
      if buckets_only then out[#out + 1] = {b[B_ID], take} else out[#out + 1] = {b[B_ID], take, 1} end
      left = left - take
    end
  end
  if left > 0 then
    acct[A_BALANCE] = acct[A_BALANCE] - left
    if as_hold then acct[A_HELD] = acct[A_HELD] + left end
    if not buckets_only then out[#out + 1] = {'', left, 1} end
  end
  return out
end

-- Use up to `need` units from `buckets` in order, appending {bucket_id, units} to `drawn`.
-- Returns the units still needed and the units taken.
local function draw_units(buckets, need, drawn)
  local taken = 0
  for k = 1, #buckets do
    if need <= 0 then break end
    local b = buckets[k]
    local take = need
    if b[B_REMAINING] < need then take = b[B_REMAINING] end
    if take > 0 then
      b[B_REMAINING] = b[B_REMAINING] - take
      need = need - take
      taken = taken + take
      drawn[#drawn + 1] = {b[B_ID], take}
    end
  end
  return need, taken
end

-- Return a hold to where it came from (release), or, with consume, drop the held amount.
local function settle_hold(acct, hold, consume)
  local amount = hold[2]
  if amount <= 0 then return end
  if hold[1] == '' then
    acct[A_HELD] = acct[A_HELD] - amount
    if not consume then acct[A_BALANCE] = acct[A_BALANCE] + amount end
  else
    local b = find_bucket(acct, hold[1])
    if b then
      b[B_HELD] = b[B_HELD] - amount
      if not consume then b[B_REMAINING] = b[B_REMAINING] + amount end
    end
  end
  hold[2] = 0
end

local function find_session(acct, session_id)
  for i, s in ipairs(acct[A_SESSIONS]) do
    if s[1] == session_id then return s, i end
  end
  return nil, nil
end

local function find_rg(session, rg)
  for _, r in ipairs(session[3]) do
    if r[1] == rg then return r end
  end
  return nil
end

local function find_leg(r, key)
  local legs = r[3]
  local n = #legs
  for k = 1, n do
    local leg = legs[k]
    if leg[1] == key then return leg end
  end
  local leg = {key, 0, 0}
  legs[n + 1] = leg
  return leg
end

-- Earliest hold deadline over all sessions (0 = no holds): the expiry index score.
local function next_deadline(acct)
  local best = 0
  local sessions = acct[A_SESSIONS]
  for i = 1, #sessions do
    local rgs = sessions[i][3]
    for k = 1, #rgs do
      local r = rgs[k]
      local due = r[4]
      if due > 0 and (best == 0 or due < best) and #r[2] > 0 then best = due end
    end
  end
  return best
end

-- Keep the shard's expiry index in step with the account (one call at most).
local function index_deadline(zkey, subscriber, acct)
  local due = next_deadline(acct)
  if due ~= acct[A_NEXT] then
    if due == 0 then
      rcall('ZREM', zkey, subscriber)
    else
      rcall('ZADD', zkey, due, subscriber)
    end
    acct[A_NEXT] = due
  end
end

-- Ledger record (one stream entry, field "r", msgpack): positions are balance/records.py
-- LedgerRecord. Built as a table so the caller can fill balance_after once it is known.
local function record(kind, tenant, subscriber, session, op_id, service, rg, units, retail_money,
                      wholesale_money, drawn, leak_units, leak_money, legs, now, balance_after,
                      reason, money_delta)
  return {kind, tenant, subscriber, session, op_id, service, rg, units, retail_money,
    wholesale_money, drawn, leak_units, leak_money, legs, now, balance_after, reason, money_delta}
end

-- The caller's record context (optional ARGV[2]: a msgpack array, balance/records.py
-- RecordContext) becomes field 19 byte for byte, never decoded here: an 18-field record packs
-- as array16 (0xdc 0x00 0x12), so the 19-field one is that header with 0x13, the same body, then
-- the context's bytes. Costs one string concatenation per record.
local function with_context(packed, ctx)
  if ctx == nil then return packed end
  return '\220\0\19' .. ssub(packed, 4) .. ctx
end

-- ARGV[2] checked before anything is written: absent, or one msgpack array (fixarray 0x90-0x9f,
-- array16 0xdc) that the record can carry as it is.
local function record_context(ctx)
  if ctx == nil or ctx == '' then return nil end
  local b = sbyte(ctx, 1)
  if (b < 144 or b > 159) and b ~= 220 then
    fail('BADARG', 'record context must be a msgpack array')
  end
  return ctx
end

local function append_record(stream, rec, ctx)
  rcall('XADD', stream, '*', 'r', with_context(mp_pack(rec), ctx))
end

-- Shared by the account-maintenance scripts: {op_id, digest, tenant, subscriber, now_s,
-- idem_ttl_s, ...}; KEYS[1] idempotency, KEYS[2] account, KEYS[3] record stream.
local function admin_args(req)
  return str(req[1], 'op_id'), str(req[2], 'digest'), str(req[3], 'tenant'),
    str(req[4], 'subscriber'), num(req[5], 'now_s'), int(req[6], 'idem_ttl_s', 1)
end

local function account_summary(acct)
  return mp_pack({acct[A_BALANCE], acct[A_HELD], acct[A_STATE], acct[A_LIMIT]})
end
