package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/testserver"
)

// redisGroup starts a master and n-1 replicas for one test, stopped at
// cleanup.
func redisGroup(t *testing.T, n int) *testserver.RedisGroup {
	t.Helper()
	g, err := testserver.StartRedisGroup(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

// acquireToken takes and releases one lease of every primitive through
// addr, on a session of its own, and returns the tokens by primitive.
func acquireTokens(t *testing.T, ctx context.Context, addr, prefix string) map[string]uint64 {
	t.Helper()
	c := redisClient(t, addr)
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(redisTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	toks := map[string]uint64{}
	for _, p := range redisHistPrims {
		acquire, err := p.open(s, prefix+p.prim)
		if err != nil {
			t.Fatal(err)
		}
		l, err := acquire(ctx)
		if err != nil {
			t.Fatalf("%s through %s: %v", p.prim, addr, err)
		}
		toks[p.prim] = l.Token()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return toks
}

// TestRedisFailoverTokens promotes a replica that missed the last
// acquisitions of every primitive (its replication link cut at the
// master's front, then REPLICAOF NO ONE) and moves the clients to it: the
// first token it issues is above every token issued before, for every
// primitive. It then restarts the promoted server empty: the tokens still
// go up. Issue 12, item 5: the counter used to go on from the replica's
// stale value, 1 above the last replicated token.
func TestRedisFailoverTokens(t *testing.T) {
	g := redisGroup(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := t.Name() + "/"
	master, replica := g.Fronts[0].Addr(), g.Fronts[1].Addr()

	highest := map[string]uint64{}
	note := func(toks map[string]uint64) {
		for p, tok := range toks {
			highest[p] = max(highest[p], tok)
		}
	}
	// The replica has these: WAIT until it acknowledged them.
	for range 5 {
		note(acquireTokens(t, ctx, master, prefix))
	}
	if n, err := redisClient(t, master).Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	// These it misses.
	g.Fronts[0].CutReplication()
	for range 50 {
		note(acquireTokens(t, ctx, master, prefix))
	}
	if err := g.Promote(1); err != nil {
		t.Fatal(err)
	}
	if role, err := g.Role(1); err != nil || role != "master" {
		t.Fatalf("node 1 after promotion: role %q, %v", role, err)
	}
	check := func(what string, after map[string]uint64) {
		t.Helper()
		for _, p := range redisHistPrims {
			h, a := highest[p.prim], after[p.prim]
			// The margin is how far the new master's clock could have
			// lagged the old one's without a repeated token, here.
			t.Logf("%s, %s: highest before %d, first after %d (margin %v)", what, p.prim, h, a, time.Duration(int64(a)-int64(h))*time.Microsecond)
			if a <= h {
				t.Errorf("%s, %s: first token after %d, not above the highest before %d", what, p.prim, a, h)
			}
		}
	}
	after := acquireTokens(t, ctx, replica, prefix)
	check("promoted replica", after)
	note(after)

	// A restart without the data: the counter starts from the clock.
	g.Nodes[1].Kill()
	if err := g.Nodes[1].Restart(); err != nil {
		t.Fatal(err)
	}
	check("promoted replica restarted empty", acquireTokens(t, ctx, replica, prefix))
}

// TestRedisTokenClockLead measures how far the token counter can run
// ahead of the server's clock: one release that grants n readers at once
// hands out n numbers in one script, at one reading of TIME, so the
// counter ends up to n-1 µs ahead. That lead is part of the clock bound
// in the package documentation: a promoted replica's first token is above
// the old master's last one if the new clock lags the old one by less
// than the failover took, minus the lead.
func TestRedisTokenClockLead(t *testing.T) {
	const readers = 200
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	c := redisClient(t)
	s := redisSession(t, c)
	rw, err := s.RWMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := rw.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leases := make(chan distsync.Lease, readers)
	for range readers {
		go func() {
			l, err := rw.RLock(ctx)
			if err != nil {
				t.Error(err)
			}
			leases <- l
		}()
	}
	waitFor(t, func() bool { return len(redisKeys(t, name)) == readers+1 }, "the readers enqueued")
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The counter and the clock, read atomically right after the grant.
	v, err := c.Eval(ctx, "return {redis.call('GET', KEYS[1]), redis.call('TIME')}", []string{redisq.KeysFor(name).Seq}).Slice()
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := strconv.ParseInt(v[0].(string), 10, 64)
	tm := v[1].([]any)
	sec, _ := strconv.ParseInt(tm[0].(string), 10, 64)
	usec, _ := strconv.ParseInt(tm[1].(string), 10, 64)
	now := sec*1_000_000 + usec
	var lo, hi uint64
	for range readers {
		l := <-leases
		if l == nil {
			continue
		}
		if lo == 0 || l.Token() < lo {
			lo = l.Token()
		}
		hi = max(hi, l.Token())
		_ = l.Release(ctx)
	}
	// lo is the grant's reading of TIME (the counter was behind it), so
	// hi-lo is the lead right after the grant.
	t.Logf("%d readers granted by one release: tokens %d..%d, so the counter was %d µs ahead of that script's clock; at the next script it was %d µs ahead", readers, lo, hi, hi-lo, seq-now)
	if hi-lo != readers-1 {
		t.Errorf("one release granted tokens %d..%d, want %d consecutive", lo, hi, readers)
	}
	if lead := seq - now; lead > readers-1 {
		t.Errorf("counter %d µs ahead of the clock, more than the %d numbers of one grant", lead, readers-1)
	}
}
