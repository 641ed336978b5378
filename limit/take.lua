-- Counts cost events in a fixed window when they fit (or always, when
-- forced: work already done is charged even past the limit).
-- KEYS[1] counter  ARGV[1] window (ms)  ARGV[2] events allowed
-- ARGV[3] cost  ARGV[4] 1 to force
-- Returns {1 if they fitted else 0, count, ms until the window ends}.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[3])
local ok = 0
if n + cost <= tonumber(ARGV[2]) then
  ok = 1
end
if ok == 1 or ARGV[4] == '1' then
  n = redis.call('INCRBY', KEYS[1], cost)
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
return {ok, n, ttl}
