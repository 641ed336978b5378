-- Takes back one counted event; an expired window stays gone.
-- KEYS[1] counter
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
