-- change_plan.lua: a subscriber's plan change, recorded with its actor, in one call.
-- Immediately (at_cycle 0): charge the new plan's (prorated) fee net of the old plan's credit
-- (a negative net is credited), apply the tenant's rule to the old plan's buckets, grant the
-- new plan's buckets, move the renewal schedule from the old plan to the new one and note the
-- plan in the shard's plan hash: either all of it or nothing.
-- At the next cycle (at_cycle 1): note the new plan on the old plan's renewal state (field 5);
-- the renewal of that cycle applies it (grant.lua with a switch). Changing to the current plan
-- at the next cycle cancels a noted change.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (events go to the
-- shard's event stream derived from it: lib.lua event_stream), KEYS[4] shard due index,
-- KEYS[5] shard renewal state (member -> msgpack {cycle_start, state, grace_until, anchor_s,
-- pending plan (optional)}), KEYS[6] shard plan hash (subscriber -> msgpack {plan, since_s,
-- actor, op_id}: a plan other than the catalog's)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, from_plan, to_plan,
--   at_cycle (0/1), actor, old_member ('' = the old plan does not recur), old_cycle_start,
--   charge, credit, rule (0 keep, 1 expire, 2 replace), old_kinds, grants, buckets_max,
--   new_member ('' = the new plan does not recur), new_next_start, new_anchor}
--   grants: list of {bucket_id, kind, unit, amount, priority, expires_at_s (0 never)}
-- ARGV[2] (optional) record context: msgpack RecordContext, written on every record byte for byte
-- Returns {code, msgpack {balance, held_money, state, credit_limit}}: code 0 applied, 1 replayed,
-- 2 nothing to do (an immediate change to the plan the subscriber is on; nothing stored).
-- Errors: OCS_BADARG, OCS_CONFLICT (op id reused with other content; the subscriber is not on
-- from_plan; the old plan renewed since the fees were computed), OCS_UNKNOWN_ACCOUNT,
-- OCS_BLOCKED (the current plan's renewal is unpaid), OCS_EXISTS (bucket id in use),
-- OCS_INSUFFICIENT (the net fee is not covered), OCS_LIMIT (too many buckets).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local from_plan, to_plan = str(req[7], 'from_plan'), str(req[8], 'to_plan')
local at_cycle = int(req[9], 'at_cycle', 0)
local actor = str(req[10], 'actor')
local old_member = str(req[11], 'old_member')
local old_cycle = int(req[12], 'old_cycle_start', 0)
local charge, credit = int(req[13], 'charge', 0), int(req[14], 'credit', 0)
local rule = int(req[15], 'rule', 0)
local old_kinds, grants = req[16], req[17]
local buckets_max = int(req[18], 'buckets_max', 1)
local new_member = str(req[19], 'new_member')
local new_next, new_anchor = int(req[20], 'new_next_start', 0), int(req[21], 'new_anchor', 0)
if to_plan == '' or actor == '' or rule > 2 or at_cycle > 1 then
  fail('BADARG', 'to_plan and actor must not be empty; rule 0-2; at_cycle 0/1')
end
if type(old_kinds) ~= 'table' or type(grants) ~= 'table' or #grants > 64 then
  fail('BADARG', 'old_kinds must be a list, grants 0 to 64 buckets')
end
for _, k in ipairs(old_kinds) do str(k, 'old kind') end
for i = 1, #grants do
  local g = grants[i]
  str(g[1], 'bucket_id', i); str(g[2], 'kind', i); str(g[3], 'unit', i)
  int(g[4], 'amount', 0, i); int(g[5], 'priority', nil, i); num(g[6], 'expires_at_s', i)
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if at_cycle == 0 and from_plan == to_plan then return {2, account_summary(acct)} end
local current = rcall('HGET', KEYS[6], subscriber)
if current and mp_unpack(current)[1] ~= from_plan then
  fail('CONFLICT', 'the subscriber is no longer on plan ' .. from_plan)
end
local st
if old_member ~= '' then
  local raw = rcall('HGET', KEYS[5], old_member)
  if raw then
    st = mp_unpack(raw)
    if st[1] ~= old_cycle then fail('CONFLICT', 'the plan renewed meanwhile: compute again') end
    if st[2] ~= 0 then fail('BLOCKED', 'the current plan has an unpaid renewal') end
  end
end
local how = at_cycle == 1 and 'next cycle' or 'now'
local plan_rec = record('plan', tenant, subscriber, '', op_id, to_plan, 0, 0, 0, 0, {}, 0, 0,
  {}, now, 0, from_plan .. ' -> ' .. to_plan .. ' (' .. how .. ') by ' .. actor, 0)
local payload = {from = from_plan, to = to_plan, actor = actor, charge = charge,
  credit = credit}
if at_cycle == 1 then
  if st == nil then fail('BADARG', 'a change at the next cycle needs a recurring current plan') end
  if to_plan == from_plan then st[5] = nil else st[5] = to_plan end
  rcall('HSET', KEYS[5], old_member, mp_pack(st))
  payload.at_s = st[1]
  emit_event(event_stream(KEYS[3]), 'plan_changed', tenant, subscriber, op_id, now, payload)
  return admin_finish(KEYS, acct, plan_rec, digest, ttl, ctx)
end
local net = charge - credit
if net > 0 and acct[A_BALANCE] - net < -acct[A_LIMIT] then
  fail('INSUFFICIENT', 'balance does not cover the plan change')
end
for i = 1, #grants do
  if find_bucket(acct, grants[i][1]) then fail('EXISTS', 'bucket id already in use') end
end
-- The old plan's live buckets, by the rule (computed before any write).
local moves = {}
if rule > 0 then
  for _, b in ipairs(acct[A_BUCKETS]) do
    if is_live(b, now) and b[B_REMAINING] > 0 then
      for _, k in ipairs(old_kinds) do
        if b[B_KIND] == k then
          local into = nil
          if rule == 2 then
            for i = 1, #grants do
              if grants[i][3] == b[B_UNIT] then into = i break end
            end
          end
          moves[#moves + 1] = {b, into}
          break
        end
      end
    end
  end
end
local final, dropped = {}, {}
for _, b in ipairs(acct[A_BUCKETS]) do
  if is_live(b, now) or b[B_HELD] > 0 then final[#final + 1] = b else dropped[#dropped + 1] = b end
end
if #final + #grants > buckets_max then fail('LIMIT', 'account has ' .. buckets_max .. ' buckets') end
-- Writes from here on.
local carried = {}
for i = 1, #grants do carried[i] = 0 end
for _, m in ipairs(moves) do
  local b, into = m[1], m[2]
  local left = b[B_REMAINING]
  b[B_REMAINING] = 0
  if b[B_HELD] == 0 then b[B_EXPIRES] = now end
  if into then
    carried[into] = carried[into] + left
  else
    dropped[#dropped + 1] = {b[B_ID], b[B_KIND], b[B_UNIT], left}
  end
end
for _, b in ipairs(dropped) do
  if b[B_REMAINING] > 0 then
    append_record(KEYS[3], record('expired', tenant, subscriber, '', op_id, b[B_KIND], 0,
      b[B_REMAINING], 0, 0, {{b[B_ID], b[B_REMAINING]}}, 0, 0, {}, now, acct[A_BALANCE],
      b[B_UNIT], 0), ctx)
    emit_event(event_stream(KEYS[3]), 'bundle_expired', tenant, subscriber, op_id, now,
      {bucket = b[B_ID], kind = b[B_KIND], unit = b[B_UNIT], remaining = b[B_REMAINING]})
  end
end
acct[A_BALANCE] = acct[A_BALANCE] - net
for i = 1, #grants do
  local g = grants[i]
  local amount = g[4] + carried[i]
  final[#final + 1] = {g[1], g[2], g[3], amount, g[5], g[6], 0}
  local rec = record('bucket', tenant, subscriber, '', op_id, g[2], 0, amount, 0, 0,
    {{g[1], amount}}, 0, 0, {}, now, acct[A_BALANCE], 'plan:' .. to_plan, 0)
  append_record(KEYS[3], rec, ctx)
  admin_event(KEYS[3], acct, rec)
end
acct[A_BUCKETS] = final
if st ~= nil then
  rcall('HDEL', KEYS[5], old_member)
  rcall('ZREM', KEYS[4], old_member)
end
if new_member ~= '' then
  rcall('HSET', KEYS[5], new_member, mp_pack({new_next, 0, 0, new_anchor}))
  rcall('ZADD', KEYS[4], new_next, new_member)
end
rcall('HSET', KEYS[6], subscriber, mp_pack({to_plan, now, actor, op_id}))
plan_rec[9], plan_rec[18] = charge, -net
payload.at_s = now
emit_event(event_stream(KEYS[3]), 'plan_changed', tenant, subscriber, op_id, now, payload)
return admin_finish(KEYS, acct, plan_rec, digest, ttl, ctx)
