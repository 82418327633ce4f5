-- adjust.lua: operator correction of the balance (signed) and/or the credit limit, with a reason.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, delta, reason,
--                  credit_limit (-1 = unchanged)}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_INSUFFICIENT (the result would be
-- below zero for prepaid, below -credit_limit for postpaid).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local delta = int(req[7], 'delta')
local reason = str(req[8], 'reason')
local limit = int(req[9], 'credit_limit', -1)
if reason == '' then fail('BADARG', 'an adjustment needs a reason') end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if limit >= 0 then acct[A_LIMIT] = limit end
if acct[A_BALANCE] + delta < -acct[A_LIMIT] then
  fail('INSUFFICIENT', 'adjustment would take the balance below the credit limit')
end
acct[A_BALANCE] = acct[A_BALANCE] + delta
return admin_finish(KEYS, acct, record('adjust', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {}, 0, 0,
  {}, now, 0, reason, delta), digest, ttl, ctx)
