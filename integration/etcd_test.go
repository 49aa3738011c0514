package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// etcdSession returns a Session on c, closed at cleanup (c stays open).
func etcdSession(t *testing.T, c *clientv3.Client) *etcdsync.Session {
	t.Helper()
	return etcdSessionWith(t, c, etcdSessionTTL)
}

// concurrencySession returns an etcd concurrency.Session on c, closed at
// cleanup.
func concurrencySession(t *testing.T, c *clientv3.Client) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestEtcdMutexInterop shows that a distsync Mutex and etcd's own
// concurrency.Mutex (the one `etcdctl lock NAME` uses) exclude each other.
func TestEtcdMutexInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "interop-lock"
	ours, err := etcdSession(t, etcdServer.Client(t)).Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	theirs := concurrency.NewMutex(concurrencySession(t, etcdServer.Client(t)), name)

	l, err := ours.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := theirs.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("concurrency.Mutex.TryLock while distsync holds: got %v, want ErrLocked", err)
	}
	got := make(chan error, 1)
	go func() { got <- theirs.Lock(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("concurrency.Mutex.Lock returned %v while distsync holds", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if _, err := ours.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("distsync TryLock while concurrency.Mutex holds: got %v, want ErrWouldBlock", err)
	}
	waited := make(chan distsync.Lease, 1)
	go func() {
		l, err := ours.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		waited <- l
	}()
	select {
	case <-waited:
		t.Fatal("distsync Lock returned while concurrency.Mutex holds")
	case <-time.After(200 * time.Millisecond):
	}
	if err := theirs.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if l := <-waited; l != nil {
		_ = l.Release(ctx)
	}
}

// TestEtcdDenied dials a Session as a user whose role covers none of the
// names (on a member of its own with authentication on): every acquire
// call and distsync.Run return ErrDenied at once, with no retry, while the
// context would allow a minute. The control is the same calls as root.
func TestEtcdDenied(t *testing.T) {
	s := etcdDeniedSession(t)
	if s == nil {
		return // opening was denied, which etcdDeniedSession checked
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "denied-name"
	m, _ := s.Mutex(name)
	rw, _ := s.RWMutex(name)
	e, _ := s.Election(name)
	calls := map[string]func() error{
		"Mutex.Lock":      func() error { return releaseIfHeld(m.Lock(ctx)) },
		"Mutex.TryLock":   func() error { return releaseIfHeld(m.TryLock(ctx)) },
		"RWMutex.RLock":   func() error { return releaseIfHeld(rw.RLock(ctx)) },
		"RWMutex.TryLock": func() error { return releaseIfHeld(rw.TryLock(ctx)) },
		"Semaphore": func() error {
			sem, err := s.Semaphore(ctx, name, 2)
			if err != nil {
				return err
			}
			return releaseIfHeld(sem.Acquire(ctx))
		},
		"Election.Campaign": func() error { l, err := e.Campaign(ctx, []byte("v")); return releaseIfHeld(l, err) },
		"Election.Leader":   func() error { _, err := e.Leader(ctx); return err },
		"Run": func() error {
			return distsync.Run(ctx, e, []byte("v"), distsync.Callbacks{
				OnStartedLeading: func(context.Context, distsync.Leadership) {},
			})
		},
	}
	for what, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if !errors.Is(err, distsync.ErrDenied) || len(distsynctest.Sentinels(err)) != 1 {
			t.Errorf("%s as a denied user: got %v, want ErrDenied (and no other sentinel)", what, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s as a denied user returned after %v: retried", what, took)
		}
	}
	if _, ok := <-e.Observe(ctx); ok {
		t.Error("Observe as a denied user delivered a value")
	}
}
