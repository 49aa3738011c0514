package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/mutex"
	"github.com/distsync/distsync/rwmutex"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// etcdLifeTTL is the session TTL of the etcd lifecycle checks: etcd's
// smallest (etcdq.MinTTL).
const etcdLifeTTL = 2 * time.Second

// etcdLifeBackend adapts the etcd primitives to the lifecycle checks. Each
// session has a client of its own; admin, opened before any baseline, ends
// sessions and reads keys. Watchers are read from the member's metrics.
func etcdLifeBackend(t *testing.T) lifeBackend {
	t.Helper()
	admin := etcdServer.Client(t)
	bg := context.Background()
	count := func(t *testing.T, prefix string) int {
		t.Helper()
		resp, err := admin.Get(bg, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return int(resp.Count)
	}
	return lifeBackend{
		name: "etcd",
		ttl:  etcdLifeTTL,
		newSession: func(t *testing.T) *lifeSession {
			c, err := etcdServer.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			s, err := concurrency.NewSession(c, concurrency.WithTTL(int(etcdLifeTTL/time.Second)))
			if err != nil {
				c.Close()
				t.Fatal(err)
			}
			var once sync.Once
			closeAll := func() {
				once.Do(func() {
					_ = s.Close()
					_ = c.Close()
				})
			}
			t.Cleanup(closeAll)
			return &lifeSession{
				open: func(t *testing.T, k lifeKind, name string) lifeAcquirer {
					return etcdLifeAcquirer(t, s, k, name)
				},
				end: func(t *testing.T, _ string) {
					if _, err := admin.Revoke(bg, s.Lease()); err != nil {
						t.Fatal(err)
					}
				},
				close: closeAll,
			}
		},
		entries: func(t *testing.T, name string) int { return count(t, etcdq.Prefix(name)) },
		state: func(t *testing.T, name string) serverState {
			return serverState{
				{name: "watchers", value: etcdMetric(t, "etcd_debugging_mvcc_watcher_total")},
				{name: "watch-streams", value: etcdMetric(t, "etcd_debugging_mvcc_watch_stream_total")},
				{name: "keys", value: count(t, etcdq.Prefix(name))},
				{name: "tombstones", value: count(t, "%abandoned/"+etcdq.Prefix(name)), final: true},
			}
		},
	}
}

// etcdLifeAcquirer opens the etcd primitive of kind k on s.
func etcdLifeAcquirer(t *testing.T, s *concurrency.Session, k lifeKind, name string) lifeAcquirer {
	t.Helper()
	switch k {
	case lifeMutex:
		m, err := mutex.New(s, name)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: m.Lock, close: m.Close}
	case lifeWrite, lifeRead:
		rw, err := rwmutex.New(s, name)
		if err != nil {
			t.Fatal(err)
		}
		if k == lifeRead {
			return lifeAcquirer{acquire: rw.RLock, close: rw.Close}
		}
		return lifeAcquirer{acquire: rw.Lock, close: rw.Close}
	case lifeSemaphore:
		sem, err := semaphore.New(s, name, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The session's client may be closed (or cut off) by then: the
		// limit is deleted through a client of the test's own.
		t.Cleanup(func() {
			c, err := etcdServer.NewClient()
			if err != nil {
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = semaphore.DeleteLimit(ctx, c, name)
		})
		return lifeAcquirer{acquire: sem.Acquire, close: sem.Close}
	case lifeElection:
		e, err := election.New(s, name)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{
			acquire: func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("candidate"))
				if err != nil {
					return nil, err
				}
				return l, nil
			},
			close: e.Close,
		}
	}
	t.Fatalf("unknown kind %q", k)
	return lifeAcquirer{}
}
