package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// zkLifeTimeout is the session timeout of the ZooKeeper lifecycle checks.
const zkLifeTimeout = 2 * time.Second

// zkLifeBackend adapts the ZooKeeper primitives to the lifecycle checks.
// Each session has a connection of its own; admin, a plain go-zookeeper
// connection opened before any baseline, reads nodes (without watches).
// Watches and connections are read with the wchs and cons four-letter
// words.
func zkLifeBackend(t *testing.T) lifeBackend {
	t.Helper()
	admin := zkConn(t)
	zkChildren(t, admin, "lifecycle-warm-up") // connected: its goroutines are in every baseline
	return lifeBackend{
		name: "zookeeper",
		ttl:  zkLifeTimeout,
		newSession: func(t *testing.T) *lifeSession {
			s := zkSession(t, zksync.WithTTL(zkLifeTimeout))
			return &lifeSession{
				open: func(t *testing.T, k lifeKind, name string) lifeAcquirer { return zkLifeAcquirer(t, s, k, name) },
				end:  func(t *testing.T, _ string) { distsynctest.Expire(t, s) },
				close: func() {
					_ = s.Close()
				},
			}
		},
		entries: func(t *testing.T, name string) int { return zkChildren(t, admin, name) },
		state: func(t *testing.T, name string) serverState {
			return serverState{
				{name: "connections", value: zkStateConnections(t)},
				{name: "watches", value: zkStateWatches(t)},
				{name: "nodes", value: zkChildren(t, admin, name)},
			}
		},
	}
}

// zkChildren counts the children of name's node: its holders and waiters.
func zkChildren(t *testing.T, admin *zk.Conn, name string) int {
	t.Helper()
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		t.Fatal(err)
	}
	children, _, err := admin.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(children)
}

// zkLifeAcquirer opens the ZooKeeper primitive of kind k on s. ZooKeeper's
// primitives have no Close of their own.
func zkLifeAcquirer(t *testing.T, s *zksync.Session, k lifeKind, name string) lifeAcquirer {
	t.Helper()
	switch k {
	case lifeMutex:
		return lifeAcquirer{acquire: zkMutex(t, s, name).Lock}
	case lifeWrite, lifeRead:
		rw, err := zkNewRWMutex(s, name)
		if err != nil {
			t.Fatal(err)
		}
		if k == lifeRead {
			return lifeAcquirer{acquire: rw.RLock}
		}
		return lifeAcquirer{acquire: rw.Lock}
	case lifeSemaphore:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sem, err := zkNewSemaphore(ctx, s, name, 1)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: sem.Acquire}
	case lifeElection:
		e := zkElection(t, s, name)
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
