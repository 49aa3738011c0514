-- leader.lua (after common.lua): an election's state for observers.
--
-- Returns {1, term, value, ms until the leader expires, last history
-- entry, then id, term, value of each history entry after the cursor
-- ARGV[5] (if given, up to 1000)}; with no leader the first four are
-- {0, 0, '', -1}.
reclaim()
finish()
local out = {0, 0, '', -1}
local h = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
if h[1] then
  local tv = redis.call('HMGET', TOK, h[1], 'v' .. h[1])
  out = {1, tonumber(tv[1]) or 0, tv[2] or '', tonumber(h[2]) - now}
end
local last = redis.call('XREVRANGE', E, '+', '-', 'COUNT', 1)[1]
out[5] = last and last[1] or '0-0'
if ARGV[5] and ARGV[5] ~= '' then
  for _, e in ipairs(redis.call('XRANGE', E, '(' .. ARGV[5], '+', 'COUNT', 1000)) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2][2]
    out[#out + 1] = e[2][4]
  end
end
return out
