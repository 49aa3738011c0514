package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdJobsMember starts a member of its own with authentication on and a
// user "jobs" whose role may read and write the prefix "jobs/" only.
func etcdJobsMember(t *testing.T) *testserver.Etcd {
	t.Helper()
	return etcdAuthMember(t, "jobs", "jobs-password", "jobs/")
}

// etcdJobsSession dials m as the user "jobs".
func etcdJobsSession(t *testing.T, m *testserver.Etcd) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.Dial(ctx, clientv3.Config{
		Endpoints: m.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "jobs", Password: "jobs-password",
	}, etcdsync.WithTTL(etcdSessionTTL))
	if err != nil {
		t.Fatalf("Dial as the user jobs: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestEtcdRestrictedUser: a user whose role has readwrite on "jobs/" only
// uses every primitive on "jobs/x" (waiting, trying, the semaphore's
// limit, the election's leader and observer), and gets ErrDenied at once
// on "other/x".
func TestEtcdRestrictedUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := etcdJobsMember(t)
	s1, s2 := etcdJobsSession(t, m), etcdJobsSession(t, m)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const name = "jobs/x"

	// Mutex: hold, try, wait, hand over.
	m1, err := s1.Mutex(name)
	must(err)
	m2, err := s2.Mutex(name)
	must(err)
	l1, err := m1.Lock(ctx)
	must(err)
	if _, err := m2.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) || !strings.Contains(err.Error(), `"jobs/x" is held`) {
		t.Fatalf("Mutex TryLock behind a holder: got %v, want ErrWouldBlock naming %q", err, name)
	}
	got := make(chan error, 1)
	go func() {
		l, err := m2.Lock(ctx)
		if err == nil {
			err = l.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	must(l1.Release(ctx))
	must(<-got)

	// RWMutex: two readers, a writer behind them.
	rw1, err := s1.RWMutex(name + "-rw")
	must(err)
	rw2, err := s2.RWMutex(name + "-rw")
	must(err)
	r1, err := rw1.RLock(ctx)
	must(err)
	r2, err := rw2.RLock(ctx)
	must(err)
	if _, err := rw2.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("RWMutex TryLock behind readers: got %v, want ErrWouldBlock", err)
	}
	go func() {
		l, err := rw2.Lock(ctx)
		if err == nil {
			err = l.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	must(r1.Release(ctx))
	must(r2.Release(ctx))
	must(<-got)

	// Semaphore: the limit is stored, changed and dropped under "jobs/".
	sem1, err := s1.Semaphore(ctx, name+"-sem", 2)
	must(err)
	sem2, err := s2.Semaphore(ctx, name+"-sem", 2)
	must(err)
	p1, err := sem1.AcquireN(ctx, 2)
	must(err)
	if _, err := sem2.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("Semaphore TryAcquire when full: got %v, want ErrWouldBlock", err)
	}
	must(sem1.SetLimit(ctx, 3))
	must(sem2.SetLimit(ctx, 3))
	p2, err := sem2.Acquire(ctx)
	must(err)
	must(p1.Release(ctx))
	must(p2.Release(ctx))

	// Election: campaign, leader, observe, proclaim, resign.
	e1, err := s1.Election(name + "-elect")
	must(err)
	e2, err := s2.Election(name + "-elect")
	must(err)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	obs := e2.Observe(obsCtx)
	if ld := <-obs; !ld.None {
		t.Fatalf("first observation %+v, want no leader", ld)
	}
	ld, err := e1.Campaign(ctx, []byte("one"))
	must(err)
	if cur, err := e2.Leader(ctx); err != nil || string(cur.Value) != "one" {
		t.Fatalf("Leader: %q, %v; want %q", cur.Value, err, "one")
	}
	if o := <-obs; string(o.Value) != "one" {
		t.Fatalf("observed %+v, want the leader %q", o, "one")
	}
	must(ld.Proclaim(ctx, []byte("two")))
	if o := <-obs; string(o.Value) != "two" {
		t.Fatalf("observed %+v, want the proclaimed %q", o, "two")
	}
	must(ld.Release(ctx))
	stopObs()

	// Outside "jobs/": ErrDenied at once, although ctx allows a minute.
	const other = "other/x"
	denied := func(what string, err error, start time.Time) {
		t.Helper()
		if !errors.Is(err, distsync.ErrDenied) || !strings.Contains(err.Error(), other) {
			t.Fatalf("%s on %q: got %v, want ErrDenied naming the name", what, other, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s on %q took %v, want at once", what, other, d)
		}
	}
	om, err := s1.Mutex(other)
	must(err)
	start := time.Now()
	_, err = om.Lock(ctx)
	denied("Mutex.Lock", err, start)
	start = time.Now()
	_, err = om.TryLock(ctx)
	denied("Mutex.TryLock", err, start)
	orw, err := s1.RWMutex(other)
	must(err)
	start = time.Now()
	_, err = orw.RLock(ctx)
	denied("RWMutex.RLock", err, start)
	start = time.Now()
	_, err = s1.Semaphore(ctx, other, 2)
	denied("Semaphore", err, start)
	oe, err := s1.Election(other)
	must(err)
	start = time.Now()
	_, err = oe.Campaign(ctx, []byte("v"))
	denied("Election.Campaign", err, start)
	start = time.Now()
	_, err = oe.Leader(ctx)
	denied("Election.Leader", err, start)
}
