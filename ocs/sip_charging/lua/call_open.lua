-- call_open.lua: store a new call record and its auto-end deadline, unless the call exists.
-- KEYS[1] call record   {t:<tenant>:sip}:call:<key>
-- KEYS[2] due index     {t:<tenant>:sip}:due      (zset reservation id -> deadline)
-- ARGV[1] record bytes, ARGV[2] deadline (epoch s), ARGV[3] record TTL (s), ARGV[4] reservation id
-- Returns the stored record: ARGV[1] when created, the existing one otherwise (a replayed INVITE
-- must never reset a call that was re-authorised or ended meanwhile).
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return ARGV[1]
