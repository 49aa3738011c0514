package zksync_test

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// TestTokenIsCzxid: an uncontended Lock, whose token comes from its
// create (see createNode), has the czxid of its node as read from the
// server, and tokens grow strictly from one Lock to the next, across
// Sessions.
func TestTokenIsCzxid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := session(t), session(t)
	var last uint64
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b
		}
		m, err := s.Mutex(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, stat, err := a.Conn().Get(l.(*zksync.Lease).Path())
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() != uint64(stat.Czxid) {
			t.Errorf("Lock %d: token %d, node's czxid %d", i, l.Token(), stat.Czxid)
		}
		if l.Token() <= last {
			t.Errorf("Lock %d: token %d after %d", i, l.Token(), last)
		}
		last = l.Token()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFreshLookFallsBack: the first look takes the name's children for a
// read of the new node only while no child came or went since the node's
// create; else it reads the node, and both ways find its czxid.
func TestFreshLookFallsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, other := session(t), session(t)
	for _, tc := range []struct {
		what    string
		between func(parent string)
		fast    bool
	}{
		{"untouched", nil, true},
		{"a child created", func(parent string) {
			if _, err := other.Conn().Create(parent+"/_c_x-lock-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"a child created and deleted", func(parent string) {
			p, err := other.Conn().Create(parent+"/_c_y-lock-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Conn().Delete(p, -1); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		path, czxid, fast, err := zksync.FreshLook(ctx, s, t.Name()+"/"+tc.what, tc.between)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if fast != tc.fast {
			t.Errorf("%s: fast %t, want %t", tc.what, fast, tc.fast)
		}
		_ = path
		if czxid == 0 {
			t.Errorf("%s: no czxid", tc.what)
		}
	}
}

// TestFreshHolderSeesDeletion: a lease taken on the fast path, watching
// only the name's children, ends with LossDeleted when its node is deleted
// from outside, right after the Lock or later, and also once a waiter came
// and went (the lease then watches its node itself).
func TestFreshHolderSeesDeletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, other := session(t), session(t)
	for _, tc := range []struct {
		what   string
		before func(t *testing.T, name string)
	}{
		{"at once", nil},
		{"later", func(*testing.T, string) { time.Sleep(50 * time.Millisecond) }},
		{"after a waiter gave up", func(t *testing.T, name string) {
			m, _ := other.Mutex(name)
			wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer wcancel()
			if l, err := m.Lock(wctx); err == nil {
				l.Release(ctx)
				t.Fatal("a second Lock got the held lock")
			}
		}},
	} {
		name := t.Name() + "/" + tc.what
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tc.before != nil {
			tc.before(t, name)
		}
		if err := other.Conn().Delete(l.(*zksync.Lease).Path(), -1); err != nil {
			t.Fatal(err)
		}
		lostBy(t, tc.what, l, distsync.LossDeleted)
		_ = l.Release(ctx)
		// The name is free again.
		l2, err := m.TryLock(ctx)
		if err != nil {
			t.Fatalf("%s: TryLock after the loss: %v", tc.what, err)
		}
		_ = l2.Release(ctx)
	}
}

// TestFreshHolderForceReleased: ForceRelease ends a lease taken on the
// fast path with LossForceReleased, right after the Lock.
func TestFreshHolderForceReleased(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, op := session(t), session(t)
	for i := range 5 {
		m, err := s.Mutex(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := op.ForceRelease(ctx, t.Name(), l.Token()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("ForceRelease %d took %v: the owner did not delete its node itself", i, d)
		}
		lostBy(t, "holder", l, distsync.LossForceReleased)
		_ = l.Release(ctx)
	}
}

// TestChainedHandoff: waiters queued behind a holder get the lock in
// arrival order, each at its predecessor's release, with growing tokens;
// the waiter right behind the holder, whose node is deleted from outside,
// fails with LossDeleted rather than holding at the holder's release.
func TestChainedHandoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ss []*zksync.Session
	for range 5 {
		ss = append(ss, session(t))
	}
	lock := func(s *zksync.Session) func(context.Context) (distsync.Lease, error) {
		m, err := s.Mutex(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		return m.Lock
	}
	m0, _ := ss[0].Mutex(t.Name())
	path := m0.(*zksync.Mutex).Path()
	holder, err := lock(ss[0])(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*acquisition
	for i := 1; i < 5; i++ {
		ws = append(ws, start(t, ss[0].Conn(), path, i+1, lock(ss[i])))
	}
	children, _, err := ss[0].Conn().Children(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first waiter's node is deleted: it must not take the lock.
	first := ""
	for _, c := range children {
		if first == "" || c[len(c)-10:] < first[len(first)-10:] {
			if c != holder.(*zksync.Lease).Path()[len(path)+1:] {
				first = c
			}
		}
	}
	if err := ss[0].Conn().Delete(path+"/"+first, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := ws[0].wait(t); distsync.LostReason(err) != distsync.LossDeleted {
		t.Fatalf("first waiter, its node deleted: %v, want LossDeleted", err)
	}
	last := holder.Token()
	prev := holder
	for i, w := range ws[1:] {
		if err := prev.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := w.wait(t)
		if err != nil {
			t.Fatalf("waiter %d: %v", i+2, err)
		}
		if l.Token() <= last {
			t.Errorf("waiter %d: token %d after %d", i+2, l.Token(), last)
		}
		last, prev = l.Token(), l
		select {
		case <-l.Done():
			t.Fatalf("waiter %d: lease ended: %v", i+2, l.Err())
		default:
		}
		for _, o := range ws[i+2:] {
			select {
			case <-o.done:
				t.Fatalf("a later waiter got the lock too: %v, %v", o.l, o.err)
			default:
			}
		}
	}
	_ = prev.Release(ctx)
}
