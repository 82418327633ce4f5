-- refund_debit.lua: REFUND_ACCOUNT of a prior event debit, never more than that debit took.
-- KEYS[1] idempotency record, KEYS[2] account, KEYS[3] shard record stream,
-- KEYS[4] the debit's refund record {t:<tenant>:<vshard>}:dr:<subscriber>:<ref> (debit.lua
--         writes it, with the debit's idempotency TTL: a refund is accepted within that window)
-- ARGV[1] msgpack {op_id, digest, tenant, subscriber, now_s, idem_ttl_s, units, reason,
--                  session_id, service, rating_group}
--   units: how many of the debit's units to give back (capped at what is left of it).
-- The debit's money and bucket units come back in proportion to the units refunded, rounded so
-- that all refunds of a debit together return exactly what it took: money to the balance,
-- units to the buckets they came from (latest draw first; a bucket gone since is skipped).
-- ARGV[2] (optional) record context: msgpack RecordContext, copied onto the record as is
-- Returns {replayed, msgpack {units, money, balance, held_money}}.
-- Errors: OCS_BADARG, OCS_CONFLICT, OCS_UNKNOWN_ACCOUNT, OCS_NO_DEBIT (no such debit within
-- the window, or refunded in full already).
local req = mp_unpack(ARGV[1])
local ctx = record_context(ARGV[2])
local op_id, digest, tenant, subscriber, now, ttl = admin_args(req)
local units = int(req[7], 'units', 1)
local reason = str(req[8], 'reason')
local session_id, service = str(req[9], 'session_id'), str(req[10], 'service')
local rg = int(req[11], 'rating_group', 0)
local got = rcall('MGET', KEYS[1], KEYS[2], KEYS[4])
local replay = idem_lookup(got[1], digest)
if replay then return {1, replay} end
local acct = load_account(got[2])
if not got[3] then
  fail('NO_DEBIT', 'no debit to refund (unknown, or older than the idempotency window)')
end
local debit = mp_unpack(got[3])
local total, money, done, draws = debit[1], debit[2], debit[3], debit[4]
if done >= total then fail('NO_DEBIT', 'the debit was refunded in full already') end
if units > total - done then units = total - done end
local after = done + units

-- floor(x * n / total) for 0 <= x <= total, without x * n (n may be large money).
local function share(x, n)
  local q = floor(n / total)
  return x * q + floor(x * (n - q * total) / total)
end

local money_back = share(after, money) - share(done, money)
local drawn_units = 0
for k = 1, #draws do drawn_units = drawn_units + draws[k][2] end
local units_back = share(after, drawn_units) - share(done, drawn_units)
local returned = {}
for k = #draws, 1, -1 do
  if units_back <= 0 then break end
  local d = draws[k]
  local give = d[2] - d[3]
  if give > units_back then give = units_back end
  if give > 0 then
    d[3] = d[3] + give
    units_back = units_back - give
    local b = find_bucket(acct, d[1])
    if b then
      b[B_REMAINING] = b[B_REMAINING] + give
      returned[#returned + 1] = {d[1], give}
    end
  end
end
debit[3] = after
acct[A_BALANCE] = acct[A_BALANCE] + money_back
local result = mp_pack({units, money_back, acct[A_BALANCE], acct[A_HELD]})
rcall('SET', KEYS[2], mp_pack(acct))
rcall('SET', KEYS[4], mp_pack(debit), 'KEEPTTL')
append_record(KEYS[3], record('refund', tenant, subscriber, session_id, op_id, service, rg,
  units, -money_back, 0, returned, 0, 0, {}, now, acct[A_BALANCE], reason, money_back), ctx)
idem_store(KEYS[1], digest, result, ttl)
return {0, result}
