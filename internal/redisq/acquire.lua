-- acquire.lua (after common.lua): take me at once if it fits and nobody
-- waits; otherwise enqueue it, or with ARGV[5] == 'try' write nothing.
-- ARGV[6] is the caller's identity and ARGV[7] its mode, recorded with
-- me (and the server time it arrived) while it holds or waits; ARGV[8], if
-- given, is the value stored with me (an election's).
--
-- Returns {1, token} held; {0, ms until the earliest holder expires, or
-- -1} enqueued; {0, 0} would block (try); {-2, stored limit} when the
-- caller's limit differs from the stored one (nothing written); {-3, 0}
-- abandoned (see below).
local try = ARGV[5] == 'try'
reclaim()
-- Promote first: the waiters ahead go first, and a limit left by expired
-- holders is dropped before it is compared.
promote()
-- The same request sent again (see runInline in bound.go): a member that
-- holds or waits already is reported as it is, and one whose owner gave
-- up on it (see release.lua) is refused, with {-3, 0}.
if redis.call('ZSCORE', H, me) then
  finish()
  return {1, tonumber(redis.call('HGET', TOK, me))}
end
if redis.call('ZSCORE', Q, me) then
  finish()
  return {0, untilExpiry()}
end
if forced(me, true) then
  finish()
  return {-3, 0}
end
if mismatch() then
  finish()
  return {-2, cap()}
end
local n, xheld, used = usage()
local direct = redis.call('EXISTS', Q) == 0 and fits(me, n, xheld, used)
if not direct and try then
  finish()
  return {0, 0}
end
-- From here on me is written: the limit is stored while it holds or waits.
if limit > 0 and cap() == 0 then setCap(limit) end
if ARGV[8] then
  redis.call('HSET', TOK, 'i' .. me, ARGV[6], 't' .. me, now, 'm' .. me, ARGV[7], 'v' .. me, ARGV[8])
else
  redis.call('HSET', TOK, 'i' .. me, ARGV[6], 't' .. me, now, 'm' .. me, ARGV[7])
end
if direct then
  local tok = grant(me)
  finish()
  return {1, tok}
end
-- Behind a waiter, or not fitting beside the holders: nothing this script
-- does can grant it.
redis.call('ZADD', Q, seq(), me)
redis.call('ZADD', QX, now + ttl(me), me)
finish()
return {0, untilExpiry()}
