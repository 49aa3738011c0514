-- limit.lua (after common.lua): a semaphore's limit. The limit is stored
-- while anyone holds or waits, and only then.
--
-- ARGV[5] 'open': compare the caller's limit with the stored one.
-- Returns {1, 0} when they agree or none is stored; {-2, stored limit}
-- otherwise.
--
-- ARGV[5] 'set': make the caller's limit the stored one, if the semaphore
-- is in use (held permits are kept, also above a lower limit); grant the
-- waiters that a higher limit lets in; wake every other waiter, so that
-- those opened with another limit learn of it at once. Returns {1, 0}
-- stored; {0, 0} idle (nothing stored).
reclaim()
promote()
if ARGV[5] == 'open' then
  local stored = cap()
  finish()
  if mismatch() then return {-2, stored} end
  return {1, 0}
end
if redis.call('ZCARD', H) == 0 and redis.call('EXISTS', Q) == 0 then
  finish()
  return {0, 0}
end
setCap(limit)
freed = true
promote()
for _, m in ipairs(redis.call('ZRANGE', Q, 0, -1)) do
  notes[#notes + 1] = m .. ' 0 ' .. limit
end
finish()
return {1, 0}
