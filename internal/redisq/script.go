package redisq

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// sessionChannelPrefix starts a session's own channel; the session id
// follows.
const sessionChannelPrefix = keyPrefix + "session:"

// queueScript is the whole state machine of a name, run atomically by
// Redis. Every operation first reclaims holders and waiters whose
// server-time expiry has passed; when anyone left (reclaimed, released,
// cancelled, dropped) it promotes the waiters at the head of the queue that
// now fit, and publishes "member token" lines for them on their sessions'
// own channels (the session id is part of the member). The script is on every hot path, and each redis.call costs a
// few microseconds of the server's one thread, so it only looks at what
// an operation can have changed: an enqueue touches five keys and grants
// nobody, a renewal two.
//
// A member is "<kind>|<ttl ms>|<session id>|<n>": kind 'x' is exclusive
// (a Mutex, a writer, a candidate), 's' shared (a reader, a permit).
//
// For an election (hist 1; for list and drop, which tests and operators
// call without knowing the kind, whenever the history key exists), every
// change of the
// holder or its value is appended to a capped stream, which observers read
// from their last entry so that they miss no change, and an empty message
// on the name's channel wakes them.
//
// KEYS: holders, queue, queue expiry, tokens, seq, limit, history
// ARGV: channel, op, member, limit (0: none), hist (0/1), [value or cursor]
const queueScript = "local SP = '" + sessionChannelPrefix + "'" + `
local H, Q, QX, TOK, SEQ, LIM, E = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ch, op, me, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Every number the counter hands out (a token, an arrival) is
-- max(counter + 1, server time in microseconds), stored back: still
-- strictly increasing on one server, so arrival order holds, and never
-- below the clock. A server that lost the last increments (restarted
-- without its data, or a replica that missed them and was promoted) thus
-- continues above every token issued before, as long as its clock is not
-- behind the old one by more than the time the failover took (P3).
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function seq()
  local n = math.max((tonumber(redis.call('GET', SEQ)) or 0) + 1, nowUs)
  redis.call('SET', SEQ, string.format('%d', n))
  return n
end
local changed = false -- the holders (or the leader's value) changed
local freed = false   -- a holder or waiter left: head waiters may now fit
local granted = {}
local hist = nil

local function ttl(m) return tonumber(string.match(m, '^%a|(%d+)|')) end

-- The tokens hash holds each holder's token under its member, and an
-- election candidate's value under 'v' .. member.
local function forget(m) redis.call('HDEL', TOK, m, 'v' .. m) end

local function isHist()
  if hist == nil then
    hist = ARGV[5] == '1' or ((op == 'list' or op == 'drop') and redis.call('EXISTS', E) == 1)
  end
  return hist
end

local function reclaim()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', H, '-inf', now)) do
    redis.call('ZREM', H, m)
    forget(m)
    changed, freed = true, true
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', QX, '-inf', now)) do
    redis.call('ZREM', QX, m)
    redis.call('ZREM', Q, m)
    forget(m)
    freed = true
  end
end

-- fits reports whether an entry of kind k may hold alongside the n
-- holders, under the stored limit. An exclusive holder holds alone, so
-- only a single holder can be one.
local function fits(k, n)
  if n == 0 then return true end
  if k == 'x' then return false end
  if n == 1 and string.sub(redis.call('ZRANGE', H, 0, 0)[1], 1, 1) == 'x' then return false end
  local cap = tonumber(redis.call('GET', LIM) or '0')
  return cap == 0 or n < cap
end

local function grant(m)
  local tok = seq()
  redis.call('ZADD', H, now + ttl(m), m)
  redis.call('HSET', TOK, m, tok)
  changed = true
  return tok
end

-- promote grants the head waiters that fit, in arrival order, after
-- someone left; with nobody left it drops the stored limit.
local function promote()
  if not freed then return end
  freed = false
  local n = redis.call('ZCARD', H)
  local head
  while true do
    head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then break end
    local k = string.sub(head, 1, 1)
    if not fits(k, n) then break end
    redis.call('ZREM', Q, head)
    redis.call('ZREM', QX, head)
    granted[#granted + 1] = head .. ' ' .. string.format('%d', grant(head))
    n = n + 1
    if k == 'x' then break end
  end
  if n == 0 and not head then redis.call('DEL', LIM) end
end

-- finish promotes, records an election's change and publishes, once.
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
  -- One message per session granted (a semaphore or readers may grant
  -- several members at once).
  local bySession, order = {}, {}
  for _, g in ipairs(granted) do
    local sid = string.match(g, '^%a|%d+|([^|]*)|')
    if not bySession[sid] then
      bySession[sid] = {}
      order[#order + 1] = sid
    end
    table.insert(bySession[sid], g)
  end
  for _, sid in ipairs(order) do
    redis.call('PUBLISH', SP .. sid, table.concat(bySession[sid], '\n'))
  end
  if record then redis.call('PUBLISH', ch, '') end
  changed, granted = false, {}
end

-- untilExpiry is the time in ms until the earliest holder expiry, -1 if none.
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

if op == 'renew' then
  if held() then return {1, 0} end
  reclaim()
  finish()
  return {0, 0}
end

reclaim()

if op == 'acq' or op == 'try' then
  -- Promote first: the waiters ahead go first, and a limit left by
  -- expired holders is dropped before it is compared.
  promote()
  if limit > 0 then
    local l = redis.call('GET', LIM)
    if l and tonumber(l) ~= limit then
      finish()
      return {-2, tonumber(l)}
    end
    if not l then redis.call('SET', LIM, limit) end
  end
  local direct = redis.call('EXISTS', Q) == 0 and fits(string.sub(me, 1, 1), redis.call('ZCARD', H))
  if not direct and op == 'try' then
    finish()
    return {0, 0}
  end
  if #ARGV >= 6 then redis.call('HSET', TOK, 'v' .. me, ARGV[6]) end
  if direct then
    local tok = grant(me)
    finish()
    return {1, tok}
  end
  -- Behind a waiter, or not fitting beside the holders: nothing this
  -- script does can grant it.
  redis.call('ZADD', Q, seq(), me)
  redis.call('ZADD', QX, now + ttl(me), me)
  finish()
  return {0, untilExpiry()}
elseif op == 'chk' then
  -- A holder deleted from outside left room that no release announced:
  -- the waiters' re-check promotes whoever fits now, or nobody would.
  freed = true
  finish()
  if held() then return {1, tonumber(redis.call('HGET', TOK, me))} end
  if redis.call('ZSCORE', Q, me) then
    redis.call('ZADD', QX, 'XX', now + ttl(me), me)
    return {0, untilExpiry()}
  end
  return {-1, 0}
elseif op == 'rel' then
  local was = redis.call('ZREM', H, me)
  if was == 1 then
    changed, freed = true, true
  elseif redis.call('ZREM', Q, me) == 1 then
    redis.call('ZREM', QX, me)
    freed = true
  end
  forget(me)
  finish()
  return {was, 0}
elseif op == 'proclaim' then
  local s = redis.call('ZSCORE', H, me)
  if not s or tonumber(s) <= now then
    finish()
    return {0, 0}
  end
  redis.call('HSET', TOK, 'v' .. me, ARGV[6])
  changed = true
  finish()
  return {1, 0}
elseif op == 'leader' then
  -- The current leader, the time until it expires, the history's last
  -- entry, and the entries after the cursor ARGV[6] (if any).
  finish()
  local out = {0, 0, '', -1}
  local h = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
  if h[1] then
    local tv = redis.call('HMGET', TOK, h[1], 'v' .. h[1])
    out = {1, tonumber(tv[1]) or 0, tv[2] or '', tonumber(h[2]) - now}
  end
  local last = redis.call('XREVRANGE', E, '+', '-', 'COUNT', 1)[1]
  out[5] = last and last[1] or '0-0'
  if ARGV[6] and ARGV[6] ~= '' then
    for _, e in ipairs(redis.call('XRANGE', E, '(' .. ARGV[6], '+', 'COUNT', 1000)) do
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
      out[#out + 1] = e[2][4]
    end
  end
  return out
elseif op == 'list' then
  finish()
  local out = redis.call('ZRANGE', H, 0, -1)
  for _, m in ipairs(redis.call('ZRANGE', Q, 0, -1)) do out[#out + 1] = m end
  return out
elseif op == 'drop' then
  for _, k in ipairs({H, Q}) do
    for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do
      if string.find(m, me, 1, true) then
        if redis.call('ZREM', H, m) == 1 then changed = true end
        redis.call('ZREM', Q, m)
        redis.call('ZREM', QX, m)
        forget(m)
        freed = true
      end
    end
  end
  finish()
  return {0, 0}
end
return redis.error_reply('distsync: unknown op ' .. op)
`

var script = redis.NewScript(queueScript)

// result is a decoded reply of the script: status 1 held (n is the token),
// 0 waiting (n is the time in ms until the earliest holder expiry, -1 if
// none) or would block, -1 gone, -2 limit mismatch (n is the stored limit).
type result struct {
	status int64
	n      int64
	extra  []any
}

// scriptArgs returns the script's ARGV for op.
func scriptArgs(k Keys, op, member string, limit int64, value []byte) []any {
	hist := "0"
	if k.history {
		hist = "1"
	}
	args := []any{k.Channel, op, member, strconv.FormatInt(limit, 10), hist}
	if value != nil {
		args = append(args, value)
	}
	return args
}

// run runs op for member on keys k.
func run(ctx context.Context, c Client, k Keys, op, member string, limit int64, value []byte) (result, error) {
	v, err := script.Run(ctx, c, k.list(), scriptArgs(k, op, member, limit, value)...).Slice()
	if err != nil {
		return result{}, err
	}
	return decode(v)
}

// decode decodes a status reply of the script.
func decode(v []any) (result, error) {
	if len(v) < 2 {
		return result{}, fmt.Errorf("redisq: malformed script reply %v", v)
	}
	s, ok1 := v[0].(int64)
	n, ok2 := v[1].(int64)
	if !ok1 || !ok2 {
		return result{}, fmt.Errorf("redisq: malformed script reply %v", v)
	}
	return result{status: s, n: n, extra: v[2:]}, nil
}

// list returns the members holding and waiting for k, after reclaiming
// expired ones.
func list(ctx context.Context, c Client, k Keys) ([]string, error) {
	return script.Run(ctx, c, k.list(), k.Channel, "list", "", "0", "0").StringSlice()
}
