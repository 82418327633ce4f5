-- debit_many.lua: an event's direct debits (CCR-EVENT with several MSCCs, or one SMS to several
-- recipients), each item all or nothing, the whole request in one call with one idempotency
-- record.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (the shard's event
-- stream, derived from it, gets the depleted / negative / balance_below crossings),
-- KEYS[3 + i] (optional, one per item or none) item i's refund record, as debit.lua's KEYS[4]:
--         {units, money, refunded_units, unit_draws {bucket_id, units, returned}} for
--         refund_debit.lua, kept for idem_ttl_s
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, session_id, items,
--                  balance_below (optional: notification levels, micro-units)}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
--   item = {service, rating_group, legs, kinds, payg(0/1), block_kinds (list, may be empty)}
--   leg  = {leg_key, units, price}: as debit.lua, each leg priced on its own (connect fee and
--          minimum apply per leg: one leg per SMS recipient).
-- Items are applied in order, earlier items drawing first. An item that the buckets and money
-- cannot pay in full is left out entirely (its draws undone) and the next items still apply.
-- Each applied item writes one 'debit' record, op id "<op_id>:<item index - 1>".
-- Returns {replayed, msgpack {items, balance, held_money}}, items[i] = {status, units,
--   bucket_units, retail, wholesale}; status 0 debited, 1 insufficient (nothing taken).
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_BLOCKED (the whole request).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local session_id = str(req[7], 'session_id')
local items = req[8]
if type(items) ~= 'table' or #items == 0 or #items > 32 then fail('BADARG', 'items: 1 to 32') end
for i, item in ipairs(items) do
  if type(item) ~= 'table' then fail('BADARG', 'item ' .. i .. ' must be a list') end
  str(item[1], 'service', i)
  int(item[2], 'rating_group', 0, i)
  local legs, kinds, block_kinds = item[3], item[4], item[6]
  if type(legs) ~= 'table' or #legs == 0 or #legs > 16 then fail('BADARG', 'legs: 1 to 16') end
  if type(kinds) ~= 'table' then fail('BADARG', 'kinds must be a list') end
  for _, k in ipairs(kinds) do str(k, 'kind', i) end
  if type(block_kinds) ~= 'table' then fail('BADARG', 'block_kinds must be a list') end
  for _, k in ipairs(block_kinds) do str(k, 'block kind', i) end
  int(item[5], 'payg', 0, i)
  for j, leg in ipairs(legs) do
    str(leg[1], 'key', i, j)
    int(leg[2], 'units', 0, i, j)
    check_price(leg[3], 'price', i, j)
  end
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if acct[A_STATE] ~= ACTIVE then fail('BLOCKED', 'account is blocked or held') end
local buckets = acct[A_BUCKETS]
local posted_before = acct[A_BALANCE] + acct[A_HELD]
local bucket_before = bucket_snapshot(acct, req[9])

-- Everything an item may change, to put back when it cannot be paid in full.
local function snapshot()
  local remaining = {}
  for k = 1, #buckets do remaining[k] = buckets[k][B_REMAINING] end
  return {acct[A_BALANCE], remaining}
end

local function restore(saved)
  acct[A_BALANCE] = saved[1]
  for k = 1, #buckets do buckets[k][B_REMAINING] = saved[2][k] end
end

local out, records, refunds = {}, {}, {}
for i, item in ipairs(items) do
  local service, rg, legs, kinds = item[1], item[2], item[3], item[4]
  local payg = pays_money(acct, item[5], item[6], now) and 1 or 0
  local unit_buckets, money_buckets = eligible(acct, kinds, now)
  local saved = snapshot()
  local drawn, leg_out, unit_draws = {}, {}, {}
  local total, from_buckets_total, retail_total, wholesale_total = 0, 0, 0, 0
  local paid = true
  for _, leg in ipairs(legs) do
    local key, units, p = leg[1], leg[2], leg[3]
    local first_draw = #drawn + 1
    local need, from_buckets = draw_units(unit_buckets, units, drawn)
    for k = first_draw, #drawn do unit_draws[#unit_draws + 1] = {drawn[k][1], drawn[k][2], 0} end
    local cost = 0
    if need > 0 then
      cost = retail(p, need)
      if payg ~= 1 or cost > money_available(acct, money_buckets) then
        paid = false
        break
      end
      for _, m in ipairs(take_money(acct, money_buckets, cost, false, {})) do
        if m[1] ~= '' then drawn[#drawn + 1] = {m[1], m[2]} end
      end
    end
    local cost_wholesale = wholesale(p, units)
    total = total + units
    from_buckets_total = from_buckets_total + from_buckets
    retail_total = retail_total + cost
    wholesale_total = wholesale_total + cost_wholesale
    leg_out[#leg_out + 1] = {key, units, cost, cost_wholesale, need}
  end
  if paid then
    out[i] = {0, total, from_buckets_total, retail_total, wholesale_total}
    records[#records + 1] = record('debit', tenant, subscriber, session_id,
      op_id .. ':' .. (i - 1), service, rg, total, retail_total, wholesale_total, drawn, 0, 0,
      leg_out, now, acct[A_BALANCE], '', -retail_total)
    if KEYS[3 + i] then
      refunds[#refunds + 1] = {KEYS[3 + i], mp_pack({total, retail_total, 0, unit_draws})}
    end
  else
    restore(saved)
    out[i] = {1, 0, 0, 0, 0}
  end
end
local result = mp_pack({out, acct[A_BALANCE], acct[A_HELD]})
if #records > 0 then
  rcall('SET', KEYS[2], mp_pack(acct))
  for _, rec in ipairs(records) do append_record(KEYS[3], rec, ctx) end
  for _, r in ipairs(refunds) do rcall('SET', r[1], r[2], 'EX', ttl) end
  local posted = acct[A_BALANCE] + acct[A_HELD]
  if posted < posted_before then
    emit_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, posted_before, posted,
      req[9])
  end
  emit_bucket_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, acct, bucket_before,
    req[9])
end
idem_store(KEYS[1], digest, result, ttl)
return {0, result}
