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

// zkBackend adapts the ZooKeeper Session to the conformance suite, on the
// shared server. Every Session dials a connection of its own, with the
// session timeout zkTestTimeout, to the kit server's Addr, whose proxy
// records session passwords so that distsynctest.Expire can end a session
// from outside. ZooKeeper keeps no history of changes (nothing to compact), and
// its watches fire once, so its observers may coalesce short-lived states.
func zkBackend() backend {
	return backend{
		name: "zookeeper",
		open: func(t *testing.T) distsync.Session { return zkSession(t) },
		openWith: func(t *testing.T, o sessionOpts) distsync.Session {
			opts := []zksync.Option{zksync.WithNameAttribute()}
			if o.identity != "" {
				opts = append(opts, zksync.WithIdentity(o.identity))
			}
			if o.logger != nil {
				opts = append(opts, zksync.WithLogger(o.logger))
			}
			if o.meter != nil {
				opts = append(opts, zksync.WithMeterProvider(o.meter))
			}
			return zkSession(t, opts...)
		},
		openCuttable: func(t *testing.T) (distsync.Session, func(), func()) {
			p := distsynctest.NewProxy(t, zkServer.Addr())
			return zkSessionTo(t, p.Addr()), p.Cut, p.Heal
		},
		compact:          nil,
		denied:           zkDeniedSession,
		observeCoalesces: true,
	}
}

// zkDeniedRoot is the root of the denied-user checks: a persistent node
// whose ACL grants everything to the digest user zkDeniedUser only.
const (
	zkDeniedRoot = "/distsync-digest"
	zkDeniedUser = "owner:secret"
)

// zkDeniedSession returns a Session without credentials under
// zkDeniedRoot, which a Session with the digest has created with a digest
// ACL (WithACL and WithAuth) and shown to work: every call on a name is
// refused with zk.ErrNoAuth.
func zkDeniedSession(t *testing.T) distsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acl := zk.DigestACL(zk.PermAll, "owner", "secret")
	owner := zkSession(t, zksync.WithPrefix(zkDeniedRoot), zksync.WithACL(acl), zksync.WithAuth("digest", []byte(zkDeniedUser)))
	// A persistent root: a container would be reaped once empty, and the
	// next Session would create it again with its own ACL.
	if _, err := owner.Conn().Create(zkDeniedRoot, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	m, err := owner.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock by the digest's owner: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return zkSession(t, zksync.WithPrefix(zkDeniedRoot))
}

// TestZooKeeperAuthAfterExpiry: the credentials of WithAuth outlive the
// ZooKeeper session. After an expiry, go-zookeeper opens a new session and
// sends them again, so the Session still may use a root whose ACL wants
// them, and a Session without them is still refused.
func TestZooKeeperAuthAfterExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	denied := zkDeniedSession(t) // creates the root with its digest ACL
	owner := zkSession(t, zksync.WithPrefix(zkDeniedRoot), zksync.WithACL(zk.DigestACL(zk.PermAll, "owner", "secret")),
		zksync.WithAuth("digest", []byte(zkDeniedUser)))
	m, err := owner.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := owner.SessionID()
	distsynctest.Expire(t, owner)
	waitLost(t, l, 5*time.Second, "session expired from outside")
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock with the digest after the expiry: %v", err)
	}
	if owner.SessionID() == old {
		t.Fatalf("session 0x%x unchanged after the expiry", old)
	}
	_ = l2.Release(ctx)
	dm, err := denied.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dm.TryLock(ctx); !errors.Is(err, distsync.ErrDenied) {
		t.Fatalf("TryLock without the digest: %v, want ErrDenied", err)
	}
}
