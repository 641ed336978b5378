-- Counts one event in a fixed window.
-- KEYS[1] counter  ARGV[1] window (ms)  ARGV[2] 1 to count, 0 to only look
-- Returns {count, ms until the window ends}.
local n
if ARGV[2] == '1' then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
return {n, ttl}
