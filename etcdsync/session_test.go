package etcdsync_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/mutex"
	"github.com/distsync/distsync/rwmutex"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

// newSession returns a Session with a 1 s TTL (the test member's
// smallest) on a client of its own, closed at cleanup.
func newSession(t *testing.T) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestTTLValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := etcd.Client(t)
	for _, ttl := range []time.Duration{0, -time.Second, 500 * time.Millisecond, 1500 * time.Millisecond, time.Second + time.Nanosecond} {
		if _, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("NewSession(WithTTL(%v)): got %v, want ErrInvalidConfig", ttl, err)
		}
		if _, err := etcdsync.Dial(ctx, clientv3.Config{Endpoints: etcd.Endpoints()}, etcdsync.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("Dial(WithTTL(%v)): got %v, want ErrInvalidConfig", ttl, err)
		}
	}
	if _, err := etcdsync.NewSession(ctx, nil); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("NewSession(nil client): got %v, want ErrInvalidConfig", err)
	}
	// The control: whole seconds the member grants as asked.
	for _, ttl := range []time.Duration{time.Second, 3 * time.Second} {
		s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(ttl))
		if err != nil {
			t.Fatalf("NewSession(WithTTL(%v)): %v", ttl, err)
		}
		id, err := etcdq.Of(s).CurrentLease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.TimeToLive(ctx, id)
		if err != nil || time.Duration(resp.GrantedTTL)*time.Second != ttl {
			t.Fatalf("lease of a %v Session: granted %v, %v", ttl, resp.GrantedTTL, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTTLTheServerGrants: on a member with etcd's default ticks the
// smallest lease is 2 s, so a 1 s Session is refused with both values,
// and leaves no lease behind; 2 s is granted as asked.
func TestTTLTheServerGrants(t *testing.T) {
	slow, err := testserver.StartEtcdDefaultTicks()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Stop()
	c := slow.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = etcdsync.NewSession(ctx, c, etcdsync.WithTTL(time.Second))
	if !errors.Is(err, distsync.ErrInvalidConfig) || !strings.Contains(err.Error(), "2s") || !strings.Contains(err.Error(), "1s") {
		t.Fatalf("a 1s Session where etcd grants at least 2s: %v, want ErrInvalidConfig naming both", err)
	}
	leases, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 0 {
		t.Fatalf("%d leases left by the refused Session", len(leases.Leases))
	}
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(2*time.Second))
	if err != nil {
		t.Fatalf("a 2s Session: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNewSessionBoundedByContext: an unreachable etcd makes NewSession
// fail when its context ends, not hang.
func TestNewSessionBoundedByContext(t *testing.T) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = etcdsync.NewSession(ctx, c)
	if !errors.Is(err, distsync.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NewSession on an unreachable etcd: got %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("NewSession returned %v after its 200ms context", d)
	}
}

// TestDynamicTypes: the primitives a Session opens are the etcd packages'
// own types, so users can assert them to reach etcd specifics.
func TestDynamicTypes(t *testing.T) {
	ctx := context.Background()
	s := newSession(t)
	m, err := s.Mutex(t.Name())
	if _, ok := m.(*mutex.Mutex); !ok || err != nil {
		t.Errorf("Mutex: %T, %v", m, err)
	}
	rw, err := s.RWMutex(t.Name())
	if _, ok := rw.(*rwmutex.RWMutex); !ok || err != nil {
		t.Errorf("RWMutex: %T, %v", rw, err)
	}
	sem, err := s.Semaphore(ctx, t.Name()+"-sem", 2)
	if _, ok := sem.(*semaphore.Semaphore); !ok || err != nil {
		t.Errorf("Semaphore: %T, %v", sem, err)
	}
	e, err := s.Election(t.Name())
	if _, ok := e.(*election.Election); !ok || err != nil {
		t.Errorf("Election: %T, %v", e, err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.(*mutex.Lease); !ok {
		t.Errorf("Lock returned %T, want *mutex.Lease", l)
	}
	_ = l.Release(ctx)
	if _, err := s.Mutex(""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("Mutex(\"\"): got %v, want ErrInvalidName", err)
	}
}

// acquirers are the four primitives of a Session, as acquire calls.
func acquirers(t *testing.T, s *etcdsync.Session, name string) map[string]func(context.Context) (distsync.Lease, error) {
	t.Helper()
	m, err := s.Mutex(name + "-mutex")
	if err != nil {
		t.Fatal(err)
	}
	rw, err := s.RWMutex(name + "-rwmutex")
	if err != nil {
		t.Fatal(err)
	}
	sem, err := s.Semaphore(context.Background(), name+"-semaphore", 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Election(name + "-election")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]func(context.Context) (distsync.Lease, error){
		"mutex":     m.Lock,
		"rwmutex":   rw.RLock,
		"semaphore": sem.Acquire,
		"election": func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte("v"))
			if err != nil {
				return nil, err
			}
			return l, nil
		},
	}
}

// TestRenewalAfterRevoke revokes the Session's lease from another client,
// twice: the leases under it end with ErrLost, and the same primitive
// values acquire again, under a new lease.
func TestRenewalAfterRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newSession(t)
	admin := etcd.Client(t)
	prims := acquirers(t, s, t.Name())
	var last clientv3.LeaseID
	for round := range 3 {
		leases := map[string]distsync.Lease{}
		for name, acquire := range prims {
			l, err := acquire(ctx)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, name, err)
			}
			leases[name] = l
		}
		id, err := etcdq.Of(s).CurrentLease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id == last {
			t.Fatalf("round %d: still on lease %x after its revoke", round, int64(id))
		}
		last = id
		for name, l := range leases {
			if key := l.(interface{ Key() string }).Key(); !strings.Contains(key, fmt.Sprintf("%x_", int64(id))) {
				t.Fatalf("round %d: %s key %q is not on the current lease %x", round, name, key, int64(id))
			}
		}
		if round == 2 {
			break
		}
		if _, err := admin.Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
		for name, l := range leases {
			select {
			case <-l.Done():
			case <-ctx.Done():
				t.Fatalf("round %d: %s lease not ended after the revoke", round, name)
			}
			if !errors.Is(l.Err(), distsync.ErrLost) {
				t.Fatalf("round %d: %s: Err %v, want ErrLost", round, name, l.Err())
			}
		}
	}
}

// TestRevokeWhileWaiting: a waiting acquisition whose lease is revoked
// fails with ErrLost, and the next call waits again under a new lease.
func TestRevokeWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	holder, err := newSession(t).Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	held, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t)
	m, err := s.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		l, err := m.Lock(ctx)
		if err == nil {
			_ = l.Release(ctx)
		}
		errc <- err
	}()
	waitKeys(t, t.Name(), 2)
	id, err := etcdq.Of(s).CurrentLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client(t).Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("waiting Lock after its lease was revoked: got %v, want ErrLost", err)
	}
	got := make(chan distsync.Lease, 1)
	go func() {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitKeys(t, t.Name(), 2)
	_ = held.Release(ctx)
	if l := <-got; l != nil {
		_ = l.Release(ctx)
	}
}

func waitKeys(t *testing.T, name string, n int64) {
	t.Helper()
	c := etcd.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(context.Background(), etcdq.Prefix(name), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys under %q", n, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaseOutlivesTTL: a lock held for several TTLs stays held: the
// Session's renewals keep its lease ahead of the deadline.
func TestLeaseOutlivesTTL(t *testing.T) {
	ctx := context.Background()
	m, err := newSession(t).Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
		t.Fatalf("lease of a 1s Session ended while held: %v", l.Err())
	case <-time.After(3500 * time.Millisecond):
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// ours returns the stacks of goroutines running this module's library
// code (not the test's own).
func ours() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, st := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(st, "distsync/distsync/internal/etcdq.") || strings.Contains(st, "distsync/distsync/election.") {
			found = append(found, st)
		}
	}
	return found
}

// TestClose: Close ends the leases under the Session (the next holder gets
// in), fails a waiting acquisition and every later call with ErrClosed,
// ends observers, leaves no goroutine, and leaves the caller's client open.
func TestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	c := etcd.Client(t)
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	prims := acquirers(t, s, name)
	var leases []distsync.Lease
	for _, acquire := range prims {
		l, err := acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	m, _ := s.Mutex(name + "-mutex")
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Lock(ctx)
		waiting <- err
	}()
	waitKeys(t, name+"-mutex", 2)
	e, _ := s.Election(name + "-election")
	observed := e.Observe(ctx)
	<-observed
	other := newSession(t)
	next, err := other.Mutex(name + "-mutex")
	if err != nil {
		t.Fatal(err)
	}
	nextc := make(chan error, 1)
	go func() {
		l, err := next.Lock(ctx)
		if err == nil {
			_ = l.Release(ctx)
		}
		nextc <- err
	}()
	waitKeys(t, name+"-mutex", 3)

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(start))
	for _, l := range leases {
		select {
		case <-l.Done():
		default:
			t.Fatal("a lease still held after Close")
		}
		if !errors.Is(l.Err(), distsync.ErrLost) {
			t.Fatalf("lease after Close: %v, want ErrLost", l.Err())
		}
	}
	if err := <-waiting; !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Lock waiting during Close: got %v, want ErrClosed", err)
	}
	if err := <-nextc; err != nil {
		t.Fatalf("the next holder on another Session: %v", err)
	}
	for range observed {
	}
	for what, acquire := range prims {
		if _, err := acquire(ctx); !errors.Is(err, distsync.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", what, err)
		}
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("Leader after Close: got %v, want ErrClosed", err)
	}
	if _, ok := <-e.Observe(ctx); ok {
		t.Error("Observe after Close delivered a value")
	}
	sem, _ := s.Semaphore(ctx, name+"-x", 1) // the error is checked below
	if sem != nil {
		t.Error("Semaphore after Close opened one")
	}
	if _, err := s.Mutex(name); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("Mutex after Close: got %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_ = other.Close()
	if left := ours(); len(left) > 0 {
		t.Fatalf("%d goroutines of the Session left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
	// The caller's client is left open, and no key or limit is left.
	resp, err := c.Get(ctx, name, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("caller's client after Close: %v", err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("%d keys left after Close, e.g. %s", len(resp.Kvs), resp.Kvs[0].Key)
	}
}

// TestDialOwnsClient: Dial's client is closed with the Session.
func TestDialOwnsClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.Dial(ctx, clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second}, etcdsync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Ctx().Err() == nil {
		t.Fatal("Dial's client still open after Close")
	}
}

// TestUnrenewedLease stops the renewals of the Session's lease, as a
// paused process would: the lease held under it is lost before etcd
// expires it, and the next Lock grants a new lease.
func TestUnrenewedLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newSession(t)
	m, err := s.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := etcdq.Of(s).CurrentLease(ctx)
	etcdq.Of(s).Orphan()
	start := time.Now()
	<-l.Done()
	lostAfter := time.Since(start)
	if !errors.Is(l.Err(), distsync.ErrLost) || lostAfter > time.Second {
		t.Fatalf("unrenewed 1s lease: Err %v after %v, want ErrLost within its TTL", l.Err(), lostAfter)
	}
	// etcd rounds the remaining TTL down to whole seconds: -1 is expired.
	resp, err := etcd.Client(t).TimeToLive(ctx, old)
	if err != nil || resp.TTL < 0 {
		t.Fatalf("lease told lost after %v, but etcd had already expired it (TTL %v, %v)", lostAfter, resp.TTL, err)
	}
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := etcdq.Of(s).CurrentLease(ctx); cur == old {
		t.Fatalf("locked again on the unrenewed lease %x", int64(old))
	}
	_ = l2.Release(ctx)
}
