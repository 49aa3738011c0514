-- renew.lua (after common.lua): refresh me, a holder, for its TTL.
--
-- Returns {1, 0} refreshed; {0, why} when me no longer holds, why as
-- gone() says (1 expired, 2 force-released, 0 released or deleted), and
-- then forgets what is left of me (a holder deleted from outside may have
-- left its token and identity).
if held() then return {1, 0} end
reclaim()
local why = gone()
forget(me)
finish()
return {0, why}
