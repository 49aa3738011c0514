-- renew.lua (after common.lua): refresh me, a holder, for its TTL.
--
-- Returns {1, 0} refreshed; {0, 0} when me no longer holds (expired,
-- released or deleted).
if held() then return {1, 0} end
reclaim()
finish()
return {0, 0}
