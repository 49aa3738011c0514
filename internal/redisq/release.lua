-- release.lua (after common.lua): delete me, holding or waiting, and only
-- me; the waiters that now fit are granted. A record that ForceRelease
-- removed me goes too: its owner is the one releasing. ARGV[5], if
-- given, is 'abandon' (see below).
--
-- Returns {1, 0} when me held, else {0, 0}, followed by the lines it
-- published: the releasing process hands them to its own waiters at once
-- (see deliver in hub.go).
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
-- With ARGV[5] == 'abandon', an acquire request for me whose answer was
-- lost may still run after this (see abandon in bound.go): the record
-- makes acquire.lua refuse me then, until it expires after me's TTL.
if ARGV[5] == 'abandon' then markForced(me) end
finish()
local reply = {was, 0}
for _, line in ipairs(sent) do reply[#reply + 1] = line end
return reply
