-- Restores a room's seq counter past every seq that may have been
-- acknowledged, once per loss: when the counter is missing (Redis lost the
-- data) or was last restored under another Redis instance than the one
-- holding it now (Redis came back with older data: a restart that lost the
-- last writes, a promoted replica that missed them), so its value may be
-- behind seqs already given out.
--
-- KEYS[1] seq counter   KEYS[2] recent stream
-- KEYS[3] shard's instance   KEYS[4] counter's instance
-- ARGV[1] highest stored seq   ARGV[2] highest reserved seq
--
-- Returns {1, known, set}: known is the highest seq Redis or the store
-- still holds, set the counter's new value; {0} when there was nothing to
-- restore (another node did it first).
local cur = redis.call('GET', KEYS[1])
local inst = redis.call('GET', KEYS[3])
if cur and (not inst or inst == redis.call('GET', KEYS[4])) then
  return {0}
end
local known = math.max(tonumber(ARGV[1]), tonumber(cur or '0'))
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 1 then
  local id = last[1][1]
  known = math.max(known, tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)))
end
local set = math.max(known, tonumber(ARGV[2]))
redis.call('SET', KEYS[1], set)
if inst then
  redis.call('SET', KEYS[4], inst)
end
return {1, known, set}
