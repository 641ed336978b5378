-- Opens a room in Redis: its seq counter at 0, unless it exists, and its
-- members. A new counter is marked as made under the Redis instance that
-- holds the shard (hub/instance.lua), so the room's first message needs
-- no restore and no look-up in the message store.
-- KEYS[1] seq counter   KEYS[2] members set
-- KEYS[3] shard's Redis instance   KEYS[4] counter's Redis instance
-- ARGV user ids
if redis.call('SETNX', KEYS[1], 0) == 1 then
  local inst = redis.call('GET', KEYS[3])
  if inst then
    redis.call('SET', KEYS[4], inst)
  end
end
if #ARGV > 0 then
  redis.call('SADD', KEYS[2], unpack(ARGV))
end
return 0
