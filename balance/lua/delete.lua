-- delete.lua: delete a subscriber. The account stays, in state DELETED, for its records and
-- the usage already granted (a CCR commits it, grants nothing); every other operation answers
-- it as unknown, and provision.lua may create the number afresh; its renewals stop.
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
-- Its plans and add-ons stop renewing: its members leave the shard's renewal index
-- (balance/products.py due_key / state_key; derived from the record stream as the event stream
-- is, so the same slot). The index holds the shard's members only: a bounded scan.
local base = ssub(KEYS[3], 1, #KEYS[3] - 4)
local cursor = '0'
repeat
  local page = rcall('ZSCAN', base .. ':rn:due', cursor, 'MATCH', subscriber .. '|*', 'COUNT', 500)
  cursor = page[1]
  for k = 1, #page[2], 2 do
    rcall('ZREM', base .. ':rn:due', page[2][k])
    rcall('HDEL', base .. ':rn:st', page[2][k])
  end
until cursor == '0'
return admin_finish(KEYS, acct, record('delete', tenant, subscriber, '', op_id, '', 0, 0, 0, 0, {},
  0, 0, {}, now, 0, reason, 0), digest, ttl, ctx)
