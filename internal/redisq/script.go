package redisq

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// queueScript is the whole state machine of a name, run atomically by
// Redis. Every operation first reclaims holders and waiters whose
// server-time expiry has passed, and ends by promoting the waiters at the
// head of the queue that now fit, publishing "member token" lines for
// them on the name's channel (an empty message when only the holders
// changed, for election observers).
//
// A member is "<kind>|<ttl ms>|<session id>|<n>": kind 'x' is exclusive
// (a Mutex, a writer, a candidate), 's' shared (a reader, a permit).
//
// For an election (hist 1), every change of the holder or its value is
// also appended to a capped stream, which observers read from their last
// entry so that they miss no change.
//
// KEYS: holders, queue, queue expiry, tokens, seq, limit, values, history
// ARGV: channel, op, member, limit (0: none), hist (0/1), [value or cursor]
const queueScript = `
local H, Q, QX, TOK, SEQ, LIM, VAL, E = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ch, op, me, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
-- A name with a history is an election whoever calls (a test's list, an
-- operator's drop).
local hist = ARGV[5] == '1' or redis.call('EXISTS', E) == 1
local before = redis.call('ZRANGE', H, 0, 0)[1] or ''
local proclaimed = false
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local changed = false
local granted = {}

local function ttl(m) return tonumber(string.match(m, '^%a|(%d+)|')) end

local function forget(m)
  redis.call('HDEL', TOK, m)
  redis.call('HDEL', VAL, m)
end

local function reclaim()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', H, '-inf', now)) do
    redis.call('ZREM', H, m)
    forget(m)
    changed = true
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', QX, '-inf', now)) do
    redis.call('ZREM', QX, m)
    redis.call('ZREM', Q, m)
    forget(m)
  end
end

-- fits reports whether an entry of kind k may hold alongside the holders,
-- under the stored limit (the operations that release pass none).
local function fits(k)
  local n = redis.call('ZCARD', H)
  if n == 0 then return true end
  if k == 'x' then return false end
  if string.sub(redis.call('ZRANGE', H, 0, 0)[1], 1, 1) == 'x' then return false end
  local cap = tonumber(redis.call('GET', LIM) or '0')
  return cap == 0 or n < cap
end

local function grant(m)
  local tok = redis.call('INCR', SEQ)
  redis.call('ZADD', H, now + ttl(m), m)
  redis.call('HSET', TOK, m, tok)
  changed = true
  return tok
end

local function finish()
  while true do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head or not fits(string.sub(head, 1, 1)) then break end
    redis.call('ZREM', Q, head)
    redis.call('ZREM', QX, head)
    granted[#granted + 1] = head .. ' ' .. grant(head)
  end
  if redis.call('EXISTS', H) == 0 and redis.call('EXISTS', Q) == 0 then
    redis.call('DEL', LIM)
  end
  if hist then
    local after = redis.call('ZRANGE', H, 0, 0)[1] or ''
    if after ~= before or proclaimed then
      local tok, val = 0, ''
      if after ~= '' then
        tok = redis.call('HGET', TOK, after)
        val = redis.call('HGET', VAL, after) or ''
      end
      redis.call('XADD', E, 'MAXLEN', '~', 256, '*', 't', tok, 'v', val)
      before, proclaimed = after, false
    end
  end
  if changed then redis.call('PUBLISH', ch, table.concat(granted, '\n')) end
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
  finish()
  if limit > 0 then
    local l = redis.call('GET', LIM)
    if l and tonumber(l) ~= limit then return {-2, tonumber(l)} end
  end
  if limit > 0 then redis.call('SET', LIM, limit) end
  local direct = redis.call('EXISTS', Q) == 0 and fits(string.sub(me, 1, 1))
  if not direct and op == 'try' then
    finish()
    return {0, 0}
  end
  if #ARGV >= 6 then redis.call('HSET', VAL, me, ARGV[6]) end
  if direct then
    local tok = grant(me)
    finish()
    return {1, tok}
  end
  redis.call('ZADD', Q, redis.call('INCR', SEQ), me)
  redis.call('ZADD', QX, now + ttl(me), me)
  finish()
  local tok = redis.call('HGET', TOK, me)
  if tok then return {1, tonumber(tok)} end
  return {0, untilExpiry()}
elseif op == 'chk' then
  finish()
  if held() then return {1, tonumber(redis.call('HGET', TOK, me))} end
  if redis.call('ZSCORE', Q, me) then
    redis.call('ZADD', QX, 'XX', now + ttl(me), me)
    return {0, untilExpiry()}
  end
  return {-1, 0}
elseif op == 'rel' then
  local was = redis.call('ZREM', H, me)
  redis.call('ZREM', Q, me)
  redis.call('ZREM', QX, me)
  forget(me)
  if was == 1 then changed = true end
  finish()
  return {was, 0}
elseif op == 'proclaim' then
  finish()
  local s = redis.call('ZSCORE', H, me)
  if not s or tonumber(s) <= now then return {0, 0} end
  redis.call('HSET', VAL, me, ARGV[6])
  proclaimed, changed = true, true
  finish()
  return {1, 0}
elseif op == 'leader' then
  -- The current leader, the time until it expires, the history's last
  -- entry, and the entries after the cursor ARGV[6] (if any).
  finish()
  local out = {0, 0, '', -1}
  local h = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
  if h[1] then
    out = {1, tonumber(redis.call('HGET', TOK, h[1])), redis.call('HGET', VAL, h[1]) or '', tonumber(h[2]) - now}
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

// run runs op for member on keys k.
func run(ctx context.Context, c Client, k Keys, op, member string, limit int64, value []byte) (result, error) {
	hist := "0"
	if k.history {
		hist = "1"
	}
	args := []any{k.Channel, op, member, strconv.FormatInt(limit, 10), hist}
	if value != nil {
		args = append(args, value)
	}
	v, err := script.Run(ctx, c, k.list(), args...).Slice()
	if err != nil {
		return result{}, err
	}
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
