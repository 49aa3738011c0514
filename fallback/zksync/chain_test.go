package zksync_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

// notYet fails the test if a has returned, after a moment's room for a
// wrong grant.
func notYet(t *testing.T, a *acquisition, what string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-a.done:
		t.Fatalf("%s returned: %v, %v", what, a.l, a.err)
	default:
	}
}

// mutexes returns n Mutexes of name, each on a session of its own.
func mutexes(t *testing.T, name string, n int) []*zksync.Mutex {
	t.Helper()
	ms := make([]*zksync.Mutex, n)
	for i := range ms {
		m, err := session(t).Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m.(*zksync.Mutex)
	}
	return ms
}

// TestLockTwoBack: a lock waiter two back (holder A, waiter B, then W)
// watches A and B. Whichever goes first, W holds only once both are gone:
// A's release hands the lock to B, not to W, and B's node deleted from
// outside leaves W behind A.
func TestLockTwoBack(t *testing.T) {
	for _, first := range []string{"holder released", "waiter deleted"} {
		t.Run(first, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			name := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
			ms := mutexes(t, name, 3)
			c, path := ms[0].Session().Conn(), ms[0].Path()
			a, err := ms[0].Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := start(t, c, path, 2, ms[1].Lock)
			w := start(t, c, path, 3, ms[2].Lock)
			settle()
			if first == "holder released" {
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
				lb, err := b.wait(t)
				if err != nil {
					t.Fatalf("B: %v", err)
				}
				notYet(t, w, "W, while B holds,")
				if err := lb.Release(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				kids := children(t, c, path)
				if err := c.Delete(path+"/"+kids[1], -1); err != nil {
					t.Fatal(err)
				}
				if _, err := b.wait(t); distsync.LostReason(err) != distsync.LossDeleted {
					t.Fatalf("B, its node deleted: %v, want LossDeleted", err)
				}
				notYet(t, w, "W, while A holds,")
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
			}
			l, err := w.wait(t)
			if err != nil {
				t.Fatalf("W: %v", err)
			}
			if l.Token() <= a.Token() {
				t.Errorf("W's token %d not above A's %d", l.Token(), a.Token())
			}
		})
	}
}

// TestLockLongQueue: a holder and 24 waiters, each with a session of its
// own, queued on one lock. One waiter in the middle gives up and one
// waiter's node is deleted from outside before the holder releases. The
// others hold one at a time, in arrival order, with growing tokens.
func TestLockLongQueue(t *testing.T) {
	const n = 24
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	ms := mutexes(t, name, n+1)
	c, path := ms[0].Session().Conn(), ms[0].Path()
	holder, err := ms[0].Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		inside atomic.Int32
		order  = make(chan int, n)
		ws     []*acquisition
		quit   = 10 // gives up
		gone   = 17 // its node is deleted
	)
	qctx, qcancel := context.WithCancel(ctx)
	defer qcancel()
	for i := 1; i <= n; i++ {
		lock := func(ctx context.Context) (distsync.Lease, error) {
			if i == quit {
				ctx = qctx
			}
			l, err := ms[i].Lock(ctx)
			if err != nil {
				return nil, err
			}
			if inside.Add(1) != 1 {
				t.Errorf("waiter %d holds with another", i)
			}
			order <- i
			time.Sleep(2 * time.Millisecond)
			inside.Add(-1)
			return l, l.Release(ctx)
		}
		ws = append(ws, start(t, c, path, i+1, lock))
	}
	settle()
	qcancel()
	if _, err := ws[quit-1].wait(t); !errors.Is(err, distsync.ErrNotAcquired) {
		t.Fatalf("waiter %d, cancelled: %v", quit, err)
	}
	kids := children(t, c, path)
	if len(kids) != n {
		t.Fatalf("%d nodes after the cancellation, want %d", len(kids), n)
	}
	if err := c.Delete(path+"/"+kids[gone-1], -1); err != nil { // index 0 is the holder's
		t.Fatal(err)
	}
	if _, err := ws[gone-1].wait(t); distsync.LostReason(err) != distsync.LossDeleted {
		t.Fatalf("waiter %d, its node deleted: %v, want LossDeleted", gone, err)
	}
	settle()
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	last := holder.Token()
	for i := 1; i <= n; i++ {
		if i == quit || i == gone {
			continue
		}
		l, err := ws[i-1].wait(t)
		if err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
		if got := <-order; got != i {
			t.Fatalf("waiter %d held, want %d", got, i)
		}
		if l.Token() <= last {
			t.Errorf("waiter %d: token %d after %d", i, l.Token(), last)
		}
		last = l.Token()
	}
}
