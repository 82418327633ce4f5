-- state.lua: block or unblock an account (a blocked account gets no new grants; usage already
-- granted is still committed).
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, state(0/1), reason}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local state = int(req[7], 'state', 0)
local reason = str(req[8], 'reason')
if state > 1 then fail('BADARG', 'state must be 0 (active) or 1 (blocked)') end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
acct[A_STATE] = state
local kind = 'unblock'
if state == BLOCKED then kind = 'block' end
return admin_finish(KEYS, acct, record(kind, tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {}, 0, 0,
  {}, now, 0, reason, 0), digest, ttl, ctx)
