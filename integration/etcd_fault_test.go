package integration

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/mutex"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fencedStore is a protected resource: a counter that accepts a write only
// with a fencing token at least as high as every token it accepted before.
type fencedStore struct {
	mu       sync.Mutex
	highest  uint64
	value    int
	rejected int
}

// increment reads the counter, works for hold, and writes it back with
// token, as a lock holder's read-modify-write would.
func (s *fencedStore) increment(token uint64, hold time.Duration) bool {
	s.mu.Lock()
	v := s.value
	s.mu.Unlock()
	time.Sleep(hold)
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		s.rejected++
		return false
	}
	s.highest, s.value = token, v+1
	return true
}

// churn is a set of clients contending for one primitive on a cluster
// while the test injects faults; it counts what happened.
type churn struct {
	overlaps overlapDetector
	store    fencedStore
	acquired atomic.Int64
	written  atomic.Int64
	failures atomic.Int64
	lastErr  atomic.Value
}

// opener opens the primitive under churn on a client: its acquire call and
// its Close (the Session's).
type opener func(ctx context.Context, c *clientv3.Client) (acquire func(context.Context) (distsync.Lease, error), close func() error, err error)

// sessionOpener opens a 5 s Session on c and the primitive open returns on
// it; close closes the Session.
func sessionOpener(open func(ctx context.Context, s *etcdsync.Session) (func(context.Context) (distsync.Lease, error), error)) opener {
	return func(ctx context.Context, c *clientv3.Client) (func(context.Context) (distsync.Lease, error), func() error, error) {
		s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(5*time.Second))
		if err != nil {
			return nil, nil, err
		}
		acquire, err := open(ctx, s)
		if err != nil {
			_ = s.Close()
			return nil, nil, err
		}
		return acquire, s.Close, nil
	}
}

// mutexOpener opens the etcd Mutex called name on a 5 s Session.
func mutexOpener(name string) opener {
	return sessionOpener(func(_ context.Context, s *etcdsync.Session) (func(context.Context) (distsync.Lease, error), error) {
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	})
}

// run starts workers clients, each with its own client over all members
// and its own session, looping acquire / inside / Release until ctx ends.
// A failed acquisition (an election in progress, a session lease that
// ended) is counted and retried; after ErrClosed, with a new Session.
func (c *churn) run(ctx context.Context, t *testing.T, cl *distsynctest.EtcdServer, workers int, open opener, inside func(distsync.Lease)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		client := cl.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				acquire func(context.Context) (distsync.Lease, error)
				closer  func() error
			)
			defer func() {
				if closer != nil {
					_ = closer()
				}
			}()
			for ctx.Err() == nil {
				if acquire == nil {
					var err error
					if acquire, closer, err = open(ctx, client); err != nil {
						c.fail(err)
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				l, err := acquire(actx)
				cancel()
				if err != nil {
					c.fail(err)
					if errors.Is(err, distsync.ErrClosed) {
						_ = closer()
						acquire, closer = nil, nil
					}
					continue
				}
				c.acquired.Add(1)
				inside(l)
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = l.Release(rctx)
				rcancel()
			}
		}()
	}
	return &wg
}

// exclusive is the critical section of a Mutex under churn: the overlap
// detector (for leases not known to be lost) and a fenced increment.
func (c *churn) exclusive(l distsync.Lease) {
	c.overlaps.inside.Add(1)
	if c.overlaps.inside.Load() > 1 && l.Err() == nil {
		c.overlaps.overlaps.Add(1)
	}
	if c.store.increment(l.Token(), time.Millisecond) {
		c.written.Add(1)
	}
	c.overlaps.inside.Add(-1)
}

func (c *churn) fail(err error) {
	if !errors.Is(err, context.Canceled) {
		c.failures.Add(1)
		c.lastErr.Store(err.Error())
	}
}

// progress waits until n more acquisitions than at the call have happened.
func (c *churn) progress(t *testing.T, n int64, what string) {
	t.Helper()
	want := c.acquired.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for c.acquired.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no progress: %d acquisitions, want %d (last error: %v)", what, c.acquired.Load(), want, c.lastErr.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *churn) check(t *testing.T) {
	t.Helper()
	t.Logf("acquisitions %d, fenced writes %d, rejected %d, failed Locks %d (last: %v)",
		c.acquired.Load(), c.written.Load(), c.store.rejected, c.failures.Load(), c.lastErr.Load())
	if n := c.overlaps.overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping critical sections between live leases", n)
	}
	if c.store.rejected != 0 || int64(c.store.value) != c.acquired.Load() {
		t.Errorf("fenced counter %d after %d acquisitions, %d stale writes rejected: updates were lost",
			c.store.value, c.acquired.Load(), c.store.rejected)
	}
}

// TestEtcdMutexLeaderStop stops the leader of a 3-member cluster while 8
// clients contend, then restarts it: the Mutex keeps working and safety
// holds throughout.
func TestEtcdMutexLeaderStop(t *testing.T) {
	cl := distsynctest.EtcdCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var c churn
	wg := c.run(ctx, t, cl, 8, mutexOpener("fault-leader-stop"), c.exclusive)
	defer func() { cancel(); wg.Wait() }()

	c.progress(t, 20, "before the fault")
	leader := cl.WaitLeader(t)
	cl.Stop(t, leader)
	t.Logf("stopped leader %d", leader)
	c.progress(t, 30, "with the old leader stopped")
	cl.Restart(t, leader)
	c.progress(t, 30, "after the restart")
	cancel()
	wg.Wait()
	c.check(t)
}

// TestEtcdMutexMemberRestart stops and restarts a follower twice under the
// same load.
func TestEtcdMutexMemberRestart(t *testing.T) {
	cl := distsynctest.EtcdCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var c churn
	wg := c.run(ctx, t, cl, 8, mutexOpener("fault-member-restart"), c.exclusive)
	defer func() { cancel(); wg.Wait() }()

	c.progress(t, 20, "before the fault")
	for range 2 {
		follower := (cl.WaitLeader(t) + 1) % 3
		cl.Stop(t, follower)
		c.progress(t, 20, "with a follower stopped")
		cl.Restart(t, follower)
		c.progress(t, 20, "after the restart")
	}
	cancel()
	wg.Wait()
	c.check(t)
}

// TestEtcdMutexCutOffWaiter isolates the member a waiter talks to: the
// waiter fails with an error within its session TTL instead of hanging,
// the holder elsewhere keeps its lock, and after the member heals the
// waiter's key is gone.
func TestEtcdMutexCutOffWaiter(t *testing.T) {
	cl := distsynctest.EtcdCluster(t, 3)
	ctx := context.Background()
	name := "fault-cut-off-waiter"
	leader := cl.WaitLeader(t)
	cut := (leader + 1) % 3

	holderM, err := etcdSessionWith(t, cl.MemberClient(t, leader), 5*time.Second).Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := holderM.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiterM, err := etcdSessionWith(t, cl.MemberClient(t, cut), 2*time.Second).Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	// The waiter's own deadline is far away: it must give up by itself.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	go func() {
		l, err := waiterM.Lock(wctx)
		if err == nil {
			_ = l.Release(ctx)
		}
		errc <- err
	}()
	observer := cl.MemberClient(t, leader)
	waitEtcdKeys(t, observer, name, 2)

	cl.Isolate(t, cut)
	start := time.Now()
	select {
	case err := <-errc:
		t.Logf("cut-off waiter failed after %v: %v", time.Since(start), err)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cut-off waiter: got %v, want an error of its own", err)
		}
		if !errors.Is(err, distsync.ErrLost) && !errors.Is(err, distsync.ErrUnavailable) {
			t.Fatalf("cut-off waiter: got %v, want ErrLost or ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waiter on a cut-off member still waiting after 30s")
	}
	if holder.Err() != nil {
		t.Fatalf("holder on a healthy member lost its lock: %v", holder.Err())
	}
	cl.Heal(t, cut)
	cl.WaitLeader(t)
	waitEtcdKeys(t, observer, name, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdMutexLossBeforeExpiry cuts a holder's client off from etcd: the
// holder must be told its lease is lost before etcd expires the session
// lease and lets someone else in (P2).
func TestEtcdMutexLossBeforeExpiry(t *testing.T) {
	cl := distsynctest.EtcdCluster(t, 3)
	ctx := context.Background()
	name := "fault-loss-before-expiry"
	leader := cl.WaitLeader(t)
	cut := (leader + 1) % 3
	m, err := etcdSessionWith(t, cl.MemberClient(t, cut), 2*time.Second).Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Let a renewal confirm the lease.
	time.Sleep(1200 * time.Millisecond)

	observer := cl.MemberClient(t, leader)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	deleted := observer.Watch(wctx, l.(*mutex.Lease).Key())
	if l.Err() != nil {
		t.Fatalf("lease lost before the fault: %v", l.Err())
	}
	cl.Blackhole(t, cut)
	start := time.Now()
	var lostAt, expiredAt time.Duration
	for lostAt == 0 || expiredAt == 0 {
		select {
		case <-l.Done():
			if lostAt == 0 {
				lostAt = time.Since(start)
			}
		case wr := <-deleted:
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					expiredAt = time.Since(start)
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("after 20s: lost at %v, expired at %v", lostAt, expiredAt)
		}
	}
	t.Logf("cut-off holder told of the loss after %v; etcd expired its key after %v", lostAt, expiredAt)
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err: got %v, want ErrLost", l.Err())
	}
	if lostAt >= expiredAt {
		t.Fatalf("holder told of the loss after %v, but etcd had expired the lease after %v", lostAt, expiredAt)
	}
	cl.Unblackhole(t, cut)
}

// waitEtcdKeys waits until name has n contenders: holders, waiters or
// candidates, not its limit, tombstones or the keys of deeper names.
func waitEtcdKeys(t *testing.T, c *clientv3.Client, name string, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(context.Background(), name+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err == nil && int64(len(filterEtcdContenders(name, resp.Kvs))) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys under %q: %v %v", n, name, resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// etcdSessionWith returns a Session of ttl on c, closed at cleanup (c stays
// open).
func etcdSessionWith(t *testing.T, c *clientv3.Client, ttl time.Duration) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// filterEtcdContenders returns the contenders of name among kvs.
func filterEtcdContenders(name string, kvs []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, kv := range kvs {
		if etcdq.IsContender(etcdq.Prefix(name), kv.Key) {
			out = append(out, kv)
		}
	}
	return out
}
