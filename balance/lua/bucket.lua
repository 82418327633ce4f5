-- bucket.lua: add a bundle allowance (a bucket), optionally charging its fee from the balance in
-- the same step (a bundle purchase). Expired buckets that hold nothing are dropped here (each
-- with an 'expired' record), which keeps the bucket list bounded.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (the shard's event
-- stream is derived from it: a 'bundle_expired' event per dropped bucket, 'bundle_granted'/'_bought')
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, bucket_id, kind, unit,
--                  amount, priority, expires_at_s (0 never), fee, buckets_max}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_EXISTS (bucket id in use),
-- OCS_INSUFFICIENT (fee not covered), OCS_LIMIT (too many buckets).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local id, kind, unit = str(req[7], 'bucket_id'), str(req[8], 'kind'), str(req[9], 'unit')
local amount = int(req[10], 'amount', 0)
local priority = int(req[11], 'priority')
local expires = num(req[12], 'expires_at_s')
local fee = int(req[13], 'fee', 0)
local buckets_max = int(req[14], 'buckets_max', 1)
if id == '' or kind == '' then fail('BADARG', 'bucket id and kind must not be empty') end
if unit ~= 'bytes' and unit ~= 'seconds' and unit ~= 'events' and unit ~= 'money' then
  fail('BADARG', 'unit must be bytes, seconds, events or money')
end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if find_bucket(acct, id) then fail('EXISTS', 'bucket id already in use') end
if fee > 0 and acct[A_BALANCE] - fee < -acct[A_LIMIT] then
  fail('INSUFFICIENT', 'balance does not cover the bundle fee')
end
local kept, dropped = {}, {}
for _, b in ipairs(acct[A_BUCKETS]) do
  if not is_live(b, now) and b[B_HELD] == 0 then dropped[#dropped + 1] = b else kept[#kept + 1] = b end
end
if #kept >= buckets_max then fail('LIMIT', 'account has ' .. buckets_max .. ' buckets') end
kept[#kept + 1] = {id, kind, unit, amount, priority, expires, 0, amount}
index_bucket_expiry(KEYS[3], subscriber, id, expires)
acct[A_BUCKETS] = kept
acct[A_BALANCE] = acct[A_BALANCE] - fee
for _, b in ipairs(dropped) do
  append_record(KEYS[3], record('expired', tenant, subscriber, '', op_id, b[B_KIND], 0,
    b[B_REMAINING], 0, 0, {{b[B_ID], b[B_REMAINING]}}, 0, 0, {}, now, acct[A_BALANCE], b[B_UNIT], 0),
    ctx)
  emit_event(event_stream(KEYS[3]), 'bundle_expired', tenant, subscriber, op_id, now,
    {bucket = b[B_ID], kind = b[B_KIND], unit = b[B_UNIT], remaining = b[B_REMAINING]})
end
return admin_finish(KEYS, acct, record('bucket', tenant, subscriber, '', op_id, kind, 0, amount, fee, 0,
  {{id, amount}}, 0, 0, {}, now, 0, unit, -fee), digest, ttl, ctx)
