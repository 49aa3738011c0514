package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
)

// waitDone waits for l to end and checks it was lost.
func waitLost(t *testing.T, l distsync.Lease, within time.Duration, what string) {
	t.Helper()
	start := time.Now()
	select {
	case <-l.Done():
	case <-time.After(within):
		t.Fatalf("%s: holder not told within %v", what, within)
	}
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("%s: Err = %v, want ErrLost", what, l.Err())
	}
	t.Logf("%s: loss reported after %v: %v", what, time.Since(start), l.Err())
}

// TestZooKeeperServerKillRestart kills the server under a holder and a
// waiter. The holder must learn at once that its ownership is uncertain;
// after the restart (its session survives it) the lost lease's node is
// removed, the waiter gets the lock, and no node is left at the end.
func TestZooKeeperServerKillRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	holder := zkMutex(t, zkSession(t, zksync.WithTTL(20*time.Second)), name)
	waiter := zkMutex(t, zkSession(t, zksync.WithTTL(20*time.Second)), name)
	l, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	var wl distsync.Lease
	go func() {
		var err error
		wl, err = waiter.Lock(ctx)
		got <- err
	}()
	waitKeys(t, zkKeys, name, 2)

	zkServer.Kill()
	restarted := false
	defer func() {
		if !restarted {
			_ = zkServer.Restart()
		}
	}()
	waitLost(t, l, 5*time.Second, "server killed")
	if err := zkServer.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiter after the restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waiter did not get the lock after the restart")
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release of the lost lease: %v", err)
	}
	if err := wl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitKeys(t, zkKeys, name, 0)
}

// TestZooKeeperSessionExpiry cuts a holder off for longer than its session
// timeout: the server expires the session and deletes its node. The holder
// is told at the disconnection; once back, go-zookeeper opens a new session
// silently, and the old session's lease stays lost while the Session works
// on in the new one.
func TestZooKeeperSessionExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	const timeout = time.Second
	p := distsynctest.NewProxy(t, zkServer.Addr())
	s := zkSessionTo(t, p.Addr(), zksync.WithTTL(timeout), zksync.WithDisconnectGrace(timeout/3))
	m := zkMutex(t, s, name)
	old := s.SessionID()
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Cut()
	waitLost(t, l, 5*time.Second, "cut off (grace timeout/3)")
	// The server expires the session about a timeout after the cut.
	other := zkMutex(t, zkSession(t), name)
	var l2 distsync.Lease
	for l2 == nil {
		if l2, err = other.TryLock(ctx); err != nil && !errors.Is(err, distsync.ErrWouldBlock) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the expired session's node was not deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = l2.Release(ctx)
	p.Heal()
	l3, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock through the Session after its session expired: %v", err)
	}
	if s.SessionID() == old {
		t.Fatalf("session ID %x unchanged after expiry", old)
	}
	if l.Err() == nil || l3.Token() <= l.Token() {
		t.Fatalf("old lease Err %v, new token %d vs old %d", l.Err(), l3.Token(), l.Token())
	}
	_ = l3.Release(ctx)
	waitKeys(t, zkKeys, name, 0)
}

// fencedCounter is a store that rejects stale fencing tokens when fenced.
type fencedCounter struct {
	mu      sync.Mutex
	fenced  bool
	highest uint64
	value   int
	log     []string
}

func (c *fencedCounter) write(token uint64, who string, v int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fenced && token < c.highest {
		return fmt.Errorf("stale token %d < %d", token, c.highest)
	}
	c.highest = max(c.highest, token)
	c.value = v
	c.log = append(c.log, fmt.Sprintf("%s=%d@%d", who, v, token))
	return nil
}

// TestZooKeeperFencedCounter: a holder cut off past its session timeout
// (standing for a long pause) reads the counter, the lock passes on and the
// next holder increments it, then the stale holder writes its increment.
// The fenced store rejects the stale write (no lost update); the unfenced
// control accepts it and loses the other increment.
func TestZooKeeperFencedCounter(t *testing.T) {
	for _, fenced := range []bool{false, true} {
		t.Run(fmt.Sprintf("fenced=%v", fenced), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			name := t.Name()
			store := &fencedCounter{fenced: fenced}
			p := distsynctest.NewProxy(t, zkServer.Addr())
			stale := zkMutex(t, zkSessionTo(t, p.Addr(), zksync.WithTTL(time.Second)), name)
			next := zkMutex(t, zkSession(t), name)

			l1, err := stale.Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			read := store.value // read under the lock, then "pause"
			p.Cut()
			l2, err := next.Lock(ctx) // granted once the stale session expires
			if err != nil {
				t.Fatal(err)
			}
			if err := store.write(l2.Token(), "next", store.value+1); err != nil {
				t.Fatalf("current holder's write: %v", err)
			}
			_ = l2.Release(ctx)
			staleErr := store.write(l1.Token(), "stale", read+1)
			t.Logf("history %v; stale write: %v", store.log, staleErr)
			if fenced {
				if staleErr == nil || store.value != 1 {
					t.Fatalf("fenced store accepted the stale write: value %d, %v", store.value, store.log)
				}
			} else if staleErr != nil || store.value != 1 || len(store.log) != 2 {
				t.Fatalf("control: the unfenced store should accept the stale write and lose an update: %v", store.log)
			}
			p.Heal()
			_ = l1.Release(ctx)
		})
	}
}

// TestZooKeeperCreateReplyLost makes a waiter's create reach the server
// while its reply is lost, then breaks the connection: once reconnected
// (same session), the waiter must find its node by its guid rather than
// create a second one (an orphan that would block the name for the
// session's life), and be granted the lock in its turn.
func TestZooKeeperCreateReplyLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	holder, err := zkMutex(t, zkSession(t), name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := distsynctest.NewProxy(t, zkServer.Addr())
	s := zkSessionTo(t, p.Addr(), zksync.WithTTL(10*time.Second), zksync.WithDisconnectGrace(3*time.Second))
	m := zkMutex(t, s, name)
	sid := s.SessionID()

	p.Mute()
	got := make(chan distsync.Lease, 1)
	go func() {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitKeys(t, zkKeys, name, 2) // the create was applied; its reply is lost
	p.Cut()
	p.Unmute()
	p.Heal()

	// Reconnected in the same session, the waiter looks for its node: the
	// name must keep exactly two nodes, the holder's and the waiter's.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if keys := zkKeys(t, name); len(keys) != 2 {
			t.Fatalf("after the lost reply the name has nodes %q, want the holder's and one waiter's", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case l := <-got:
		t.Fatalf("waiter got the lock (%v) while it was held", l)
	default:
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if s.SessionID() != sid {
		t.Fatalf("session changed from %x to %x: the test meant a reconnect, not an expiry", sid, s.SessionID())
	}
	if l.Token() <= holder.Token() {
		t.Fatalf("waiter token %d not above holder token %d", l.Token(), holder.Token())
	}
	waitKeys(t, zkKeys, name, 1)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitKeys(t, zkKeys, name, 0)
}
