package redisq

import (
	"context"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
	"github.com/redis/go-redis/v9"
)

// scriptClient starts a Redis server for one test and returns a client
// with the scripts loaded.
func scriptClient(t *testing.T) *redis.Client {
	t.Helper()
	srv, err := testserver.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	if err := loadScripts(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func acquireArgs() []any { return []any{"acq", "host:1", "exclusive"} }

// An acquire request sent twice (its first answer lost, see runInline)
// reports the member as the first one left it: the same token for a
// holder, still waiting for a waiter. Neither is granted or queued twice.
func TestAcquireSentAgain(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	k := KeysWith(DefaultPrefix, "again")
	a, b := "x|10000|1|sa|1", "x|10000|1|sb|1"
	first, err := run(ctx, c, acquireScript, k, a, 0, acquireArgs()...)
	if err != nil || first.status != 1 {
		t.Fatalf("first acquire: %+v, %v", first, err)
	}
	again, err := run(ctx, c, acquireScript, k, a, 0, acquireArgs()...)
	if err != nil || again.status != 1 || again.n != first.n {
		t.Fatalf("acquire sent again: %+v, %v; want held with token %d", again, err, first.n)
	}
	w, err := run(ctx, c, acquireScript, k, b, 0, acquireArgs()...)
	if err != nil || w.status != 0 {
		t.Fatalf("waiter: %+v, %v", w, err)
	}
	arrival := c.ZScore(ctx, k.Queue, b).Val()
	if w, err := run(ctx, c, acquireScript, k, b, 0, acquireArgs()...); err != nil || w.status != 0 {
		t.Fatalf("waiter sent again: %+v, %v", w, err)
	}
	if got := c.ZScore(ctx, k.Queue, b).Val(); got != arrival {
		t.Errorf("waiter sent again moved from arrival %v to %v", arrival, got)
	}
	if n := c.ZCard(ctx, k.Holders).Val(); n != 1 {
		t.Errorf("%d holders, want 1", n)
	}
	// The release hands the name to b, with a greater token.
	if _, err := run(ctx, c, releaseScript, k, a, 0); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.HGet(ctx, k.Tokens, b).Int64(); err != nil || tok <= first.n {
		t.Errorf("b's token %d (%v), want above %d", tok, err, first.n)
	}
}

// A member abandoned before its acquire request ran (the request's answer
// was lost, then its caller gave up) is refused when that request runs
// late: nothing of it is written, and the name stays free. Without the
// abandon record the late request takes the name (the unsafe variant,
// checked first).
func TestAbandonedAcquireRunsLate(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	for _, abandon := range []bool{false, true} {
		k := KeysWith(DefaultPrefix, "late-"+map[bool]string{false: "plain", true: "abandon"}[abandon])
		m := "x|10000|1|sl|1"
		var extra []any
		if abandon {
			extra = []any{"abandon"}
		}
		if _, err := run(ctx, c, releaseScript, k, m, 0, extra...); err != nil {
			t.Fatal(err)
		}
		r, err := run(ctx, c, acquireScript, k, m, 0, acquireArgs()...)
		if err != nil {
			t.Fatal(err)
		}
		held := c.ZCard(ctx, k.Holders).Val()
		switch {
		case !abandon && (r.status != 1 || held != 1):
			t.Fatalf("plain release: the late acquire got %+v with %d holders; the check below could not fail", r, held)
		case abandon && (r.status != -3 || held != 0):
			t.Errorf("abandoned: the late acquire got %+v with %d holders, want {-3 0} and none", r, held)
		}
		if abandon {
			// The record is consumed: another member takes the name.
			r, err := run(ctx, c, acquireScript, k, "x|10000|1|so|1", 0, acquireArgs()...)
			if err != nil || r.status != 1 {
				t.Errorf("next acquire after the refusal: %+v, %v", r, err)
			}
		}
	}
}

// Tokens stay strictly increasing when acquisitions alternate between the
// idle name's short path and the full script (a waiter granted by a
// release).
func TestFastPathTokens(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	k := KeysWith(DefaultPrefix, "fast")
	var last int64
	for i := range 50 {
		a := "x|10000|1|sf|" + string(rune('a'+i%26)) + "1"
		r, err := run(ctx, c, acquireScript, k, a, 0, acquireArgs()...)
		if err != nil || r.status != 1 || r.n <= last {
			t.Fatalf("round %d: fast acquire %+v, %v after token %d", i, r, err, last)
		}
		last = r.n
		if i%2 == 1 {
			// A waiter, granted by the full release script.
			b := "x|10000|1|sw|" + string(rune('a'+i%26)) + "2"
			if r, err := run(ctx, c, acquireScript, k, b, 0, acquireArgs()...); err != nil || r.status != 0 {
				t.Fatalf("waiter: %+v, %v", r, err)
			}
			if _, err := run(ctx, c, releaseScript, k, a, 0); err != nil {
				t.Fatal(err)
			}
			tok, err := c.HGet(ctx, k.Tokens, b).Int64()
			if err != nil || tok <= last {
				t.Fatalf("round %d: granted waiter's token %d (%v) after %d", i, tok, err, last)
			}
			last = tok
			a = b
		}
		if _, err := run(ctx, c, releaseScript, k, a, 0); err != nil {
			t.Fatal(err)
		}
		if n := c.Exists(ctx, k.Holders, k.Queue, k.Tokens).Val(); n != 0 {
			t.Fatalf("round %d: %d keys left after the release", i, n)
		}
	}
}

// A server that lost its scripts (SCRIPT FLUSH, or a restart) is sent the
// script's source (EVAL) and runs it: run does not depend on the load that
// NewSession did.
func TestRunAfterScriptFlush(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	k := KeysWith(DefaultPrefix, "flushed")
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := run(ctx, c, acquireScript, k, "x|10000|1|sf|1", 0, acquireArgs()...)
	if err != nil || r.status != 1 {
		t.Fatalf("acquire after SCRIPT FLUSH: %+v, %v", r, err)
	}
	if n := c.ZCard(ctx, k.Holders).Val(); n != 1 {
		t.Errorf("%d holders after the acquire, want 1", n)
	}
	// EVAL cached the script again: EVALSHA finds it.
	ok, err := c.ScriptExists(ctx, acquireScript.Hash()).Result()
	if err != nil || len(ok) != 1 || !ok[0] {
		t.Errorf("SCRIPT EXISTS after the EVAL: %v, %v", ok, err)
	}
}
