-- debit.lua: event charging (direct debiting): charge units at once, all or nothing, with a record.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (the shard's event
-- stream, derived from it, gets the depleted / negative / balance_below crossings),
-- KEYS[4] (optional) the refund record a later REFUND_ACCOUNT refers to (refund_debit.lua):
--         {units, money, refunded_units, unit_draws {bucket_id, units, returned}}, kept for
--         idem_ttl_s like the debit's own idempotency record
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, service, rating_group,
--                  session_id, legs, kinds, payg(0/1), block_kinds (optional: {} = none),
--                  balance_below (optional: notification levels, micro-units)}
--   leg = {leg_key, units, price}; with payg 0 and block_kinds, only a live bucket of those
--   kinds stops money from paying
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Units are drawn from live buckets of the kinds in order, then (payg) money at each leg's price
-- (an event is priced on its own: base 0, connect fee and minimum apply).
-- Returns {replayed, msgpack {units, bucket_units, retail, wholesale, balance, held_money}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_BLOCKED, OCS_INSUFFICIENT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local service = str(req[7], 'service')
local rg = int(req[8], 'rating_group', 0)
local session_id = str(req[9], 'session_id')
local legs, kinds = req[10], req[11]
local payg = int(req[12], 'payg', 0)
local block_kinds = req[13]
if block_kinds ~= nil then
  if type(block_kinds) ~= 'table' then fail('BADARG', 'block_kinds must be a list') end
  for _, k in ipairs(block_kinds) do str(k, 'block kind') end
end
check_legs(legs, kinds)
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if acct[A_STATE] ~= ACTIVE then fail('BLOCKED', 'account is blocked or held') end
payg = pays_money(acct, payg, block_kinds, now) and 1 or 0
local unit_buckets, money_buckets = eligible(acct, kinds, now)
local bucket_before = bucket_snapshot(acct, req[14])
local drawn, leg_out, unit_draws = {}, {}, {}
local total, from_buckets_total, retail_total, wholesale_total = 0, 0, 0, 0
for _, leg in ipairs(legs) do
  local key, units, p = leg[1], leg[2], leg[3]
  local first_draw = #drawn + 1
  local need, from_buckets = draw_units(unit_buckets, units, drawn)
  for k = first_draw, #drawn do unit_draws[#unit_draws + 1] = {drawn[k][1], drawn[k][2], 0} end
  local cost = 0
  if need > 0 then
    if payg ~= 1 then fail('INSUFFICIENT', 'allowances do not cover the event') end
    cost = retail(p, need)
    if cost > money_available(acct, money_buckets) then
      fail('INSUFFICIENT', 'balance does not cover the event')
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
local result = mp_pack({total, from_buckets_total, retail_total, wholesale_total,
  acct[A_BALANCE], acct[A_HELD]})
rcall('SET', KEYS[2], mp_pack(acct))
append_record(KEYS[3], record('debit', tenant, subscriber, session_id, op_id, service, rg, total,
  retail_total, wholesale_total, drawn, 0, 0, leg_out, now, acct[A_BALANCE], '', -retail_total), ctx)
if retail_total > 0 then
  local after = acct[A_BALANCE] + acct[A_HELD]
  emit_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, after + retail_total,
    after, req[14])
end
emit_bucket_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, acct, bucket_before,
  req[14])
idem_store(KEYS[1], digest, result, ttl)
if KEYS[4] then
  rcall('SET', KEYS[4], mp_pack({total, retail_total, 0, unit_draws}), 'EX', ttl)
end
return {0, result}
