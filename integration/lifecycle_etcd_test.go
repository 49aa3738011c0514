package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdLifeTTL is the Session TTL of the etcd lifecycle checks: a default
// etcd's smallest (the test member grants 1 s too).
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
		resp, err := admin.Get(bg, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(prefix, "/") {
			return len(resp.Kvs) // tombstones
		}
		n := 0 // a name's contenders only: not its tombstones or deeper names' keys
		for _, kv := range resp.Kvs {
			if etcdq.IsContender(prefix, kv.Key) {
				n++
			}
		}
		return n
	}
	return lifeBackend{
		name: "etcd",
		ttl:  etcdLifeTTL,
		newSession: func(t *testing.T) *lifeSession {
			c, err := etcdServer.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(etcdLifeTTL))
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
					etcdRevoke(t, admin, s)
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
				{name: "tombstones", value: count(t, etcdq.Prefix(name)+"\x00abandoned/"), final: true},
			}
		},
	}
}

// etcdLifeAcquirer opens the etcd primitive of kind k on s. Primitives
// have no Close of their own: the Session's ends them.
func etcdLifeAcquirer(t *testing.T, s distsync.Session, k lifeKind, name string) lifeAcquirer {
	t.Helper()
	switch k {
	case lifeMutex:
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: m.Lock}
	case lifeWrite, lifeRead:
		rw, err := s.RWMutex(name)
		if err != nil {
			t.Fatal(err)
		}
		if k == lifeRead {
			return lifeAcquirer{acquire: rw.RLock}
		}
		return lifeAcquirer{acquire: rw.Lock}
	case lifeSemaphore:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sem, err := s.Semaphore(ctx, name, 1)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: sem.Acquire}
	case lifeElection:
		e, err := s.Election(name)
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
		}
	}
	t.Fatalf("unknown kind %q", k)
	return lifeAcquirer{}
}
