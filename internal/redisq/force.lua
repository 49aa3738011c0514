-- force.lua (after common.lua): an operator's ForceRelease. It deletes
-- the holder whose token, or the waiter whose arrival number, is ARGV[5],
-- and only it, then promotes the waiters that now fit. Its owner is told
-- through FR (see markForced): a holder at its next renewal, a waiter at
-- once, woken by a re-check request on its session's channel.
--
-- Returns {1, 0, member, identity} for a holder, {2, 0, member,
-- identity} for a waiter, {0, 0} when nobody has the token.
reclaim()
local tok = tonumber(ARGV[5])
local who, role = nil, 0
for _, m in ipairs(redis.call('ZRANGE', H, 0, -1)) do
  if tonumber(redis.call('HGET', TOK, m)) == tok then
    who, role = m, 1
    break
  end
end
if not who then
  who = redis.call('ZRANGEBYSCORE', Q, ARGV[5], ARGV[5])[1]
  if who then role = 2 end
end
if not who then
  finish()
  return {0, 0}
end
local id = redis.call('HGET', TOK, 'i' .. who) or ''
if role == 1 then
  redis.call('ZREM', H, who)
  changed = true
else
  redis.call('ZREM', Q, who)
  redis.call('ZREM', QX, who)
  notes[#notes + 1] = who .. ' 0 ' .. cap()
end
freed = true
forget(who)
markForced(who)
finish()
return {role, 0, who, id}
