-- Deletes a message: records its seq as deleted, queues a tombstone for
-- the store (fields as in chatlog/entry.go), and tells the room. The
-- entry stays, so seqs stay gap-free.
-- KEYS[1] deleted set   KEYS[2] persistence stream
-- ARGV[1] room  ARGV[2] seq  ARGV[3] deleting user  ARGV[4] channel
-- ARGV[5] deleted event JSON  ARGV[6] PUBLISH, or SPUBLISH on a cluster
-- Returns 1 when deleted now, 0 when it already was.
if redis.call('SADD', KEYS[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'r', ARGV[1], 's', ARGV[2], 'del', ARGV[3])
redis.call(ARGV[6], ARGV[4], ARGV[5])
return 1
