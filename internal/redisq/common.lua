-- common.lua: the state machine of one name, shared by every script of
-- distsync's Redis backend. Each script Redis runs is this file followed
-- by one operation's file (acquire.lua, renew.lua, ...), so every
-- operation runs atomically with the helpers below.
--
-- The keys of a name (all in one Cluster slot, see keys.go):
--   H    holders: sorted set, member -> server-time expiry (ms)
--   Q    waiters: sorted set, member -> arrival number
--   QX   waiters' expiry: sorted set, member -> server-time expiry (ms)
--   TOK  hash: holder member -> fencing token; 'v' .. member -> value;
--        'i' .. member -> the identity of its Session (holders and waiters)
--   SEQ  counter of fencing tokens and arrival numbers
--   LIM  the semaphore's limit, stored while anyone holds or waits
--   E    an election's capped stream of changes
--   FR   string: the members ForceRelease removed, one a line, until their
--        owners have been told (it expires after the longest one's TTL)
--
-- A member is "<kind>|<ttl ms>|<weight>|<session id>|<n>": kind 'x' is
-- exclusive (a Mutex, a writer, a candidate), 's' shared (a reader, a
-- semaphore's permits); weight is how many permits it holds.
--
-- KEYS: H, Q, QX, TOK, SEQ, LIM, E, FR
-- ARGV: [1] the name's channel (an election's observers), [2] member,
--       [3] the caller's limit (0: none), [4] '1' an election, '0' not,
--       '?' look whether E exists; the operation's own arguments follow.
--
-- Every operation first reclaims holders and waiters whose expiry has
-- passed; when anyone left (reclaimed, released, cancelled, dropped) it
-- promotes the waiters at the head of the queue that now fit, and
-- publishes "member token limit" lines for them on their sessions' own
-- channels (SP .. session id). Each redis.call costs the server's one
-- thread a few microseconds, so an operation only looks at what it can
-- have changed.

local H, Q, QX, TOK, SEQ, LIM, E, FR = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
-- Every key is "<prefix>{<name>}:<suffix>" and the prefix holds no '{':
-- the sessions' channels are "<prefix>session:<id>".
local SP = string.match(H, '^[^{]*') .. 'session:'
local ch, me, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Every number the counter hands out (a token, an arrival) is
-- max(counter + 1, server time in microseconds), stored back: strictly
-- increasing on one server, so arrival order holds, and never below the
-- clock. A server that lost the last increments (restarted without its
-- data, or a replica that missed them and was promoted) thus continues
-- above every token issued before, as long as its clock is not behind the
-- old one by more than the failover took.
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function seq()
  local n = math.max((tonumber(redis.call('GET', SEQ)) or 0) + 1, nowUs)
  redis.call('SET', SEQ, string.format('%d', n))
  return n
end

local changed = false -- the holders (or the leader's value) changed
local freed = false   -- a holder or waiter left: head waiters may now fit
local notes = {}      -- "member token limit" lines to publish (token 0: re-check)
local sent = {}       -- the lines published so far, for release.lua's reply
local hist = nil
local expired = {}    -- members reclaimed by this script because they expired

local function kind(m) return string.sub(m, 1, 1) end
local function ttl(m) return tonumber(string.match(m, '^%a|(%d+)|')) end
local function weight(m) return tonumber(string.match(m, '^%a|%d+|(%d+)|')) end

-- forget drops a member's token, value, identity, arrival and mode.
local function forget(m) redis.call('HDEL', TOK, m, 'v' .. m, 'i' .. m, 't' .. m, 'm' .. m) end

-- forced reports whether ForceRelease removed m and its owner has not
-- been told yet; with take, the owner is told now (m's line goes). Only
-- the paths where m is gone call it, so it costs nothing while m holds.
local function forced(m, take)
  local v = redis.call('GET', FR)
  if not v then return false end
  local found, rest = false, {}
  for line in string.gmatch(v, '[^\n]+') do
    if line == m then found = true else rest[#rest + 1] = line end
  end
  if found and take then
    if #rest == 0 then
      redis.call('DEL', FR)
    else
      redis.call('SET', FR, table.concat(rest, '\n'), 'KEEPTTL')
    end
  end
  return found
end

-- markForced records that ForceRelease removed m, for its owner's next
-- renewal or re-check, which comes within m's TTL. The record expires
-- after the longest TTL it holds; at most 64 lines are kept.
local function markForced(m)
  local lines, px = {m}, ttl(m)
  local v = redis.call('GET', FR)
  if v then
    for line in string.gmatch(v, '[^\n]+') do
      if #lines < 64 and line ~= m then
        lines[#lines + 1] = line
        px = math.max(px, ttl(line) or 0)
      end
    end
  end
  redis.call('SET', FR, table.concat(lines, '\n'), 'PX', px)
end

local function isHist()
  if hist == nil then
    local h = ARGV[4]
    hist = h == '1' or (h == '?' and redis.call('EXISTS', E) == 1)
  end
  return hist
end

-- cap is the stored limit, 0 when none.
local capCache = nil
local function cap()
  if capCache == nil then capCache = tonumber(redis.call('GET', LIM) or '0') end
  return capCache
end
local function setCap(n)
  if n == 0 then redis.call('DEL', LIM) else redis.call('SET', LIM, n) end
  capCache = n
end

local function reclaim()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', H, '-inf', now)) do
    redis.call('ZREM', H, m)
    forget(m)
    expired[m] = true
    changed, freed = true, true
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', QX, '-inf', now)) do
    redis.call('ZREM', QX, m)
    redis.call('ZREM', Q, m)
    forget(m)
    expired[m] = true
    freed = true
  end
end

-- gone says why me, no longer holding or waiting, is gone: 1 it expired
-- (reclaimed by this script), 2 ForceRelease removed it (its owner is
-- told now), 0 otherwise (deleted, or expired and reclaimed earlier).
local function gone()
  if expired[me] then return 1 end
  if forced(me, true) then return 2 end
  return 0
end

-- usage returns how many members hold, whether one of them holds
-- exclusively (it then holds alone), and, under a limit, their weight.
local function usage()
  local n = redis.call('ZCARD', H)
  if n == 0 then return 0, false, 0 end
  if n == 1 and kind(redis.call('ZRANGE', H, 0, 0)[1]) == 'x' then return 1, true, 0 end
  local used = 0
  if cap() > 0 then
    for _, m in ipairs(redis.call('ZRANGE', H, 0, -1)) do used = used + weight(m) end
  end
  return n, false, used
end

-- fits reports whether member m may hold beside the holders that usage
-- described.
local function fits(m, n, xheld, used)
  if kind(m) == 'x' then return n == 0 end
  if xheld then return false end
  local c = cap()
  return c == 0 or used + weight(m) <= c
end

local function grant(m)
  local tok = seq()
  redis.call('ZADD', H, now + ttl(m), m)
  redis.call('HSET', TOK, m, tok)
  changed = true
  return tok
end

-- promote grants the head waiters that fit, in arrival order, after
-- someone left: a head waiter that does not fit holds back the ones behind
-- it. With nobody left holding or waiting it drops the stored limit.
local function promote()
  if not freed then return end
  freed = false
  local n, xheld, used = usage()
  local head
  while true do
    head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then break end
    if not fits(head, n, xheld, used) then break end
    redis.call('ZREM', Q, head)
    redis.call('ZREM', QX, head)
    notes[#notes + 1] = head .. ' ' .. string.format('%d', grant(head)) .. ' ' .. cap()
    n, used = n + 1, used + weight(head)
    if kind(head) == 'x' then break end
  end
  if n == 0 and not head and cap() > 0 then setCap(0) end
end

-- finish promotes, records an election's change, and publishes, once.
local function finish()
  promote()
  local record = changed and isHist()
  if record then
    local after = redis.call('ZRANGE', H, 0, 0)[1]
    local tok, val = 0, ''
    if after then
      local tv = redis.call('HMGET', TOK, after, 'v' .. after)
      tok, val = tv[1] or 0, tv[2] or ''
    end
    redis.call('XADD', E, 'MAXLEN', '~', 256, '*', 't', tok, 'v', val)
  end
  -- One message per session (a semaphore or readers may grant several
  -- members at once).
  local bySession, order = {}, {}
  for _, line in ipairs(notes) do
    local sid = string.match(line, '^%a|%d+|%d+|([^|]*)|')
    if not bySession[sid] then
      bySession[sid] = {}
      order[#order + 1] = sid
    end
    table.insert(bySession[sid], line)
  end
  for _, sid in ipairs(order) do
    redis.call('PUBLISH', SP .. sid, table.concat(bySession[sid], '\n'))
  end
  for _, line in ipairs(notes) do sent[#sent + 1] = line end
  if record then redis.call('PUBLISH', ch, '') end
  changed, notes = false, {}
end

-- untilExpiry is the time in ms until the earliest holder expiry, -1 if
-- none.
local function untilExpiry()
  local h = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
  if not h[2] then return -1 end
  return math.max(tonumber(h[2]) - now, 0) + 1
end

-- held refreshes me if it holds and has not expired.
local function held()
  local s = redis.call('ZSCORE', H, me)
  if s and tonumber(s) > now then
    redis.call('ZADD', H, 'XX', now + ttl(me), me)
    return true
  end
  return false
end

-- mismatch reports whether the caller's limit differs from the stored one.
local function mismatch()
  return limit > 0 and cap() > 0 and cap() ~= limit
end
