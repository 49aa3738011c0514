package etcdq

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// countedQueue returns the queue of name on a caller's session over a
// client of its own, and a counter of the Txn requests that client sends.
func countedQueue(t *testing.T, name string) (*Queue, *atomic.Int64) {
	t.Helper()
	txns := new(atomic.Int64)
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/Txn") {
			txns.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return queueOn(t, c, 10, name), txns
}

type acquired struct {
	l   *Lease
	err error
}

// acquireAsync starts an acquisition of class c on q.
func acquireAsync(ctx context.Context, q *Queue, c Class) <-chan acquired {
	res := make(chan acquired, 1)
	go func() {
		l, err := q.Acquire(ctx, q.src.Recorder().Target(telemetry.Mutex, "", q.name), c, "v")
		res <- acquired{l, err}
	}()
	return res
}

// waitKeys waits until q's prefix holds n keys, then lets the waiters set
// up their watches and asks.
func waitKeys(t *testing.T, q *Queue, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := q.c.Get(context.Background(), q.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys under %q, want %d", resp.Count, q.prefix, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// line is a holder and two waiters queued behind it, each on a session
// of its own: a holds, b and c wait in that order.
type line struct {
	qa     *Queue
	a      acquired
	rb, rc <-chan acquired
	txnsC  *atomic.Int64 // the Txns c's client sends
}

// lineUp queues a line of class on name; b waits under bctx.
func lineUp(t *testing.T, ctx, bctx context.Context, name string, class Class) line {
	t.Helper()
	qa, _ := countedQueue(t, name)
	qb, _ := countedQueue(t, name)
	qc, txns := countedQueue(t, name)
	a := await(t, acquireAsync(ctx, qa, class), "first")
	if a.err != nil {
		t.Fatal(a.err)
	}
	rb := acquireAsync(bctx, qb, class)
	waitKeys(t, qa, 2)
	rc := acquireAsync(ctx, qc, class)
	waitKeys(t, qa, 3)
	return line{qa: qa, a: a, rb: rb, rc: rc, txnsC: txns}
}

func await(t *testing.T, res <-chan acquired, what string) acquired {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no result within 10s", what)
		return acquired{}
	}
}

func pending(t *testing.T, res <-chan acquired, what string) {
	t.Helper()
	select {
	case r := <-res:
		t.Fatalf("%s returned (%v, %v) while an older key is held", what, r.l, r.err)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestHandoffKnownHead: the third in a queue watches the first key too;
// when it goes, the third asks once and learns that the second is now the
// oldest, so the second's release makes it the holder with no request of
// its own. A candidate (Class.Confirm) still asks after the last delete.
func TestHandoffKnownHead(t *testing.T) {
	for _, c := range []struct {
		name  string
		class Class
	}{{"exclusive", Exclusive}, {"candidate", Candidate}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			ln := lineUp(t, ctx, ctx, t.Name(), c.class)
			a, rb, rc, txns := ln.a, ln.rb, ln.rc, ln.txnsC

			before := txns.Load()
			if err := a.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			b := await(t, rb, "second")
			if b.err != nil {
				t.Fatal(b.err)
			}
			pending(t, rc, "third")
			asked := txns.Load() - before
			if c.class.Confirm && asked != 0 {
				t.Fatalf("a candidate behind the next one sent %d Txns at the first handoff, want 0 (it watches its predecessor only)", asked)
			}
			if !c.class.Confirm && asked != 1 {
				t.Fatalf("the third sent %d Txns when the first key went, want 1 (is the second now the oldest?)", asked)
			}

			before = txns.Load()
			if err := b.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			r := await(t, rc, "third")
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.l.Release(ctx)
			if r.l.Token() <= b.l.Token() {
				t.Fatalf("token %d after %d", r.l.Token(), b.l.Token())
			}
			asked = txns.Load() - before
			if want := int64(0); c.class.Confirm {
				if asked != 1 {
					t.Fatalf("a candidate sent %d Txns at its handoff, want 1 (the confirmation)", asked)
				}
			} else if asked != want {
				t.Fatalf("the third sent %d Txns at its handoff, want none", asked)
			}
		})
	}
}

// TestHandoffCancelledPredecessor: a waiter's predecessor that gives up
// while an older key is held does not make the waiter the holder, also
// when the waiter watches the older key too.
func TestHandoffCancelledPredecessor(t *testing.T) {
	ctx := context.Background()
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ln := lineUp(t, ctx, bctx, t.Name(), Exclusive)
	a, rb, rc := ln.a, ln.rb, ln.rc
	cancel()
	if b := await(t, rb, "cancelled"); !errors.Is(b.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", b.err)
	}
	pending(t, rc, "the waiter behind the cancelled one")
	if err := a.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, rc, "the waiter behind the cancelled one")
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = r.l.Release(ctx)
}

// TestKnownHeadWaiterDeleted: a waiter that knows its predecessor to be
// the oldest key still fails with ErrLost when its own key is deleted
// from outside, at once, not at the handoff.
func TestKnownHeadWaiterDeleted(t *testing.T) {
	ctx := context.Background()
	ln := lineUp(t, ctx, ctx, t.Name(), Exclusive)
	qa, a, rb, rc := ln.qa, ln.a, ln.rb, ln.rc
	if err := a.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b := await(t, rb, "second")
	if b.err != nil {
		t.Fatal(b.err)
	}
	defer b.l.Release(ctx)
	waitKeys(t, qa, 2) // the third has asked and knows the second to be the oldest
	resp, err := qa.c.Get(ctx, qa.prefix, clientv3.WithLastCreate()...)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("newest key: %v, %v", resp, err)
	}
	if _, err := qa.c.Delete(ctx, string(resp.Kvs[0].Key)); err != nil {
		t.Fatal(err)
	}
	r := await(t, rc, "the waiter whose key was deleted")
	if !errors.Is(r.err, distsync.ErrLost) {
		t.Fatalf("waiter whose key was deleted: %v, %v; want ErrLost", r.l, r.err)
	}
}

// TestKeyReuse: a key released cleanly is reused by the queue's next
// acquisition on the same lease, with a new create revision (a strictly
// greater token); a key that was deleted from outside is not, nor is one
// of another class.
func TestKeyReuse(t *testing.T) {
	ctx := context.Background()
	q, _ := countedQueue(t, t.Name())
	acquire := func(c Class) *Lease {
		t.Helper()
		r := await(t, acquireAsync(ctx, q, c), "acquire")
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.l
	}
	l1 := acquire(Exclusive)
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := acquire(Exclusive)
	if l2.Key() != l1.Key() || l2.Token() <= l1.Token() {
		t.Fatalf("after a clean release: key %q token %d, then key %q token %d; want the same key, a greater token", l1.Key(), l1.Token(), l2.Key(), l2.Token())
	}
	// A release that finds its key gone (deleted from outside) does not
	// offer it again.
	if _, err := q.c.Delete(ctx, l2.Key()); err != nil {
		t.Fatal(err)
	}
	<-l2.Done()
	_ = l2.Release(ctx)
	l3 := acquire(Exclusive)
	if l3.Key() == l2.Key() {
		t.Fatalf("a key deleted from outside was reused: %q", l3.Key())
	}
	if err := l3.Release(ctx); err != nil {
		t.Fatal(err)
	}
	other := Class{Sub: "r", Wait: "w"}
	l4 := acquire(other)
	if l4.Key() == l3.Key() || !strings.HasPrefix(l4.Key(), q.prefix+"r") {
		t.Fatalf("class r got key %q (the last released was %q)", l4.Key(), l3.Key())
	}
	_ = l4.Release(ctx)
}

// TestFarWaiterDeleted: a waiter more than nearHead keys from the head has
// no watch on its own key; when its key is deleted from outside, it fails
// with ErrLost at its next check, when the key before it goes, instead of
// waiting for ever. A waiter near the head is told at once
// (TestKnownHeadWaiterDeleted).
func TestFarWaiterDeleted(t *testing.T) {
	ctx := context.Background()
	name := t.Name()
	qh, _ := countedQueue(t, name)
	h := await(t, acquireAsync(ctx, qh, Exclusive), "holder")
	if h.err != nil {
		t.Fatal(h.err)
	}
	n := nearHead + 2
	waiters := make([]<-chan acquired, n)
	for i := range waiters {
		q, _ := countedQueue(t, name)
		waiters[i] = acquireAsync(ctx, q, Exclusive)
		waitKeys(t, qh, int64(i+2))
	}
	resp, err := qh.c.Get(ctx, qh.prefix, clientv3.WithLastCreate()...)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("newest key: %v, %v", resp, err)
	}
	if _, err := qh.c.Delete(ctx, string(resp.Kvs[0].Key)); err != nil {
		t.Fatal(err)
	}
	// The far waiter is not told while the key before it stays.
	pending(t, waiters[n-1], "the far waiter whose key was deleted")
	// The queue drains up to it: each releases as it holds.
	if err := h.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n - 1 {
		r := await(t, waiters[i], "waiter")
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		if err := r.l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := await(t, waiters[n-1], "the far waiter whose key was deleted")
	if !errors.Is(r.err, distsync.ErrLost) {
		t.Fatalf("far waiter whose key was deleted: %v, %v; want ErrLost", r.l, r.err)
	}
}
