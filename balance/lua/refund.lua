-- refund.lua: give money and/or bucket units back (REFUND_ACCOUNT), with a record.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, amount, bucket_id,
--                  units, reason, session_id, service, rating_group}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG (nothing to refund, unknown bucket), OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local amount = int(req[7], 'amount', 0)
local bucket_id = str(req[8], 'bucket_id')
local units = int(req[9], 'units', 0)
local reason = str(req[10], 'reason')
local session_id, service = str(req[11], 'session_id'), str(req[12], 'service')
local rg = int(req[13], 'rating_group', 0)
if amount == 0 and units == 0 then fail('BADARG', 'nothing to refund') end
if units > 0 and bucket_id == '' then fail('BADARG', 'refunded units need a bucket id') end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
local drawn = {}
if units > 0 then
  local b = find_bucket(acct, bucket_id)
  if not b then fail('BADARG', 'no bucket ' .. bucket_id) end
  b[B_REMAINING] = b[B_REMAINING] + units
  drawn[1] = {bucket_id, units}
end
acct[A_BALANCE] = acct[A_BALANCE] + amount
return admin_finish(KEYS, acct, record('refund', tenant, subscriber, session_id, op_id, service, rg,
  units, -amount, 0, drawn, 0, 0, {}, now, 0, reason, amount), digest, ttl, ctx)
