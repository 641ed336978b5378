-- Claims or drops a node's share of a user's presence.
-- KEYS[1] presence sorted set (member node, score = claim expiry in ms)
-- ARGV[1] node  ARGV[2] now (ms)  ARGV[3] claim expiry (ms)
-- ARGV[4] "1" online / "0" offline  ARGV[5] key TTL (s)
-- Returns 1 when the user's global presence flipped.
local live = redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local after = redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
if (live == 0) ~= (after == 0) then
  return 1
end
return 0
