package zksync_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// settle gives waiters that have created their nodes the time to watch
// what they wait for: the events of the tests below must find them
// waiting.
func settle() { time.Sleep(300 * time.Millisecond) }

// children returns the children of path, oldest first.
func children(t *testing.T, c *zk.Conn, path string) []string {
	t.Helper()
	ch, _, err := c.Children(path)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(ch, func(i, j int) bool { return ch[i][len(ch[i])-10:] < ch[j][len(ch[j])-10:] })
	return ch
}

// TestSemaphoreCountsDeletions: waiters of a semaphore hold at the
// release that lets each in, in arrival order, and not before: a release
// of one of the holders lets in the first waiter only, although the next
// waiters watch that holder too and count without it.
func TestSemaphoreCountsDeletions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sems []*zksync.Semaphore
	for range 5 {
		sems = append(sems, semaphore(t, session(t), t.Name(), 2))
	}
	c, path := sems[0].Session().Conn(), sems[0].Path()
	a, err := sems[0].Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sems[1].Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*acquisition
	for i, sem := range sems[2:] {
		ws = append(ws, start(t, c, path, i+3, sem.Acquire))
	}
	settle()
	held := func(want int) {
		t.Helper()
		l, err := ws[want].wait(t)
		if err != nil {
			t.Fatalf("waiter %d: %v", want, err)
		}
		select {
		case <-l.Done():
			t.Fatalf("waiter %d: lease ended: %v", want, l.Err())
		default:
		}
		time.Sleep(100 * time.Millisecond) // room for a wrong grant
		for _, o := range ws[want+1:] {
			select {
			case <-o.done:
				t.Fatalf("waiter %d held too, after waiter %d: %v, %v", slicesIndex(ws, o), want, o.l, o.err)
			default:
			}
		}
	}
	// The younger holder goes first: every waiter watches it.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	held(0)
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	held(1)
	if err := ws[0].l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	held(2)
}

func slicesIndex(ws []*acquisition, w *acquisition) int {
	for i, o := range ws {
		if o == w {
			return i
		}
	}
	return -1
}

// gate holds back what a connection reads while it is shut: a read
// already under way returns its bytes only once the gate opens, so that
// whatever the server sends meanwhile is read at once, back to back.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) reopen() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	<-ch
}

// dial is a zk.Dialer whose connections read through g.
func (g *gate) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return gatedConn{c, g}, nil
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.g.wait()
	return n, err
}

// TestSemaphoreMarkedWaiterDoesNotHold: a waiter whose node is marked by
// ForceRelease in the transaction that deletes the nodes it waits for
// fails with LossForceReleased; it does not hold, although the deletions
// alone would let it in. Limit 2: holders h1 and h2, then a node x, then
// the waiter, which watches all three. One Multi deletes x, marks the
// waiter's node and deletes h1. The waiter's connection holds the events
// back until all three are in, and on one P go-zookeeper delivers them
// back to back: the waiter wakes at x's deletion and finds the other two
// in. It counts h1's deletion, and must check its own node's event before
// it holds.
func TestSemaphoreMarkedWaiterDoesNotHold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for round := range 3 {
		name := fmt.Sprintf("%s-%d", t.Name(), round)
		g := newGate()
		h1, h2 := semaphore(t, session(t), name, 2), semaphore(t, session(t), name, 2)
		waiter := semaphore(t, session(t, zksync.WithDialer(g.dial)), name, 2)
		c, path := h1.Session().Conn(), h1.Path()
		l1, err := h1.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := h2.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x, err := c.Create(path+"/_c_x-permit-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		if err != nil {
			t.Fatal(err)
		}
		w := start(t, c, path, 4, waiter.Acquire)
		settle()
		ch := children(t, c, path)
		g.shut()
		_, err = c.Multi(
			&zk.DeleteRequest{Path: x, Version: -1},
			&zk.SetDataRequest{Path: path + "/" + ch[3], Data: zksync.ForcedMarker, Version: -1},
			&zk.DeleteRequest{Path: path + "/" + ch[0], Version: -1})
		time.Sleep(100 * time.Millisecond)
		g.reopen()
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.wait(t)
		if distsync.LostReason(err) != distsync.LossForceReleased {
			t.Fatalf("round %d: waiter marked as its blockers went: %v, %v; want LossForceReleased", round, got, err)
		}
		_ = l1.Release(ctx)
		_ = l2.Release(ctx)
	}
}

// TestSemaphoreNeverOverLimit: clients taking one or two permits of a
// semaphore of limit 3 in a loop never hold more than 3 together.
func TestSemaphoreNeverOverLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		inUse, most atomic.Int64
		grants      atomic.Int64
		wg          sync.WaitGroup
	)
	for i := range 7 {
		sem := semaphore(t, session(t), t.Name(), 3)
		n := int64(1 + i%2)
		wg.Go(func() {
			for range 12 {
				l, err := sem.AcquireN(ctx, n)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Error(err)
					}
					return
				}
				grants.Add(1)
				v := inUse.Add(n)
				for m := most.Load(); v > m && !most.CompareAndSwap(m, v); m = most.Load() {
				}
				time.Sleep(time.Duration(1+i%3) * time.Millisecond)
				inUse.Add(-n)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > 3 {
		t.Fatalf("%d permits held at once, limit 3", m)
	}
	t.Logf("%d grants, at most %d permits at once", grants.Load(), most.Load())
}

// TestSemaphoreReplacedSinceLastRead: an acquisition skips the read of the
// stored limit when its Semaphore's last read showed its own limit. When
// the semaphore went idle and another limit was stored since, it still
// takes the idle semaphore with its own limit, as after a read, rather
// than fail with ErrLimitMismatch; while the other limit is in use, it
// fails.
func TestSemaphoreReplacedSinceLastRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	two := semaphore(t, session(t), t.Name(), 2)
	c, path := two.Session().Conn(), two.Path()
	cycle := func(sem *zksync.Semaphore) {
		t.Helper()
		l, err := sem.Acquire(ctx)
		if err != nil {
			t.Fatalf("limit %d: %v", sem.Limit(), err)
		}
		if data, _, err := c.Get(path); err != nil || string(data) != fmt.Sprint(sem.Limit()) {
			t.Fatalf("limit %d held, stored %q, %v", sem.Limit(), data, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cycle(two) // two's last read: 2
	three := semaphore(t, session(t), t.Name(), 3)
	cycle(three) // idle now, storing 3
	cycle(two)
	cycle(three)
	l, err := three.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.Acquire(ctx); !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("limit 2 while 3 is in use: %v, want ErrLimitMismatch", err)
	}
	waitChildren(t, c, path, 1)
	_ = l.Release(ctx)
}
