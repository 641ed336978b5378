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
-- A room that ever had a seq is flagged restored (for ARGV[3] at most),
-- so that no send of a cid Redis does not know is taken before the cids
-- Redis lost are back: when the counter was there, the flag is
-- "h:<seq>", the highest seq Redis still held (the cids up to it
-- survived with the counter), and the first send writes back those of the
-- stored messages past it (reseed.lua ends it); when the counter was
-- missing (Redis lost everything) the flag is "1" and unknown cids are
-- looked up in the store until it expires.
--
-- Returns {1, known, set}: known is the highest seq Redis or the store
-- still holds, set the counter's new value; {0} when there was nothing to
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
  local flag = '1'
  if cur then
    flag = 'h:' .. held
  end
  redis.call('SET', KEYS[5], flag, 'EX', ARGV[3])
end
if inst then
  redis.call('SET', KEYS[4], inst)
end
return {1, known, set}
