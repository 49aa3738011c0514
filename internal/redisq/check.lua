-- check.lua (after common.lua): a waiter's re-check. It refreshes me's
-- entry, and promotes whoever fits now: a holder deleted from outside
-- left room that no release announced, and without this nobody would
-- fill it.
--
-- Returns {1, token, stored limit} when me holds (its grant message was
-- missed); {0, ms until the earliest holder expires, or -1} still
-- waiting; {-1, why} when me is gone, why as gone() says (1 expired,
-- 2 force-released, 0 deleted); {-2, stored limit} when the caller's
-- limit differs from the stored one (the caller decides whether that is a
-- mismatch or a SetLimit in progress, and releases me if it is).
reclaim()
freed = true
finish()
if held() then return {1, tonumber(redis.call('HGET', TOK, me)), cap()} end
if not redis.call('ZSCORE', Q, me) then return {-1, gone()} end
redis.call('ZADD', QX, 'XX', now + ttl(me), me)
if mismatch() then return {-2, cap()} end
return {0, untilExpiry()}
