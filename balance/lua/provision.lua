-- provision.lua: create a subscriber account.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (admin_finish
-- writes the change's event to the shard's event stream, derived from it)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, balance, credit_limit,
--                  state(0 active, 1 blocked, 2 provisioning: held until activate.lua)}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_EXISTS (the subscriber already has an account; a
-- deleted one is replaced: the number is created afresh).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local balance = int(req[7], 'balance')
local limit = int(req[8], 'credit_limit', 0)
local state = int(req[9], 'state', 0)
if state > 2 then fail('BADARG', 'state must be 0 (active), 1 (blocked) or 2 (provisioning)') end
if balance < -limit then fail('BADARG', 'balance below the credit limit') end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
if got[2] and mp_unpack(got[2])[A_STATE] ~= DELETED then
  fail('EXISTS', 'subscriber already has an account')
end
local acct = {1, state, balance, limit, 0, {}, {}, 0}
return admin_finish(KEYS, acct, record('provision', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {},
  0, 0, {}, now, 0, '', balance), digest, ttl, ctx)
