-- fastrelease.lua (before common.lua, in the release script): the holder
-- nobody waits for, released by its owner (not abandoned). With no waiter to promote, no stored limit to drop and
-- no history to record, deleting the member is all that release.lua would
-- do; holders that expired meanwhile are left to the next script.
if ARGV[4] == '0' and not ARGV[5] and redis.call('EXISTS', KEYS[2], KEYS[6]) == 0 and redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
  local m = ARGV[2]
  redis.call('HDEL', KEYS[4], m, 'v' .. m, 'i' .. m, 't' .. m, 'm' .. m)
  return {1, 0}
end
