-- call_swap.lua: compare-and-set of a call record, moving its entry in the due index with it.
-- KEYS[1] call record   {t:<tenant>:sip}:call:<key>
-- KEYS[2] due index     {t:<tenant>:sip}:due
-- ARGV[1] expected record bytes, ARGV[2] new record bytes, ARGV[3] record TTL (s),
-- ARGV[4] reservation id, ARGV[5] new deadline (epoch s) or '' to leave the index
-- Returns {1, new} when swapped, {0, current or ''} when the record was not the expected one
-- (another request or server process changed it first: the caller reloads and decides again).
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return {0, current or ''} end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[2], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
end
return {1, ARGV[2]}
