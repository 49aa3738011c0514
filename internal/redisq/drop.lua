-- drop.lua (after common.lua): delete every member, holding or waiting,
-- that contains me (a session's "|id|"), as if that session had expired.
-- For tests and operators. Returns {number of members deleted, 0}.
reclaim()
local dropped = 0
for _, k in ipairs({H, Q}) do
  for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    if string.find(m, me, 1, true) then
      if redis.call('ZREM', H, m) == 1 then changed = true end
      redis.call('ZREM', Q, m)
      redis.call('ZREM', QX, m)
      forget(m)
      freed = true
      dropped = dropped + 1
    end
  end
end
finish()
return {dropped, 0}
