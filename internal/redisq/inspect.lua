-- inspect.lua (after common.lua): who holds and who waits, at one moment,
-- after reclaiming expired members.
--
-- Returns {server time (ms), stored limit, 1 if an election's history
-- exists else 0, number of holders}, then six fields per holder (member,
-- expiry, token, identity, arrival (ms), mode), then six per waiter
-- (member, expiry, arrival number, identity, arrival (ms), mode), each in
-- queue order. A field not stored is false (a nil reply).
reclaim()
finish()
local hs = redis.call('ZRANGE', H, 0, -1, 'WITHSCORES')
local out = {now, cap(), redis.call('EXISTS', E), #hs / 2}
for i = 1, #hs, 2 do
  local m = hs[i]
  local f = redis.call('HMGET', TOK, m, 'i' .. m, 't' .. m, 'm' .. m)
  for _, v in ipairs({m, tonumber(hs[i + 1]), tonumber(f[1]) or 0, f[2], tonumber(f[3]) or 0, f[4]}) do
    out[#out + 1] = v
  end
end
local qs = redis.call('ZRANGE', Q, 0, -1, 'WITHSCORES')
for i = 1, #qs, 2 do
  local m = qs[i]
  local f = redis.call('HMGET', TOK, 'i' .. m, 't' .. m, 'm' .. m)
  local x = redis.call('ZSCORE', QX, m)
  for _, v in ipairs({m, tonumber(x) or 0, tonumber(qs[i + 1]), f[1], tonumber(f[2]) or 0, f[3]}) do
    out[#out + 1] = v
  end
end
return out
