-- release.lua (after common.lua): delete me, holding or waiting, and only
-- me; the waiters that now fit are granted. A record that ForceRelease
-- removed me goes too: its owner is the one releasing.
--
-- Returns {1, 0} when me held, else {0, 0}.
reclaim()
local was = redis.call('ZREM', H, me)
if was == 1 then
  changed, freed = true, true
elseif redis.call('ZREM', Q, me) == 1 then
  redis.call('ZREM', QX, me)
  freed = true
else
  forced(me, true)
end
forget(me)
finish()
return {was, 0}
