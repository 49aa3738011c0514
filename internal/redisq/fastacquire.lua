-- fastacquire.lua (before common.lua, in the acquire script): the idle
-- name. When nobody holds or waits, no member's removal is recorded (FR),
-- and the caller has no limit and no history to record, the grant below is all that acquire.lua would do: it
-- runs without defining common.lua's helpers, which would cost the server
-- more than the grant itself. The token is seq()'s (see common.lua).
if ARGV[3] == '0' and ARGV[4] == '0' and redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[8]) == 0 then
  local m = ARGV[2]
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tok = math.max((tonumber(redis.call('GET', KEYS[5])) or 0) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', KEYS[5], string.format('%d', tok))
  redis.call('ZADD', KEYS[1], now + tonumber(string.match(m, '^%a|(%d+)|')), m)
  if ARGV[8] then
    redis.call('HSET', KEYS[4], m, tok, 'i' .. m, ARGV[6], 't' .. m, now, 'm' .. m, ARGV[7], 'v' .. m, ARGV[8])
  else
    redis.call('HSET', KEYS[4], m, tok, 'i' .. m, ARGV[6], 't' .. m, now, 'm' .. m, ARGV[7])
  end
  return {1, tok}
end
