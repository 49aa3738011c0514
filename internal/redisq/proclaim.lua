-- proclaim.lua (after common.lua): set ARGV[5] as the value of me, an
-- election's leader, while it holds; observers are told.
--
-- Returns {1, 0} set; {0, 2} when ForceRelease removed me (the record
-- stays for the lease's renewal); {0, 0} when me no longer leads
-- otherwise.
reclaim()
local s = redis.call('ZSCORE', H, me)
if not s or tonumber(s) <= now then
  finish()
  if forced(me, false) then return {0, 2} end
  return {0, 0}
end
redis.call('HSET', TOK, 'v' .. me, ARGV[5])
changed = true
finish()
return {1, 0}
