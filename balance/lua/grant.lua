-- grant.lua: a product activation in one step: charge its fee from the balance and add the
-- buckets of its bundles (an add-on purchase, a plan or add-on renewal). Either the fee is paid
-- and every bucket is granted, or nothing changes. Per bucket, ``carry`` says what happens to
-- the live buckets of the same kind already on the account (a renewal): 0 keep them, 1 expire
-- their remainder now, 2 roll their remainder over into the new bucket up to ``cap`` units
-- (the rest expires). Units held by open sessions stay where they are and settle as usual.
-- A renewal (req[11] given) also names the cycle it pays for: it applies only while the
-- shard's renewal state still says that cycle is due (a second scheduler finds it renewed:
-- stale, nothing done), then moves the due index to the next cycle. An unpaid renewal puts the
-- subscriber in grace (first failure: until now + grace_s), past grace suspends (blocks) it,
-- and schedules a retry at retry_at; it stores no idempotency record, so the retry with the
-- same op id can still pay. A paid renewal of a suspended subscriber unblocks it.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (the events of the
-- records above, bundle_bought / _granted / _expired, blocked, unblocked, go to the shard's
-- event stream, derived from it: lib.lua event_stream);
-- renewal only: KEYS[4] shard due index (zset member -> due), KEYS[5] shard renewal state
-- (hash member -> msgpack {cycle_start, state 0 active 1 grace 2 suspended, grace_until,
-- anchor_s (kept as is), pending plan (change_plan.lua)}), KEYS[6] (a switch only) shard plan
-- hash (subscriber -> msgpack {plan, since_s, actor, op_id})
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, product, fee,
--                  buckets_max, grants, renewal}
--   grants: list of {bucket_id, kind, unit, amount, priority, expires_at_s (0 never), carry, cap}
--   renewal: nil, or {member, cycle_start, next_start, retry_at, grace_s, switch_member,
--            new_plan, old_plan}: the last three (optional) apply a plan change noted for this
--            cycle: the fee and grants are the new plan's; paid, the schedule moves to
--            switch_member and the plan hash names new_plan
-- ARGV[2] (optional) record context: msgpack RecordContext (balance/records.py), written as
--   field 19 of every record this call makes, byte for byte (never decoded here).
-- Returns {code, msgpack {balance, held_money, state, credit_limit}}: code 0 applied,
-- 1 replayed, 2 stale (that cycle is renewed already), 3 unpaid (grace or suspended).
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_EXISTS (bucket id in use),
-- OCS_INSUFFICIENT (fee not covered), OCS_LIMIT (too many buckets).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local product = str(req[7], 'product')
local fee = int(req[8], 'fee', 0)
local buckets_max = int(req[9], 'buckets_max', 1)
local grants = req[10]
local ren = req[11]
if type(grants) ~= 'table' or #grants > 64 or (#grants == 0 and ren == nil) then
  fail('BADARG', 'grants must list 1 to 64 buckets (0 only for a renewal)')
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
local member, cycle, carry_from
if ren ~= nil then
  member = str(ren[1], 'member')
  cycle = int(ren[2], 'cycle_start'); int(ren[3], 'next_start'); int(ren[4], 'retry_at')
  int(ren[5], 'grace_s', 0)
  if ren[6] ~= nil then str(ren[6], 'switch member'); str(ren[7], 'new plan'); str(ren[8], 'old plan') end
  carry_from = cycle  -- a late renewal still carries what expired at the cycle boundary
else
  carry_from = now
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
local st
if ren ~= nil then
  local raw = rcall('HGET', KEYS[5], member)
  if not raw then return {2, account_summary(acct)} end
  st = mp_unpack(raw)
  if st[1] ~= cycle then return {2, account_summary(acct)} end
end
for i = 1, #grants do
  if find_bucket(acct, grants[i][1]) then fail('EXISTS', 'bucket id already in use') end
end
if fee > 0 and acct[A_BALANCE] - fee < -acct[A_LIMIT] then
  if ren == nil then fail('INSUFFICIENT', 'balance does not cover the product fee') end
  local grace_until = st[3]
  if grace_until == 0 then grace_until = now + ren[5] end
  local state = 1
  if now >= grace_until then
    state = 2
    if acct[A_STATE] ~= BLOCKED then
      acct[A_STATE] = BLOCKED
      rcall('SET', KEYS[2], mp_pack(acct))
      local rec = record('block', tenant, subscriber, '', op_id, product, 0, 0, 0, 0,
        {}, 0, 0, {}, now, acct[A_BALANCE], 'renewal unpaid', 0)
      append_record(KEYS[3], rec, ctx)
      admin_event(KEYS[3], acct, rec)
    end
  end
  st[2], st[3] = state, grace_until  -- other fields (the anchor) are the caller's
  rcall('HSET', KEYS[5], member, mp_pack(st))
  rcall('ZADD', KEYS[4], ren[4], member)
  return {3, account_summary(acct)}
end
-- What each grant carries over, and what the old buckets forfeit (computed before any write).
local carried, forfeits = {}, {}
for i = 1, #grants do
  local g = grants[i]
  carried[i] = 0
  if g[7] > 0 then
    for _, b in ipairs(acct[A_BUCKETS]) do
      if b[B_KIND] == g[2] and (b[B_EXPIRES] == 0 or b[B_EXPIRES] >= carry_from)
          and b[B_REMAINING] > 0 then
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
      0, 0, {{b[B_ID], lost}}, 0, 0, {}, now, acct[A_BALANCE], b[B_UNIT], 0), ctx)
    emit_event(event_stream(KEYS[3]), 'bundle_expired', tenant, subscriber, op_id, now,
      {bucket = b[B_ID], kind = b[B_KIND], unit = b[B_UNIT], remaining = lost})
  end
end
local final = {}
for _, b in ipairs(kept) do
  if is_live(b, now) or b[B_HELD] > 0 then final[#final + 1] = b else dropped[#dropped + 1] = b end
end
for _, b in ipairs(dropped) do
  if b[B_REMAINING] > 0 then
    append_record(KEYS[3], record('expired', tenant, subscriber, '', op_id, b[B_KIND], 0,
      b[B_REMAINING], 0, 0, {{b[B_ID], b[B_REMAINING]}}, 0, 0, {}, now, acct[A_BALANCE], b[B_UNIT], 0),
      ctx)
    emit_event(event_stream(KEYS[3]), 'bundle_expired', tenant, subscriber, op_id, now,
      {bucket = b[B_ID], kind = b[B_KIND], unit = b[B_UNIT], remaining = b[B_REMAINING]})
  end
end
acct[A_BALANCE] = acct[A_BALANCE] - fee
-- A renewal of a product without buckets still records its fee.
local last = record('bucket', tenant, subscriber, '', op_id, product, 0, 0, fee, 0, {}, 0, 0, {},
  now, 0, product, -fee)
for i = 1, #grants do
  local g = grants[i]
  local amount = g[4] + carried[i]
  final[#final + 1] = {g[1], g[2], g[3], amount, g[5], g[6], 0, amount}
  index_bucket_expiry(KEYS[3], subscriber, g[1], g[6])
  local charged = i == 1 and fee or 0
  local rec = record('bucket', tenant, subscriber, '', op_id, g[2], 0, amount, charged, 0,
    {{g[1], amount}}, 0, 0, {}, now, acct[A_BALANCE], product, -charged)
  if i < #grants then
    append_record(KEYS[3], rec, ctx)
    admin_event(KEYS[3], acct, rec)  -- the last one's event: admin_finish
  else
    last = rec
  end
end
acct[A_BUCKETS] = final
if ren ~= nil then
  if st[2] == 2 and acct[A_STATE] == BLOCKED then
    -- Suspended for this unpaid renewal, now paid: service again.
    acct[A_STATE] = ACTIVE
    local rec = record('unblock', tenant, subscriber, '', op_id, product, 0, 0, 0, 0,
      {}, 0, 0, {}, now, acct[A_BALANCE], 'renewal paid', 0)
    append_record(KEYS[3], rec, ctx)
    admin_event(KEYS[3], acct, rec)
  end
  st[1], st[2], st[3] = ren[3], 0, 0
  local switch_to = ren[6]
  if switch_to ~= nil then
    -- A plan change noted for this cycle (change_plan.lua): the cycle was paid at the new
    -- plan's fee with its buckets; the schedule and the shard's plan hash move to it.
    rcall('HDEL', KEYS[5], member)
    rcall('ZREM', KEYS[4], member)
    member = switch_to
    st = {st[1], 0, 0, st[4]}
    rcall('HSET', KEYS[6], subscriber, mp_pack({ren[7], now, 'renewal', op_id}))
    local rec = record('plan', tenant, subscriber, '', op_id, ren[7], 0, 0, 0, 0, {}, 0, 0, {},
      now, acct[A_BALANCE], ren[8] .. ' -> ' .. ren[7] .. ' (next cycle) by renewal', 0)
    append_record(KEYS[3], rec, ctx)
    emit_event(event_stream(KEYS[3]), 'plan_changed', tenant, subscriber, op_id, now,
      {from = ren[8], to = ren[7], actor = 'renewal', charge = fee, credit = 0, at_s = cycle})
  end
  rcall('HSET', KEYS[5], member, mp_pack(st))
  rcall('ZADD', KEYS[4], ren[3], member)
end
return admin_finish(KEYS, acct, last, digest, ttl, ctx)
