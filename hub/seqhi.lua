-- Raises a room's reserved seq high mark, never lowering it (two nodes
-- may reserve at once).
-- KEYS[1] high mark   ARGV[1] new high mark
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
