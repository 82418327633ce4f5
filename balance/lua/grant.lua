-- grant.lua: a product activation in one step: charge its fee from the balance and add the
-- buckets of its bundles (an add-on purchase, a plan or add-on renewal). Either the fee is paid
-- and every bucket is granted, or nothing changes. Per bucket, ``carry`` says what happens to
-- the live buckets of the same kind already on the account (a renewal): 0 keep them, 1 expire
-- their remainder now, 2 roll their remainder over into the new bucket up to ``cap`` units
-- (the rest expires). Units held by open sessions stay where they are and settle as usual.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, product, fee,
--                  buckets_max, grants}
--   grants: list of {bucket_id, kind, unit, amount, priority, expires_at_s (0 never), carry, cap}
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_EXISTS (bucket id in use),
-- OCS_INSUFFICIENT (fee not covered), OCS_LIMIT (too many buckets).
local req = mp_unpack(ARGV[1])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local product = str(req[7], 'product')
local fee = int(req[8], 'fee', 0)
local buckets_max = int(req[9], 'buckets_max', 1)
local grants = req[10]
if type(grants) ~= 'table' or #grants == 0 or #grants > 64 then
  fail('BADARG', 'grants must list 1 to 64 buckets')
end
for i = 1, #grants do
  local g = grants[i]
  str(g[1], 'bucket_id', i); str(g[2], 'kind', i)
  if g[1] == '' or g[2] == '' then fail('BADARG', 'bucket id and kind must not be empty') end
  local unit = g[3]
  if unit ~= 'bytes' and unit ~= 'seconds' and unit ~= 'events' and unit ~= 'money' then
    fail('BADARG', 'unit must be bytes, seconds, events or money')
  end
  int(g[4], 'amount', 0, i); int(g[5], 'priority', nil, i); num(g[6], 'expires_at_s', i)
  int(g[7], 'carry', 0, i); int(g[8], 'cap', 0, i)
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
for i = 1, #grants do
  if find_bucket(acct, grants[i][1]) then fail('EXISTS', 'bucket id already in use') end
end
if fee > 0 and acct[A_BALANCE] - fee < -acct[A_LIMIT] then
  fail('INSUFFICIENT', 'balance does not cover the product fee')
end
-- What each grant carries over, and what the old buckets forfeit (computed before any write).
local carried, forfeits = {}, {}
for i = 1, #grants do
  local g = grants[i]
  carried[i] = 0
  if g[7] > 0 then
    for _, b in ipairs(acct[A_BUCKETS]) do
      if b[B_KIND] == g[2] and is_live(b, now) and b[B_REMAINING] > 0 then
        local keep = 0
        if g[7] == 2 then keep = min(b[B_REMAINING], g[8] - carried[i]) end
        carried[i] = carried[i] + keep
        forfeits[#forfeits + 1] = {b, b[B_REMAINING] - keep}
      end
    end
  end
end
local kept, dropped = {}, {}
for _, b in ipairs(acct[A_BUCKETS]) do
  if not is_live(b, now) and b[B_HELD] == 0 then dropped[#dropped + 1] = b else kept[#kept + 1] = b end
end
if #kept + #grants > buckets_max then fail('LIMIT', 'account has ' .. buckets_max .. ' buckets') end
-- Writes from here on.
for _, f in ipairs(forfeits) do
  local b, lost = f[1], f[2]
  b[B_REMAINING] = 0
  if b[B_HELD] == 0 then b[B_EXPIRES] = now end
  if lost > 0 then
    append_record(KEYS[3], record('expired', tenant, subscriber, '', op_id, b[B_KIND], 0, lost,
      0, 0, {{b[B_ID], lost}}, 0, 0, {}, now, acct[A_BALANCE], b[B_UNIT], 0))
  end
end
local final = {}
for _, b in ipairs(kept) do
  if is_live(b, now) or b[B_HELD] > 0 then final[#final + 1] = b else dropped[#dropped + 1] = b end
end
for _, b in ipairs(dropped) do
  if b[B_REMAINING] > 0 then
    append_record(KEYS[3], record('expired', tenant, subscriber, '', op_id, b[B_KIND], 0,
      b[B_REMAINING], 0, 0, {{b[B_ID], b[B_REMAINING]}}, 0, 0, {}, now, acct[A_BALANCE], b[B_UNIT], 0))
  end
end
acct[A_BALANCE] = acct[A_BALANCE] - fee
local last
for i = 1, #grants do
  local g = grants[i]
  local amount = g[4] + carried[i]
  final[#final + 1] = {g[1], g[2], g[3], amount, g[5], g[6], 0}
  local charged = i == 1 and fee or 0
  local rec = record('bucket', tenant, subscriber, '', op_id, g[2], 0, amount, charged, 0,
    {{g[1], amount}}, 0, 0, {}, now, acct[A_BALANCE], product, -charged)
  if i < #grants then append_record(KEYS[3], rec) else last = rec end
end
acct[A_BUCKETS] = final
return admin_finish(KEYS, acct, last, digest, ttl)
