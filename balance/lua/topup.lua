-- topup.lua: add money to the monetary balance.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, amount (>0), reason}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local amount = int(req[7], 'amount', 1)
local reason = str(req[8], 'reason')
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
acct[A_BALANCE] = acct[A_BALANCE] + amount
return admin_finish(KEYS, acct, record('topup', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {}, 0, 0,
  {}, now, 0, reason, amount), digest, ttl, ctx)
