-- Edits a message: unless its seq is deleted, records the edited JSON
-- (sync and history apply it over the recent stream's entry, which cannot
-- change in place), queues it for the store (fields as in
-- chatlog/entry.go) and tells the room.
-- KEYS[1] deleted set   KEYS[2] edited hash   KEYS[3] persistence stream
-- ARGV[1] seq  ARGV[2] edited message JSON  ARGV[3] channel
-- ARGV[4] edited event JSON  ARGV[5] PUBLISH, or SPUBLISH on a cluster
-- Returns 1 when edited, 0 when the message is deleted.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'ed', ARGV[2])
redis.call(ARGV[5], ARGV[3], ARGV[4])
return 1
