-- Raises a member's read position, never lowering it, and queues it for
-- the store (fields as in chatlog/entry.go) so it outlives Redis.
-- KEYS[1] reads hash   KEYS[2] persistence stream
-- ARGV[1] user id   ARGV[2] seq   ARGV[3] room id
-- ARGV[4] "1" to queue it for the store ("0": it came from the store)
-- Returns 1 when the position moved.
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[4] == '1' then
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[3], 's', ARGV[2], 'rd', ARGV[1])
  end
  return 1
end
return 0
