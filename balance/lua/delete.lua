-- delete.lua: delete a subscriber. The account stays, in state DELETED, for its records and
-- the usage already granted (a CCR commits it, grants nothing); every other operation answers
-- it as unknown, and provision.lua may create the number afresh. Its reservation deadline
-- leaves the shard's expiry index only when it holds nothing.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (admin_finish
-- writes the 'deleted' event to the shard's event stream, derived from it)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, reason}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT (none, or deleted already).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local reason = str(req[7], 'reason')
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
acct[A_VERSION] = acct[A_VERSION] + 1
acct[A_STATE] = DELETED
return admin_finish(KEYS, acct, record('delete', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {},
  0, 0, {}, now, 0, reason, 0), digest, ttl, ctx)
