package integration

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// These tests blackhole a client's connections to Redis (bytes dropped
// both ways, sockets kept open) and check that no call outlives its
// context by more than blackholeSlack. The client is go-redis with its
// default options, as a user would pass it: ReadTimeout 3 s, 3 retries,
// ContextTimeoutEnabled false. The contexts are cancelled without a
// deadline, which go-redis never notices on its own.

const blackholeSlack = 200 * time.Millisecond

// cutClient is a session whose client reaches Redis through a front of
// its own.
type cutClient struct {
	front *testserver.RedisFront
	s     *redissync.Session
}

// newCutClient opens a session through a new front to addr; at cleanup
// the front and the client close first, so that closing the session fails
// fast instead of waiting on the blackhole.
func newCutClient(t *testing.T, addr string, ttl time.Duration) *cutClient {
	t.Helper()
	f, err := testserver.NewRedisFront(addr)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: f.Addr()})
	s, err := redissync.NewSession(context.Background(), c, redissync.WithTTL(ttl))
	if err != nil {
		c.Close()
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		c.Close()
		_ = s.Close()
	})
	return &cutClient{front: f, s: s}
}

// cancelAfter returns a context cancelled (not timed out: it has no
// deadline) d from now.
func cancelAfter(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tm := time.AfterFunc(d, cancel)
	t.Cleanup(func() { tm.Stop(); cancel() })
	return ctx
}

// bounded runs f with a context cancelled after d and fails t if f returns
// later than d+blackholeSlack. It returns f's error.
func bounded(t *testing.T, what string, d time.Duration, f func(ctx context.Context) error) error {
	t.Helper()
	ctx := cancelAfter(t, d)
	start := time.Now()
	err := f(ctx)
	took := time.Since(start)
	if took > d+blackholeSlack {
		t.Errorf("%s: returned %v after the call, %v after its context ended (bound %v); err %v", what, took.Round(time.Millisecond), (took - d).Round(time.Millisecond), blackholeSlack, err)
	} else {
		t.Logf("%s: returned %v after its context ended: %v", what, (took - d).Round(time.Millisecond), err)
	}
	return err
}

// blackholePrims are the acquisitions checked: every primitive, and the
// RWMutex's read lock.
var blackholePrims = append(redisHistPrims[:len(redisHistPrims):len(redisHistPrims)], struct {
	prim string
	open func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error)
}{"rlock", func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
	rw, err := s.RWMutex(name)
	if err != nil {
		return nil, err
	}
	return rw.RLock, nil
}})

// TestRedisBlackhole blackholes the connection of a caller before its
// acquisition, while it waits, and while it holds, for every primitive:
// every call returns within its context plus blackholeSlack, and a cut-off
// holder is told (Done) before its TTL runs out on the server and before
// anyone else acquires.
func TestRedisBlackhole(t *testing.T) {
	r := ownRedis(t)
	const (
		ttl  = 500 * time.Millisecond
		wait = 300 * time.Millisecond
	)
	for _, p := range blackholePrims {
		t.Run(p.prim, func(t *testing.T) {
			name := t.Name()
			open := func(s *redissync.Session) func(context.Context) (distsync.Lease, error) {
				acquire, err := p.open(s, name)
				if err != nil {
					t.Fatal(err)
				}
				return acquire
			}
			// The other client goes straight to the server; a reader's
			// other is a writer.
			other := open(ttlSession(t, r.Addr(), ttl))
			if p.prim == "rlock" {
				rw, err := ttlSession(t, r.Addr(), ttl).RWMutex(name)
				if err != nil {
					t.Fatal(err)
				}
				other = rw.Lock
			}

			// Blackholed before the call (a semaphore checks its limit
			// when opened, so open first).
			c := newCutClient(t, r.Addr(), ttl)
			acquire := open(c.s)
			c.front.Blackhole()
			err := bounded(t, "acquire on a blackholed connection", wait, func(ctx context.Context) error {
				_, err := acquire(ctx)
				return err
			})
			if !errors.Is(err, distsync.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
				t.Errorf("acquire on a blackholed connection: %v, want ErrNotAcquired and context.Canceled", err)
			}
			// The same with a deadline, which go-redis also ignores
			// without ContextTimeoutEnabled.
			dctx, dcancel := context.WithTimeout(context.Background(), wait)
			start := time.Now()
			_, err = acquire(dctx)
			dcancel()
			if took := time.Since(start); took > wait+blackholeSlack {
				t.Errorf("acquire with a %v deadline on a blackholed connection returned after %v", wait, took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("acquire with a deadline on a blackholed connection: %v, want context.DeadlineExceeded", err)
			}

			// Blackholed while waiting behind a holder.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			hl, err := other(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c = newCutClient(t, r.Addr(), ttl)
			wctx, wcancel := context.WithCancel(ctx)
			waited := make(chan error, 1)
			go func() {
				_, err := open(c.s)(wctx)
				waited <- err
			}()
			waitFor(t, func() bool { return len(members(t, r, name)) == 2 }, "the waiter enqueued")
			c.front.Blackhole()
			err = bounded(t, "waiter blackholed while waiting", 0, func(context.Context) error {
				wcancel()
				return <-waited
			})
			if !errors.Is(err, distsync.ErrNotAcquired) {
				t.Errorf("waiter: %v, want ErrNotAcquired", err)
			}
			if err := hl.Release(ctx); err != nil {
				t.Fatal(err)
			}

			// Blackholed while holding.
			c = newCutClient(t, r.Addr(), ttl)
			l, err := open(c.s)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cut := time.Now()
			c.front.Blackhole()
			next := make(chan distsync.Lease, 1)
			go func() {
				nl, err := other(ctx)
				if err != nil {
					t.Errorf("next holder: %v", err)
				}
				// Was the cut-off holder told before this acquisition
				// returned?
				select {
				case <-l.Done():
				default:
					t.Errorf("next holder acquired %v after the cut while the cut-off holder's Done is open", time.Since(cut))
				}
				next <- nl
			}()
			select {
			case <-l.Done():
				t.Logf("holder told %v after the cut: %v", time.Since(cut).Round(time.Millisecond), l.Err())
			case <-time.After(ttl):
				t.Errorf("holder not told within the TTL (%v) of the cut", ttl)
			}
			if !errors.Is(l.Err(), distsync.ErrLost) {
				t.Errorf("holder Err %v, want ErrLost", l.Err())
			}
			bounded(t, "release on a blackholed connection", wait, func(ctx context.Context) error { return l.Release(ctx) })
			if nl := <-next; nl != nil {
				_ = nl.Release(ctx)
			}

			// TryAcquire-like calls on a blackholed connection.
			c = newCutClient(t, r.Addr(), ttl)
			try := tryOf(t, c.s, p.prim, name)
			c.front.Blackhole()
			bounded(t, "try on a blackholed connection", wait, func(ctx context.Context) error {
				_, err := try(ctx)
				return err
			})
		})
	}
}

// tryOf returns the Try call of a primitive.
func tryOf(t *testing.T, s *redissync.Session, prim, name string) func(context.Context) (distsync.Lease, error) {
	t.Helper()
	var (
		try func(context.Context) (distsync.Lease, error)
		err error
	)
	switch prim {
	case "mutex":
		var m distsync.Mutex
		m, err = s.Mutex(name)
		if err == nil {
			try = m.TryLock
		}
	case "rwmutex", "rlock":
		var rw distsync.RWMutex
		rw, err = s.RWMutex(name)
		if err == nil {
			try = rw.TryLock
			if prim == "rlock" {
				try = rw.TryRLock
			}
		}
	case "semaphore":
		var sem distsync.Semaphore
		sem, err = s.Semaphore(context.Background(), name, 1)
		if err == nil {
			try = sem.TryAcquire
		}
	case "election":
		// An election has no try: read the leader instead.
		var e distsync.Election
		e, err = s.Election(name)
		if err == nil {
			try = func(ctx context.Context) (distsync.Lease, error) {
				_, err := e.Leader(ctx)
				return nil, err
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return try
}

// TestRedisBlackholeSession checks the calls around a session on a
// blackholed connection: opening one, an election's Proclaim and Observe,
// and Close with a holder and a waiter.
func TestRedisBlackholeSession(t *testing.T) {
	r := ownRedis(t)
	const (
		ttl  = 500 * time.Millisecond
		wait = 300 * time.Millisecond
	)
	f, err := testserver.NewRedisFront(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := goredis.NewClient(&goredis.Options{Addr: f.Addr()})
	defer c.Close()
	f.Blackhole()
	bounded(t, "NewSession on a blackholed connection", wait, func(ctx context.Context) error {
		s, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl))
		if err == nil {
			_ = s.Close()
			return errors.New("NewSession succeeded on a blackholed connection")
		}
		return err
	})

	name := t.Name()
	// A semaphore's opening and SetLimit do I/O.
	cs := newCutClient(t, r.Addr(), ttl)
	sem, err := cs.s.Semaphore(context.Background(), name+"/s", 2)
	if err != nil {
		t.Fatal(err)
	}
	cs.front.Blackhole()
	bounded(t, "opening a Semaphore on a blackholed connection", wait, func(ctx context.Context) error {
		_, err := cs.s.Semaphore(ctx, name+"/s2", 1)
		return err
	})
	bounded(t, "SetLimit on a blackholed connection", wait, func(ctx context.Context) error { return sem.SetLimit(ctx, 3) })
	if sem.Limit() != 2 {
		t.Errorf("failed SetLimit changed the limit to %d", sem.Limit())
	}

	cc := newCutClient(t, r.Addr(), ttl)
	e, err := cc.s.Election(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ld, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithCancel(ctx)
	obs := e.Observe(octx)
	<-obs // the current leader
	// A waiter of the same session on a mutex held elsewhere.
	hm := redisMutex(t, ttlSession(t, r.Addr(), ttl), name+"/m")
	hl, err := hm.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Release(ctx)
	wm := redisMutex(t, cc.s, name+"/m")
	waitErr := make(chan error, 1)
	go func() {
		_, err := wm.Lock(ctx)
		waitErr <- err
	}()
	waitFor(t, func() bool { return len(members(t, r, name+"/m")) == 2 }, "the waiter enqueued")

	cc.front.Blackhole()
	bounded(t, "Proclaim on a blackholed connection", wait, func(ctx context.Context) error { return ld.Proclaim(ctx, []byte("b")) })
	bounded(t, "Leader on a blackholed connection", wait, func(ctx context.Context) error {
		_, err := e.Leader(ctx)
		return err
	})
	bounded(t, "a new Observe on a blackholed connection, until its channel closes", wait, func(ctx context.Context) error {
		for range e.Observe(ctx) {
		}
		return nil
	})
	ocancel()
	start := time.Now()
	for range obs {
	}
	if took := time.Since(start); took > blackholeSlack {
		t.Errorf("Observe's channel closed %v after its context ended", took)
	}
	// Close: the leases' deletions are bounded by a second.
	start = time.Now()
	_ = cc.s.Close()
	if took := time.Since(start); took > time.Second+blackholeSlack {
		t.Errorf("Close on a blackholed connection took %v", took)
	} else {
		t.Logf("Close on a blackholed connection took %v", took.Round(time.Millisecond))
	}
	select {
	case err := <-waitErr:
		if !errors.Is(err, distsync.ErrClosed) {
			t.Errorf("waiter after Close: %v, want ErrClosed", err)
		}
	case <-time.After(blackholeSlack):
		t.Errorf("waiter still blocked %v after Close returned", blackholeSlack)
	}
	if !errors.Is(ld.Err(), distsync.ErrLost) {
		t.Errorf("leadership after Close: %v, want ErrLost", ld.Err())
	}
}

// waitFor polls cond (a read of server state, not a sleep in place of an
// event) every 5 ms for up to 5 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// members lists the holders and waiters of name on r, read straight from
// the server.
func members(t *testing.T, r *testserver.Redis, name string) []string {
	t.Helper()
	m, err := redisq.Members(context.Background(), redisClient(t, r.Addr()), name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRedisBlackholeHub blackholes every open connection of a session for
// good while new ones get through, as when a firewall forgets established
// flows: the session's pub/sub connection must be replaced (seen on the
// server: its channel gains a subscriber) within two TTLs, after which a
// release reaches a waiter of the session at once, not at its next
// re-check (TTL/3 later).
func TestRedisBlackholeHub(t *testing.T) {
	r := ownRedis(t)
	const ttl = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	f, err := testserver.NewRedisFront(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// A short ReadTimeout, so that the pool's dead connections are
	// dropped quickly: the hub is what this test is about.
	c := goredis.NewClient(&goredis.Options{Addr: f.Addr(), ReadTimeout: 200 * time.Millisecond})
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		f.Close()
		c.Close()
		_ = s.Close()
	}()
	admin := redisClient(t, r.Addr())
	// The server's pub/sub connections, by id (the session's is the only
	// one until the other sessions open below).
	pubsubIDs := func() []string {
		list, err := admin.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if id, _, ok := strings.Cut(strings.TrimPrefix(line, "id="), " "); ok {
				ids = append(ids, id)
			}
		}
		return ids
	}
	first := pubsubIDs()
	if len(first) != 1 {
		t.Fatalf("pub/sub connections %v, want the session's only", first)
	}
	cut := time.Now()
	f.BlackholeOpen()
	deadline := time.Now().Add(2*ttl + time.Second)
	for {
		ids := pubsubIDs()
		if slices.ContainsFunc(ids, func(id string) bool { return id != first[0] }) {
			t.Logf("pub/sub connection %s replaced by %v, %v after the cut", first[0], ids, time.Since(cut).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session's pub/sub connection not replaced %v after its connections were blackholed (pub/sub connections %v)", time.Since(cut), ids)
		}
		time.Sleep(10 * time.Millisecond)
	}

	holder := redisMutex(t, ttlSession(t, r.Addr(), ttl), name)
	hl, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiter := redisMutex(t, s, name)
	got := make(chan time.Time, 1)
	go func() {
		l, err := waiter.Lock(ctx)
		got <- time.Now()
		if err != nil {
			t.Error(err)
			return
		}
		_ = l.Release(ctx)
	}()
	waitFor(t, func() bool { return len(members(t, r, name)) == 2 }, "the waiter enqueued")
	released := time.Now()
	if err := hl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	handoff := (<-got).Sub(released)
	t.Logf("handoff after the replacement: %v", handoff.Round(time.Millisecond))
	if handoff > ttl/6 {
		t.Errorf("handoff took %v: the grant did not reach the waiter (re-check every %v)", handoff, ttl/3)
	}
}

// TestRedisBlackholeReplicas blackholes a session that waits for a
// replica's acknowledgement (WithReplicas, WAIT after each write): the
// acquisition, the renewal and the release stay bounded by their contexts
// and the lease's deadline.
func TestRedisBlackholeReplicas(t *testing.T) {
	g := redisGroup(t, 2)
	const (
		ttl  = time.Second
		wait = 300 * time.Millisecond
	)
	f, err := testserver.NewRedisFront(g.Nodes[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: f.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl), redissync.WithReplicas(1, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		f.Close()
		c.Close()
		_ = s.Close()
	}()
	m := redisMutex(t, s, t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	f.Blackhole()
	select {
	case <-l.Done():
		t.Logf("holder told %v after the cut: %v", time.Since(cut).Round(time.Millisecond), l.Err())
	case <-time.After(ttl):
		t.Errorf("holder not told within the TTL (%v) of the cut", ttl)
	}
	bounded(t, "release on a blackholed connection, with replicas", wait, func(ctx context.Context) error { return l.Release(ctx) })
	bounded(t, "lock on a blackholed connection, with replicas", wait, func(ctx context.Context) error {
		_, err := m.Lock(ctx)
		return err
	})
	bounded(t, "trylock on a blackholed connection, with replicas", wait, func(ctx context.Context) error {
		_, err := m.TryLock(ctx)
		return err
	})
}
