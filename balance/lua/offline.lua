-- offline.lua: usage already consumed (an offline xDR record), committed without a session.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (the shard's
-- event stream, derived from it, gets the depleted / negative / balance_below crossings)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, service, rating_group,
--                  legs, kinds, payg(0/1), block_kinds, usage_at_s, balance_below (optional:
--                  notification levels, micro-units)}
--   leg = {leg_key, units, price}; usage_at_s = when the usage happened: the bundles live then
--   are the ones that pay (as they would have online).
-- ARGV[2] record context: msgpack RecordContext (balance/records.py), never decoded here: it
--   becomes field 19 of the record byte for byte (an 18-field record packs as array16
--   0xdc 0x00 0x12; the 19-field one is that header with 0x13, the same body, then the
--   context). It travels apart from the request, so it is not in the digest: the same record
--   found again in another file (another file:line) is a replay, not a conflict.
-- The usage is never refused: per leg, live buckets of the kinds pay first, then (payg) money
-- at the leg's price as far as the balance (plus credit limit) goes; what is left unpaid is
-- leakage (units and money) on the record. A blocked account is charged all the same: the
-- service was consumed. Each leg is priced on its own from zero, as one online session leg is.
-- Returns {replayed, msgpack {units, bucket_units, retail, wholesale, leakage_units,
--          leakage_money, balance}}.
-- Errors: OCS_BADARG, OCS_CONFLICT (the op id was used with other content),
-- OCS_UNKNOWN_ACCOUNT (all before any write).
local req = mp_unpack(ARGV[1])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local service = str(req[7], 'service')
local rg = int(req[8], 'rating_group', 0)
local legs, kinds = req[9], req[10]
local payg = int(req[11], 'payg', 0)
local block_kinds = req[12]
local usage_at = num(req[13], 'usage_at_s')
local context = ARGV[2]
if type(block_kinds) ~= 'table' then fail('BADARG', 'block_kinds must be a list') end
for _, k in ipairs(block_kinds) do str(k, 'block kind') end
if type(context) ~= 'string' or #context == 0 then fail('BADARG', 'record context missing') end
local first_byte = string.byte(context, 1)
if (first_byte < 144 or first_byte > 159) and first_byte ~= 220 then
  fail('BADARG', 'record context must be a msgpack array')
end
if type(legs) ~= 'table' or #legs == 0 or #legs > 16 then fail('BADARG', 'legs: 1 to 16') end
if type(kinds) ~= 'table' then fail('BADARG', 'kinds must be a list') end
for _, k in ipairs(kinds) do str(k, 'kind') end
for j, leg in ipairs(legs) do
  str(leg[1], 'key', 1, j)
  int(leg[2], 'units', 0, 1, j)
  check_price(leg[3], 'price', 1, j)
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
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
rcall('SET', KEYS[2], mp_pack(acct))
rcall('XADD', KEYS[3], '*', 'r', '\220\0\19' .. ssub(packed, 4) .. context)
if retail_total > 0 then
  emit_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, posted_before,
    balance + acct[A_HELD], req[14])
end
emit_bucket_crossings(event_stream(KEYS[3]), tenant, subscriber, op_id, now, acct, bucket_before,
  req[14])
idem_store(KEYS[1], digest, result, ttl)
return {0, result}
