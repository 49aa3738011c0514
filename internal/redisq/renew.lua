-- renew.lua (after common.lua): refresh me, a holder, for its TTL.
--
-- Returns {1, 0} refreshed; {0, 0} when me no longer holds (expired,
-- released or deleted), and then forgets what is left of me (a holder
-- deleted from outside may have left its token and identity).
if held() then return {1, 0} end
reclaim()
forget(me)
finish()
return {0, 0}
