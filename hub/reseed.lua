-- Ends the write-back of a restored room's cids (RedisBroker.reseed).
-- KEYS[1] restored flag
-- ARGV[1] the flag the write-back started from ("h:<seq>")
-- ARGV[2] "done": the keys are back, unknown cids are new; "partial": too
--         many to write back, unknown cids are looked up in the store
--         until the flag expires
-- A flag changed meanwhile (another restore) is left as it is.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'done' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], '1', 'KEEPTTL')
end
return 1
