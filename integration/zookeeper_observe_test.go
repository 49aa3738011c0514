package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
)

// TestZooKeeperWaitersFollowSessionExpiry ends, from outside, the session
// of an acquisition of every kind that waits behind a holder: it must fail
// with ErrLost (its node went with the session), not queue again unseen,
// as soon as go-zookeeper learns of the expiry, which is when it
// reconnects (it pauses a second before reconnecting to a single server).
// The Session then acquires again in its new session.
func TestZooKeeperWaitersFollowSessionExpiry(t *testing.T) {
	bg := context.Background()
	kinds := []struct {
		name string
		open func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error)
	}{
		{"Mutex", func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			return zkMutex(t, s, name).Lock
		}},
		{"RWMutex", func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			rw, err := zkNewRWMutex(s, name)
			if err != nil {
				t.Fatal(err)
			}
			return rw.RLock
		}},
		{"Semaphore", func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			sem, err := zkNewSemaphore(bg, s, name, 1)
			if err != nil {
				t.Fatal(err)
			}
			return sem.Acquire
		}},
		{"Election", func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			e := zkElection(t, s, name)
			return func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("waiter"))
				if err != nil {
					return nil, err
				}
				return l, nil
			}
		}},
	}
	var worst time.Duration
	for _, k := range kinds {
		name := fmt.Sprintf("waiter-expiry-%s-%d", k.name, time.Now().UnixNano())
		var held distsync.Lease
		if k.name == "RWMutex" {
			rw, err := zkNewRWMutex(zkSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			held, err = rw.Lock(bg)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if held, err = k.open(zkSession(t), name)(bg); err != nil {
				t.Fatal(err)
			}
		}
		ws := zkSession(t)
		acquire := k.open(ws, name)
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		errc := make(chan error, 1)
		go func() {
			l, err := acquire(ctx)
			if err == nil {
				_ = l.Release(bg)
				err = errors.New("acquired while another holds")
			}
			errc <- err
		}()
		waitKeys(t, zkKeys, name, 2)
		start := time.Now()
		distsynctest.Expire(t, ws)
		var got error
		select {
		case got = <-errc:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not returned 10s after its session expired", k.name)
		}
		took := time.Since(start)
		cancel()
		worst = max(worst, took)
		t.Logf("%s: returned %v after the expiry began: %v", k.name, took, got)
		if !errors.Is(got, distsync.ErrLost) {
			t.Errorf("%s: got %v, want ErrLost", k.name, got)
		}
		if took > 3*time.Second {
			t.Errorf("%s: returned %v after its session expired, want within go-zookeeper's reconnection (3s)", k.name, took)
		}
		if k := zkKeys(t, name); len(k) != 1 {
			t.Errorf("nodes %q after the expiry, want the holder's alone", k)
		}
		_ = held.Release(bg)
		// The same primitive acquires again, in the new session.
		ctx2, cancel2 := context.WithTimeout(bg, 10*time.Second)
		if l, err := acquire(ctx2); err != nil {
			t.Errorf("%s: acquiring again after the expiry: %v", k.name, err)
		} else {
			_ = l.Release(bg)
		}
		cancel2()
		waitKeys(t, zkKeys, name, 0)
	}
	t.Logf("worst return after the expiry: %v", worst)
}

// TestZooKeeperCancelledObservesLeaveNothing starts and cancels 200+
// Observes on an election with a long-lived leader and on one with no
// leader (and no node), while one live observer of each keeps running.
// Once they have returned, the observers' session must hold what the two
// live observers hold and nothing more: the paths it watches on the server
// (wchc), go-zookeeper's watch channels, and the client's goroutines. The
// live observers must still see the next changes.
func TestZooKeeperCancelledObservesLeaveNothing(t *testing.T) {
	const n = 250
	bg := context.Background()
	ctx, cancelAll := context.WithTimeout(bg, 2*time.Minute)
	defer cancelAll()
	base := fmt.Sprintf("observe-cancel-%d", time.Now().UnixNano())
	held, idle := base+"-held", base+"-idle"

	ls := zkSession(t)
	le, err := zkNewElection(ls, held)
	if err != nil {
		t.Fatal(err)
	}
	lead, err := le.Campaign(ctx, []byte("long-lived"))
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Release(bg)

	os := zkSession(t)
	elections := map[string]*zksync.Election{}
	for _, name := range []string{held, idle} {
		e, err := zkNewElection(os, name)
		if err != nil {
			t.Fatal(err)
		}
		elections[name] = e
	}
	g0 := zkSettledGoroutines(0)
	w0, c0, s0 := zkWatchedPaths(t, os.SessionID()), zkClientWatches(os.Conn()), zkWatchCount(t)

	// One live observer of each, past its first delivery.
	liveCtx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	live := map[string]<-chan distsync.Leader{}
	for name, e := range elections {
		live[name] = e.Observe(liveCtx)
		select {
		case l := <-live[name]:
			if l.None != (name == idle) {
				t.Fatalf("live observer of %s: first state %+v", name, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("live observer of %s: no first state within 10s", name)
		}
	}
	g1 := zkSettledGoroutines(0)
	w1, c1, s1 := zkWatchedPaths(t, os.SessionID()), zkClientWatches(os.Conn()), zkWatchCount(t)
	t.Logf("baseline: goroutines %d, data watches of the session %q, client watch channels %d, server watches %d; one live observer of each: goroutines %d, data watches %q, client channels %d, server watches %d",
		g0, w0, c0, s0, g1, w1, c1, s1)

	// Observes cancelled after their first state (their watch is set
	// then), or at once.
	for i := range n {
		for name, e := range elections {
			octx, cancel := context.WithCancel(ctx)
			ch := e.Observe(octx)
			if i%5 != 0 {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatalf("observer %d of %s: no first state within 10s", i, name)
				}
			}
			cancel()
			for range ch {
			}
		}
	}

	// Back to what the live observers hold.
	var w2 []string
	var c2, g2, s2 int
	deadline := time.Now().Add(5 * time.Second)
	for {
		w2, c2, s2 = zkWatchedPaths(t, os.SessionID()), zkClientWatches(os.Conn()), zkWatchCount(t)
		g2 = zkSettledGoroutines(g1)
		if (slices.Equal(sorted(w2), sorted(w1)) && c2 == c1 && s2 == s1 && g2 <= g1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("after %d cancelled Observes of each election: goroutines %d, data watches %q, client watch channels %d, server watches %d", n, g2, w2, c2, s2)
	if !slices.Equal(sorted(w2), sorted(w1)) {
		t.Errorf("data watches %q after the cancelled Observes, want the live observers' %q", w2, w1)
	}
	if s2 != s1 {
		t.Errorf("server watches (mntr zk_watch_count): %d after the cancelled Observes, want the live observers' %d", s2, s1)
	}
	if c2 != c1 {
		t.Errorf("client watch channels: %d after the cancelled Observes, want the live observers' %d", c2, c1)
	}
	if g2 > g1 {
		t.Errorf("goroutines: %d after the cancelled Observes, want the live observers' %d", g2, g1)
	}

	// With no live observer, cancelled Observes of an election whose node
	// does not exist leave no watch on that node (an existence watch
	// would stay until the node is created, maybe never).
	missing, err := zkNewElection(os, base+"-missing")
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		octx, cancel := context.WithCancel(ctx)
		ch := missing.Observe(octx)
		<-ch
		cancel()
		for range ch {
		}
	}
	c3 := zkClientWatches(os.Conn())
	t.Logf("after 50 cancelled Observes of an election with no node: data watches %q, client watch channels %d", zkWatchedPaths(t, os.SessionID()), c3)
	if w := zkWatchedPaths(t, os.SessionID()); slices.Contains(w, missing.Path()) {
		t.Errorf("after the cancelled Observes of %s, which does not exist, the session watches it: %q", missing.Path(), w)
	}
	if c3 > c1+1 {
		t.Errorf("client watch channels: %d after the cancelled Observes of an election with no node, want at most one more than the live observers' %d", c3, c1)
	}

	// The live observers still follow: the leader resigns, a candidate
	// comes to the idle election.
	if err := lead.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitObserved(t, live[held], func(l distsync.Leader) bool { return l.None }, "no leader")
	ie, err := zkNewElection(ls, idle)
	if err != nil {
		t.Fatal(err)
	}
	il, err := ie.Campaign(ctx, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	defer il.Release(bg)
	waitObserved(t, live[idle], func(l distsync.Leader) bool { return !l.None && l.Term == il.Token() }, "the first leader")
}

// waitObserved waits up to 10s for ch to deliver a state that ok accepts.
func waitObserved(t *testing.T, ch <-chan distsync.Leader, ok func(distsync.Leader) bool, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-ch:
			if ok(l) {
				return
			}
		case <-timeout:
			t.Fatalf("live observer: %s not seen within 10s", what)
		}
	}
}

// zkWatchCount returns the server's count of watches, data and child
// watches of every session (mntr's zk_watch_count; wchs and wchc count
// data watches only).
func zkWatchCount(t *testing.T) int {
	t.Helper()
	m := regexp.MustCompile(`zk_watch_count\s+(\d+)`).FindStringSubmatch(zkStateFourLetter(t, "mntr"))
	if m == nil {
		t.Fatal("zookeeper mntr: no zk_watch_count")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
