-- Events and notifications shared by the ledger scripts (loaded after lib.lua, before
-- lib_offline.lua; balance/scripts.py LIB_FILES): the event stream, admin events, balance and
-- bucket threshold crossings, the bucket-expiry index.

-- The shard's event stream {t:<tenant>:<vshard>}:ev, derived from its record stream
-- {t:<tenant>:<vshard>}:cdr (balance/keys.py event_key / stream_key) rather than passed as a
-- key: the record context, refund records (debit.lua KEYS[4], debit_many.lua KEYS[3 + i]) and
-- the CCR layout already use the key positions. Redis Cluster routes a call by its declared
-- keys; this undeclared key carries the same hash tag as the declared record stream, so it is
-- in the same slot on the same node, which Redis accepts (only cross-slot access is refused).
local function event_stream(record_stream)
  return ssub(record_stream, 1, #record_stream - 4) .. ':ev'
end

-- Provisioning / notification event (one entry of the shard's event stream, field "e",
-- msgpack): {type, tenant, subscriber, op_id, at_s, payload map}; balance/events.py decodes it.
-- Written by the same call as the change, so there is no change without its event and no event
-- without its change; a replayed operation returns before any write, so it writes no event.
local function emit_event(key, etype, tenant, subscriber, op_id, now, payload)
  rcall('XADD', key, '*', 'e', mp_pack({etype, tenant, subscriber, op_id, now, payload}))
end

-- Edge-triggered notifications on the posted balance (balance + held money: holds come and go,
-- the posted balance moves only with commits, top-ups and adjustments). One event per downward
-- crossing of each level; a top-up lifts the balance above the level again, which re-arms it.
-- `below` (optional) lists the tenant's "balance below" amounts, micro-units.
local function emit_crossings(key, tenant, subscriber, op_id, now, before, after, below)
  if before > 0 and after <= 0 then
    emit_event(key, 'depleted', tenant, subscriber, op_id, now, {balance = after, before = before})
  end
  if before >= 0 and after < 0 then
    emit_event(key, 'negative', tenant, subscriber, op_id, now, {balance = after, before = before})
  end
  if type(below) == 'table' then
    for k = 1, #below do
      local level = below[k]
      if type(level) == 'number' and before >= level and after < level then
        emit_event(key, 'balance_below', tenant, subscriber, op_id, now,
          {balance = after, before = before, level = level})
      end
    end
  end
end

-- Record kind -> event type of the account-maintenance scripts (no entry = no event).
local ADMIN_EVENTS = {provision = 'created', block = 'blocked', unblock = 'unblocked',
  topup = 'topped_up', adjust = 'adjusted', bucket = 'bundle_granted', refund = 'refunded',
  sim_swap = 'sim_swapped', delete = 'deleted', activate = 'activated'}

-- Write the account, its record (with the caller's context), its event (the shard's event
-- stream) and the idempotency entry; return the stored result. KEYS is passed in: in the
-- Functions library a script's keys are an argument, not a global.
-- The event of an account-maintenance record (ADMIN_EVENTS; none for other kinds) and the
-- crossings of the money it moved (rec[18]), against the account as it is now.
local function admin_event(record_stream, acct, rec)
  local etype = ADMIN_EVENTS[rec[1]]
  if not etype then return end
  local ev_key = event_stream(record_stream)
  if etype == 'bundle_granted' and rec[9] > 0 then etype = 'bundle_bought' end
  local after = acct[A_BALANCE] + acct[A_HELD]
  if etype == 'sim_swapped' then  -- sim.lua: reason is the new IMSI, service the previous one
    emit_event(ev_key, etype, rec[2], rec[3], rec[5], rec[15], {imsi = rec[17],
      previous_imsi = rec[6], state = acct[A_STATE]})
    return
  end
  emit_event(ev_key, etype, rec[2], rec[3], rec[5], rec[15], {balance = acct[A_BALANCE],
    state = acct[A_STATE], amount = rec[18], reason = rec[17], kind = rec[6], units = rec[8],
    fee = rec[9], buckets = rec[11]})
  emit_crossings(ev_key, rec[2], rec[3], rec[5], rec[15], after - rec[18], after, nil)
end

local function admin_finish(KEYS, acct, rec, digest, ttl, ctx)
  local result = account_summary(acct)
  rec[16] = acct[A_BALANCE]
  rcall('SET', KEYS[2], mp_pack(acct))
  append_record(KEYS[3], rec, ctx)
  admin_event(KEYS[3], acct, rec)
  idem_store(KEYS[1], digest, result, ttl)
  return {0, result}
end

-- Bucket-percent notifications. The tenant's whole percents travel as the last entry of the
-- notification list (after the balance levels, which emit_crossings reads and this skips), so
-- the scripts need no new argument. nil when the tenant has none.
local function bucket_levels(notify)
  if type(notify) ~= 'table' then return nil end
  local last = notify[#notify]
  if type(last) ~= 'table' or #last == 0 then return nil end
  return last
end

-- Posted units (remaining + held: a hold moves units, only a commit uses them) of each sized
-- bucket before the call, by id; nil when there is nothing to compare (the usual case costs
-- one type check).
local function bucket_snapshot(acct, notify)
  if bucket_levels(notify) == nil then return nil end
  local buckets, snap = acct[A_BUCKETS], nil
  for k = 1, #buckets do
    local b = buckets[k]
    local size = b[B_SIZE]
    if type(size) == 'number' and size > 0 then
      if snap == nil then snap = {} end
      snap[b[B_ID]] = b[B_REMAINING] + b[B_HELD]
    end
  end
  return snap
end

-- One 'bucket_below' event per bucket and level crossed downwards by this call (before from
-- bucket_snapshot). A renewal or a new bundle is a new bucket at its full size: armed again.
-- Integer comparisons (units * 100 against size * percent) stay exact below 2^53.
local function emit_bucket_crossings(key, tenant, subscriber, op_id, now, acct, snap, notify)
  if snap == nil then return end
  local levels = bucket_levels(notify)
  local buckets = acct[A_BUCKETS]
  for k = 1, #buckets do
    local b = buckets[k]
    local before = snap[b[B_ID]]
    if before ~= nil then
      local after = b[B_REMAINING] + b[B_HELD]
      if after < before then
        local size = b[B_SIZE]
        for i = 1, #levels do
          local pct = levels[i]
          if type(pct) == 'number' and before * 100 >= size * pct and after * 100 < size * pct then
            emit_event(key, 'bucket_below', tenant, subscriber, op_id, now, {bucket = b[B_ID],
              kind = b[B_KIND], unit = b[B_UNIT], remaining = after, size = size, percent = pct})
          end
        end
      end
    end
  end
end

-- The shard's bucket-expiry index {t:<tenant>:<vshard>}:bx (zset "<subscriber>|<bucket id>"
-- -> expires_at_s), derived from the record stream as event_stream is: the expiry-warning
-- sweep (expiry_warn.lua) reads only the members due within the warning window.
local function bucket_expiry_index(record_stream)
  return ssub(record_stream, 1, #record_stream - 4) .. ':bx'
end

local function index_bucket_expiry(record_stream, subscriber, bucket_id, expires)
  if expires > 0 then
    rcall('ZADD', bucket_expiry_index(record_stream), expires, subscriber .. '|' .. bucket_id)
  end
end
