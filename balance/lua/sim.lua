-- sim.lua: a SIM swap: the subscriber's new IMSI, recorded and announced in one call (the host
-- MNO's HLR must learn it). With hold 1 an active account is held in provisioning (no grants)
-- until the host MNO confirms the new SIM (activate.lua).
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream (admin_finish
-- writes the 'sim_swapped' event to the shard's event stream, derived from it)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, imsi, previous_imsi
--                  ("" unknown), hold (0/1)}
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the records as is
-- Returns {replayed, msgpack {balance, held_money, state, credit_limit}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT.
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local imsi, previous = str(req[7], 'imsi'), str(req[8], 'previous_imsi')
local hold = int(req[9], 'hold', 0)
if imsi == '' or #imsi > 15 then fail('BADARG', 'imsi must have 1 to 15 digits') end
if hold > 1 then fail('BADARG', 'hold must be 0 or 1') end
local got = rcall('MGET', KEYS[1], KEYS[2])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
acct[A_VERSION] = acct[A_VERSION] + 1
if hold == 1 and acct[A_STATE] == ACTIVE then acct[A_STATE] = PROVISIONING end
-- The record's service field carries the previous IMSI, its reason the new one.
return admin_finish(KEYS, acct, record('sim_swap', tenant, subscriber, '', op_id, previous, 0, 0,
  0, 0, {}, 0, 0, {}, now, 0, imsi, 0), digest, ttl, ctx)
