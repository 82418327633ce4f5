-- activate.lua: release a provisioning hold once the host MNO confirmed the subscriber (the
-- dispatcher calls it when the confirming plug-in answered ok). Only PROVISIONING becomes
-- ACTIVE: a confirmation for an account that is active, blocked or was never held changes
-- nothing and writes nothing (no event), so a redelivered confirmation is harmless.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (admin_finish
-- writes the 'activated' event to the shard's event stream, derived from it)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, reason}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local reason = str(req[7], 'reason')
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if acct[A_STATE] ~= PROVISIONING then return {0, account_summary(acct)} end
acct[A_STATE] = ACTIVE
return admin_finish(KEYS, acct, record('activate', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {},
  0, 0, {}, now, 0, reason, 0), digest, ttl, ctx)
