-- Restores a room's seq counter past every seq that may have been
-- acknowledged, once per loss: when the counter is missing (Redis lost the
-- data) or was last restored under another Redis instance than the one
-- holding it now (Redis came back with older data: a restart that lost the
-- last writes, a promoted replica that missed them), so its value may be
-- behind seqs already given out.
--
-- KEYS[1] seq counter   KEYS[2] recent stream
-- KEYS[3] shard's instance   KEYS[4] counter's instance
-- KEYS[5] restored flag
-- ARGV[1] highest stored seq   ARGV[2] highest reserved seq
-- ARGV[3] how long the restored flag lasts (s)
--
-- A room that ever had a seq is flagged restored, so that sends of cids
-- Redis does not know ask the store until the caller has written the lost
-- dedupe keys back (or for ARGV[3] when it cannot).
--
-- Returns {1, known, set, held}: known is the highest seq Redis or the
-- store still holds, set the counter's new value, held the highest seq
-- Redis alone still held (-1 when the counter was missing: Redis lost
-- everything, dedupe keys included); {0} when there was nothing to
-- restore (another node did it first).
local cur = redis.call('GET', KEYS[1])
local inst = redis.call('GET', KEYS[3])
if cur and (not inst or inst == redis.call('GET', KEYS[4])) then
  return {0}
end
local held = tonumber(cur or '0')
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 1 then
  local id = last[1][1]
  held = math.max(held, tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)))
end
local known = math.max(tonumber(ARGV[1]), held)
local set = math.max(known, tonumber(ARGV[2]))
redis.call('SET', KEYS[1], set)
if set > 0 then
  redis.call('SET', KEYS[5], '1', 'EX', ARGV[3])
end
if inst then
  redis.call('SET', KEYS[4], inst)
end
if not cur then
  held = -1
end
return {1, known, set, held}
