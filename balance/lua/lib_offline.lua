-- Offline usage shared by debit.lua, offline.lua and offline_many.lua (loaded after lib.lua
-- and lib_events.lua; balance/scripts.py LIB_FILES).

-- A debit's legs (1 to 16 of {price key, units, price}) and its bucket kinds, checked the same
-- way by debit.lua and the offline scripts.
local function check_legs(legs, kinds)
  if type(legs) ~= 'table' or #legs == 0 or #legs > 16 then fail('BADARG', 'legs: 1 to 16') end
  if type(kinds) ~= 'table' then fail('BADARG', 'kinds must be a list') end
  for _, k in ipairs(kinds) do str(k, 'kind') end
  for j, leg in ipairs(legs) do
    str(leg[1], 'key', 1, j)
    int(leg[2], 'units', 0, 1, j)
    check_price(leg[3], 'price', 1, j)
  end
end

-- Offline usage (offline.lua, offline_many.lua): one xDR record committed without a session.
-- request/context: offline.lua's ARGV[1]/ARGV[2]. accounts (offline_many): a cache of the
-- accounts this call read, by key, with the keys in reading order at 1..n; each is read once
-- and written once by the caller at the end; nil: read and written here (offline.lua).
-- Every error is raised before any write (and before the cached account is changed).
local function offline_apply(idem_key, acct_key, stream_key, request, context, accounts)
  local req = mp_unpack(request)
  local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
  local service = str(req[7], 'service')
  local rg = int(req[8], 'rating_group', 0)
  local legs, kinds = req[9], req[10]
  local payg = int(req[11], 'payg', 0)
  local block_kinds = req[12]
  local usage_at = num(req[13], 'usage_at_s')
  if type(block_kinds) ~= 'table' then fail('BADARG', 'block_kinds must be a list') end
  for _, k in ipairs(block_kinds) do str(k, 'block kind') end
  if type(context) ~= 'string' or #context == 0 then fail('BADARG', 'record context missing') end
  local first_byte = string.byte(context, 1)
  if (first_byte < 144 or first_byte > 159) and first_byte ~= 220 then
    fail('BADARG', 'record context must be a msgpack array')
  end
  check_legs(legs, kinds)
  local acct
  if accounts then
    local replay = idem_lookup(rcall('GET', idem_key), digest)
    if replay then return {1, replay} end
    acct = accounts[acct_key]
    if acct == nil then
      acct = load_account(rcall('GET', acct_key))
      accounts[acct_key] = acct
      accounts[#accounts + 1] = acct_key
    end
  else
    local got = rcall('MGET', idem_key, acct_key)
    local replay = idem_lookup(got[1], digest)
    if replay then return {1, replay} end
    acct = load_account(got[2])
  end
  local posted_before = acct[A_BALANCE] + acct[A_HELD]
  local bucket_before = bucket_snapshot(acct, req[14])
  local pays = pays_money(acct, payg, block_kinds, usage_at)
  local unit_buckets, money_buckets = eligible(acct, kinds, usage_at)
  local drawn, leg_out = {}, {}
  local total, bucket_total, retail_total, wholesale_total = 0, 0, 0, 0
  local leak_units, leak_money = 0, 0
  for j, leg in ipairs(legs) do
    local key, units, p = leg[1], leg[2], leg[3]
    local need, from_buckets = draw_units(unit_buckets, units, drawn)
    local cost, paid_units = 0, 0
    if need > 0 then
      cost = retail(p, need)
      paid_units = need
      local avail = 0
      if pays then avail = money_available(acct, money_buckets) end
      if cost > avail then
        paid_units = affordable(p, 0, avail)
        if paid_units < 0 or paid_units > need then paid_units = need end
        local paid = retail(p, paid_units)
        leak_units = leak_units + need - paid_units
        leak_money = leak_money + cost - paid
        cost = paid
      end
      if cost > 0 then take_money(acct, money_buckets, cost, false, drawn, true) end
    end
    local cost_wholesale = wholesale(p, units)
    total = total + units
    bucket_total = bucket_total + from_buckets
    retail_total = retail_total + cost
    wholesale_total = wholesale_total + cost_wholesale
    leg_out[j] = {key, units, cost, cost_wholesale, paid_units}
  end
  local balance = acct[A_BALANCE]
  local result = mp_pack({total, bucket_total, retail_total, wholesale_total, leak_units,
    leak_money, balance})
  local packed = mp_pack(record('usage', tenant, subscriber, '', op_id, service, rg, total,
    retail_total, wholesale_total, drawn, leak_units, leak_money, leg_out, now, balance, '',
    -retail_total))
  if not accounts then rcall('SET', acct_key, mp_pack(acct)) end
  rcall('XADD', stream_key, '*', 'r', '\220\0\19' .. ssub(packed, 4) .. context)
  if retail_total > 0 then
    emit_crossings(event_stream(stream_key), tenant, subscriber, op_id, now, posted_before,
      balance + acct[A_HELD], req[14])
  end
  emit_bucket_crossings(event_stream(stream_key), tenant, subscriber, op_id, now, acct,
    bucket_before, req[14])
  idem_store(idem_key, digest, result, ttl)
  return {0, result}
end
