-- Records the run id of the Redis instance holding a persistence shard,
-- before the send script is loaded into it (see Keys.Instance).
-- KEYS[1] the shard's instance key
-- Returns 1 when the instance is new to the shard, 0 when it was known.
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if redis.call('GET', KEYS[1]) == id then
  return 0
end
redis.call('SET', KEYS[1], id)
return 1
