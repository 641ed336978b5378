-- Raises a member's read position, never lowering it.
-- KEYS[1] reads hash   ARGV[1] user id   ARGV[2] seq
-- Returns 1 when the position moved.
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
