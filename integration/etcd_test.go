package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/mutex"
	"github.com/distsync/distsync/rwmutex"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// etcdSession returns a session on a client of its own, closed at cleanup.
func etcdSession(t *testing.T, c *clientv3.Client) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func etcdMutex(t *testing.T, s *concurrency.Session, name string) *mutex.Mutex {
	t.Helper()
	m, err := mutex.New(s, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// etcdMutexBackend adapts the etcd Mutex to the conformance suite; every
// Mutex gets a client of its own from newClient.
func etcdMutexBackend(newClient func(tb testing.TB) *clientv3.Client) mutexBackend {
	return mutexBackend{
		newMutex: func(t *testing.T, name string) distsync.Mutex {
			return etcdMutex(t, etcdSession(t, newClient(t)), name)
		},
		sameSession: func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex) {
			s := etcdSession(t, newClient(t))
			return etcdMutex(t, s, name), etcdMutex(t, s, name)
		},
		endSession: func(t *testing.T, m distsync.Mutex) {
			revokeSession(t, newClient(t), m.(*mutex.Mutex).Session())
		},
		deleteState: func(t *testing.T, l distsync.Lease) {
			if _, err := newClient(t).Delete(context.Background(), l.(*mutex.Lease).Key()); err != nil {
				t.Fatal(err)
			}
		},
		keys: etcdKeys(newClient),
	}
}

// etcdKeys lists the keys under a name's prefix: its holders and waiters.
func etcdKeys(newClient func(tb testing.TB) *clientv3.Client) func(*testing.T, string) []string {
	return func(t *testing.T, name string) []string {
		resp, err := newClient(t).Get(context.Background(), etcdq.Prefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		return keys
	}
}

// revokeSession revokes the lease of s from another client.
func revokeSession(t *testing.T, c *clientv3.Client, s *concurrency.Session) {
	t.Helper()
	if _, err := c.Revoke(context.Background(), s.Lease()); err != nil {
		t.Fatal(err)
	}
}

func TestEtcdRWMutexConformance(t *testing.T) {
	c := etcdServer.Client
	testRWMutexConformance(t, rwBackend{
		newRW: func(t *testing.T, name string) distsync.RWMutex {
			rw, err := rwmutex.New(etcdSession(t, c(t)), name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rw.Close() })
			return rw
		},
		endSession: func(t *testing.T, rw distsync.RWMutex) {
			revokeSession(t, c(t), rw.(*rwmutex.RWMutex).Session())
		},
		keys: etcdKeys(c),
	})
}

func TestEtcdSemaphoreConformance(t *testing.T) {
	c := etcdServer.Client
	testSemaphoreConformance(t, semBackend{
		newSem: func(t *testing.T, name string, limit int64) (distsync.Semaphore, error) {
			s, err := semaphore.New(etcdSession(t, c(t)), name, limit)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() {
				_ = s.Close()
				_ = semaphore.DeleteLimit(context.Background(), c(t), name)
			})
			return s, nil
		},
		endSession: func(t *testing.T, s distsync.Semaphore) {
			revokeSession(t, c(t), s.(*semaphore.Semaphore).Session())
		},
		keys: etcdKeys(c),
	})
}

func TestEtcdMutexConformance(t *testing.T) {
	testMutexConformance(t, etcdMutexBackend(etcdServer.Client))
}

// TestEtcdMutexInterop shows that a distsync Mutex and etcd's own
// concurrency.Mutex (the one `etcdctl lock NAME` uses) exclude each other.
func TestEtcdMutexInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "interop-lock"
	ours := etcdMutex(t, etcdSession(t, etcdServer.Client(t)), name)
	theirs := concurrency.NewMutex(etcdSession(t, etcdServer.Client(t)), name)

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
