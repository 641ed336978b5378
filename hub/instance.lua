-- Records the run id of the Redis instance holding a persistence shard,
-- before the send script is loaded into it (see Keys.Instance).
-- KEYS[1] the shard's instance key   KEYS[2] the shard's first instance
-- Returns 1 when the instance is new to the shard, 0 when it was known.
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local prev = redis.call('GET', KEYS[1])
if prev == id then
  return 0
end
if not prev then
  redis.call('SET', KEYS[2], id)
end
redis.call('SET', KEYS[1], id)
return 1
