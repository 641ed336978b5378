-- Accepts one chat message in one round trip: membership check, dedupe by
-- (user, client id) in the room's cids hashes of this dedupe window and
-- the one before, next gap-free seq within the durably reserved block,
-- append to the room's recent stream and to the persistence stream
-- (fields as in chatlog/entry.go), publish for delivery.
--
-- KEYS[1] members set   KEYS[2] seq counter
-- KEYS[3] this bucket's cids hash   KEYS[11] the previous bucket's
-- KEYS[4] recent stream KEYS[5] persistence stream
-- KEYS[6] reserved seq high mark   KEYS[7] restored flag
-- KEYS[8] shard's Redis instance    KEYS[9] counter's Redis instance
-- KEYS[10] shard's first Redis instance
-- ARGV[1] user id (0 skips the membership check: server-side producers)
-- ARGV[2] JSON before the seq   ARGV[3] JSON after the seq
-- ARGV[4] recent stream length  ARGV[5] when this bucket's hash expires
--   (unix ms: the end of the next bucket, so a cid is remembered for one
--   to two windows)  ARGV[6] channel
-- ARGV[7] room id               ARGV[8] accept time (unix ms)
-- ARGV[9] PUBLISH, or SPUBLISH on a Redis Cluster (sharded pub/sub)
-- ARGV[10] "1" when the store was already asked about this cid
-- ARGV[11] runway: when fewer reserved seqs than this are left, the reply
--          asks for the next block to be reserved ahead
-- ARGV[12] "1" for a resend: a cid Redis does not know (its window ended)
--          may name a stored message
-- ARGV[13] the send's field in the cids hashes (user:cid)
--
-- Returns {"ok", seq, ts} | {"ok", seq, ts, "low"} | {"dup", seq, ts}
-- | {"not_member"} | {"noseq"}
-- | {"reserve", seq} (reserve a block reaching seq in the store first)
-- | {"check", flag} (the room was restored: flag "h:<seq>" asks for the
--   cids of stored messages past seq to be written back first,
--   any other flag for the cid to be looked up in the store; "resend"
--   for a resend's cid to be looked up in the store).
if ARGV[1] ~= '0' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'not_member'}
end
local prev = redis.call('HGET', KEYS[3], ARGV[13]) or redis.call('HGET', KEYS[11], ARGV[13])
if prev then
  local sep = string.find(prev, ':', 1, true)
  return {'dup', string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)}
end
-- A missing counter means a new room or a Redis that lost its data; the
-- caller restores it past every reserved seq so a seq is never reused.
local cur = redis.call('GET', KEYS[2])
if not cur then
  return {'noseq'}
end
-- So does a counter last restored under another Redis instance: this one
-- may have come back with older data (restore.lua). A counter with no
-- instance on the instance that first marked the shard predates the
-- marks (older nodes) and is adopted as it is.
local inst = redis.call('GET', KEYS[8])
if inst then
  local seqinst = redis.call('GET', KEYS[9])
  if not seqinst and inst == redis.call('GET', KEYS[10]) then
    redis.call('SET', KEYS[9], inst)
  elseif inst ~= seqinst then
    return {'noseq'}
  end
end
-- After a restore, a cid Redis forgot may name a stored message; so may
-- a resend's, once its key expired.
if ARGV[10] ~= '1' then
  local flag = redis.call('GET', KEYS[7])
  if flag then
    return {'check', flag}
  end
  if ARGV[12] == '1' then
    return {'check', 'resend'}
  end
end
local seq = tonumber(cur) + 1
local hi = tonumber(redis.call('GET', KEYS[6]) or '0')
-- The seq as text once: each use of the number formats it anew.
local s = tostring(seq)
if seq > hi then
  return {'reserve', s}
end
redis.call('SET', KEYS[2], s)
local msg = ARGV[2] .. s .. ARGV[3]
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], s .. '-0', 'm', msg)
redis.call('XADD', KEYS[5], '*', 'r', ARGV[7], 's', s, 'm', msg)
redis.call('HSET', KEYS[3], ARGV[13], s .. ':' .. ARGV[8])
redis.call('PEXPIREAT', KEYS[3], ARGV[5])
redis.call(ARGV[9], ARGV[6], msg)
if hi - seq < tonumber(ARGV[11]) then
  return {'ok', s, ARGV[8], 'low'}
end
return {'ok', s, ARGV[8]}
