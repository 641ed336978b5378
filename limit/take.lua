-- Counts one event in a fixed window unless the window is full.
-- KEYS[1] counter  ARGV[1] window (ms)  ARGV[2] events allowed
-- Returns {1 if counted else 0, count, ms until the window ends}.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local ok = 0
if n < tonumber(ARGV[2]) then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
  ok = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
return {ok, n, ttl}
