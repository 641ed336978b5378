-- Raises a member's read position, never lowering it nor past the room's
-- newest seq, and queues it for the store (fields as in chatlog/entry.go)
-- so it outlives Redis.
-- KEYS[1] reads hash   KEYS[2] persistence stream   KEYS[3] seq counter
-- ARGV[1] user id   ARGV[2] seq   ARGV[3] room id
-- ARGV[4] "1" to queue it for the store ("0": it came from the store)
-- Returns the new position, or 0 when it did not move.
local seq = math.min(tonumber(ARGV[2]), tonumber(redis.call('GET', KEYS[3]) or '0'))
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if seq > cur then
  redis.call('HSET', KEYS[1], ARGV[1], seq)
  if ARGV[4] == '1' then
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[3], 's', seq, 'rd', ARGV[1])
  end
  return seq
end
return 0
