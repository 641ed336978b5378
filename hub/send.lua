-- Accepts one chat message in one round trip: membership check, dedupe by
-- (user, client id), next gap-free seq, append to the room's recent stream
-- and to the persistence stream, publish for delivery.
--
-- KEYS[1] members set   KEYS[2] seq counter   KEYS[3] dedupe key
-- KEYS[4] recent stream KEYS[5] persistence stream
-- ARGV[1] user id (0 skips the membership check: server-side producers)
-- ARGV[2] JSON before the seq   ARGV[3] JSON after the seq
-- ARGV[4] recent stream length  ARGV[5] dedupe TTL (s)  ARGV[6] channel
-- ARGV[7] room id               ARGV[8] accept time (unix ms)
-- ARGV[9] PUBLISH, or SPUBLISH on a Redis Cluster (sharded pub/sub)
--
-- Returns {"ok", seq, ts} | {"dup", seq, ts} | {"not_member"} | {"noseq"}.
if ARGV[1] ~= '0' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'not_member'}
end
local prev = redis.call('GET', KEYS[3])
if prev then
  local sep = string.find(prev, ':', 1, true)
  return {'dup', string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)}
end
-- A missing counter means a new room or a Redis that lost its data; the
-- caller restores it from what is stored so a seq is never reused.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'noseq'}
end
local seq = redis.call('INCR', KEYS[2])
local msg = ARGV[2] .. seq .. ARGV[3]
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'm', msg)
redis.call('XADD', KEYS[5], '*', 'r', ARGV[7], 's', seq, 'm', msg)
redis.call('SET', KEYS[3], seq .. ':' .. ARGV[8], 'EX', ARGV[5])
redis.call(ARGV[9], ARGV[6], msg)
return {'ok', tostring(seq), ARGV[8]}
