package redisq

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// sessionChannel returns the channel of the session id under prefix.
// common.lua builds the same text from the prefix of its first key
// (TestSessionChannel).
func sessionChannel(prefix, id string) string { return prefix + "session:" + id }

// The scripts: common.lua is the state machine of a name, and each
// operation's file runs after it, in one script (see common.lua).
var (
	//go:embed common.lua
	commonLua string
	//go:embed acquire.lua
	acquireLua string
	//go:embed renew.lua
	renewLua string
	//go:embed check.lua
	checkLua string
	//go:embed release.lua
	releaseLua string
	//go:embed proclaim.lua
	proclaimLua string
	//go:embed leader.lua
	leaderLua string
	//go:embed list.lua
	listLua string
	//go:embed drop.lua
	dropLua string
	//go:embed limit.lua
	limitLua string
	//go:embed inspect.lua
	inspectLua string
	//go:embed force.lua
	forceLua string
	//go:embed fastacquire.lua
	fastAcquireLua string
	//go:embed fastrelease.lua
	fastReleaseLua string
)

func newScript(body string) *redis.Script { return register(commonLua + "\n" + body) }

// newFastScript is newScript with a fast path that runs first and returns
// when it applies (see fastacquire.lua).
func newFastScript(fast, body string) *redis.Script {
	return register(fast + "\n" + commonLua + "\n" + body)
}

// A text is a script's hash and source as interface values, made once
// (see Keys.boxed).
type text struct{ hash, src any }

// texts holds every script's text, written only while the package's
// variables are initialised.
var texts = map[*redis.Script]text{}

func register(src string) *redis.Script {
	s := redis.NewScript(src)
	texts[s] = text{s.Hash(), src}
	return s
}

var (
	acquireScript  = newFastScript(fastAcquireLua, acquireLua)
	renewScript    = newScript(renewLua)
	checkScript    = newScript(checkLua)
	releaseScript  = newFastScript(fastReleaseLua, releaseLua)
	proclaimScript = newScript(proclaimLua)
	leaderScript   = newScript(leaderLua)
	listScript     = newScript(listLua)
	dropScript     = newScript(dropLua)
	limitScript    = newScript(limitLua)
	inspectScript  = newScript(inspectLua)
	forceScript    = newScript(forceLua)

	// scripts are loaded by NewSession, so that a server that cannot run
	// them says so at once.
	scripts = []*redis.Script{acquireScript, renewScript, checkScript, releaseScript,
		proclaimScript, leaderScript, listScript, dropScript, limitScript, inspectScript, forceScript}
)

// result is a decoded status reply of a script: status and n as each
// script's file says, and what follows.
type result struct {
	status int64
	n      int64
	extra  []any
}

// Values of the script's hist argument.
const (
	histNo   = "0"
	histYes  = "1"
	histLook = "?" // look whether the history key exists
)

// args returns a script's ARGV: the common ones, then extra.
func args(k Keys, member string, limit int64, hist string, extra ...any) []any {
	a := make([]any, 0, 4+len(extra))
	a = append(a, k.Channel, member, limitArg(limit), histArg(k, hist))
	return append(a, extra...)
}

// run runs script s for member on keys k, with the caller's limit and the
// script's own arguments: EVALSHA, and EVAL when the server does not have
// the script (flushed or restarted since the session loaded it), as
// redis.Script.Run does. It builds the request from k's interface values,
// with two allocations where Script.Run makes about ten.
func run(ctx context.Context, c Client, s *redis.Script, k Keys, member string, limit int64, extra ...any) (result, error) {
	t := texts[s] // every script of the package is registered; k is KeysWith's
	a := make([]any, 0, 3+len(k.boxed)+3+len(extra))
	a = append(a, "evalsha", t.hash, len(k.boxed)-1)
	a = append(a, k.boxed...)
	a = append(a, member, limitArg(limit), histArg(k, ""))
	a = append(a, extra...)
	v, err := c.Do(ctx, a...).Slice()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		a[0], a[1] = "eval", t.src
		v, err = c.Do(ctx, a...).Slice()
	}
	if err != nil {
		return result{}, err
	}
	return decode(v)
}

// limitArg returns the ARGV of a limit: the common ones without allocating.
func limitArg(limit int64) any {
	switch limit {
	case 0:
		return "0"
	case 1:
		return "1"
	}
	return strconv.FormatInt(limit, 10)
}

// histArg returns the ARGV of hist (see args).
func histArg(k Keys, hist string) any {
	if hist != "" {
		return hist
	}
	if k.history {
		return histYes
	}
	return histNo
}

// runCtx is run bounded by ctx.
func runCtx(ctx context.Context, c Client, s *redis.Script, k Keys, member string, limit int64, extra ...any) (result, error) {
	return call(ctx, func(ctx context.Context) (result, error) {
		return run(ctx, c, s, k, member, limit, extra...)
	})
}

// decode decodes a status reply of a script.
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
	return listScript.Run(ctx, c, k.list(), args(k, "", 0, histLook)...).StringSlice()
}

// loadScripts loads every script (SCRIPT LOAD) and runs one, so that a
// server or user that cannot run them is found at once.
func loadScripts(ctx context.Context, c Client) error {
	for _, s := range scripts {
		if err := s.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	// EVALSHA itself may be refused (an ACL, a renamed command) where
	// SCRIPT LOAD is not.
	return probeScript.Run(ctx, c, nil).Err()
}

// probeScript touches no key.
var probeScript = redis.NewScript("return 1")
