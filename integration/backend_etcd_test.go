package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcdSessionTTL is the lease TTL of the conformance suite's etcd
// Sessions: short, but long enough that a loaded machine does not make
// them report conservative losses.
const etcdSessionTTL = 5 * time.Second

// etcdBackend adapts the etcd Session to the conformance suite, on the
// shared member; every Session has a client of its own.
func etcdBackend() backend {
	return backend{
		name: "etcd",
		open: func(t *testing.T) distsync.Session {
			c, err := etcdServer.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			return etcdSessionOn(t, c, etcdSessionTTL)
		},
		openWith: func(t *testing.T, o sessionOpts) distsync.Session {
			c, err := etcdServer.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			opts := []etcdsync.Option{etcdsync.WithNameAttribute()}
			if o.identity != "" {
				opts = append(opts, etcdsync.WithIdentity(o.identity))
			}
			if o.logger != nil {
				opts = append(opts, etcdsync.WithLogger(o.logger))
			}
			if o.meter != nil {
				opts = append(opts, etcdsync.WithMeterProvider(o.meter))
			}
			return etcdSessionOn(t, c, etcdSessionTTL, opts...)
		},
		openCuttable: func(t *testing.T) (distsync.Session, func(), func()) {
			p := distsynctest.NewProxy(t, etcdServer.Endpoints()[0])
			return etcdSessionOn(t, etcdProxyClient(t, p.Addr()), etcdSessionTTL), p.Cut, p.Heal
		},
		compact: func(t *testing.T) {
			if err := etcdServer.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		},
		denied:           etcdDeniedSession,
		observeCoalesces: false,
	}
}

// etcdSessionOn returns a Session of ttl on c, which it owns: the Session
// and then c are closed at cleanup.
func etcdSessionOn(t *testing.T, c *clientv3.Client, ttl time.Duration, opts ...etcdsync.Option) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, c, append([]etcdsync.Option{etcdsync.WithTTL(ttl)}, opts...)...)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = c.Close()
	})
	return s
}

// etcdProxyClient returns a client that dials only addr (a proxy the test
// cuts), redialling quickly once healed rather than after gRPC's default
// backoff of a second and more. The caller closes it.
func etcdProxyClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// etcdRevoke revokes the current lease of s (an etcd Session) through
// admin, another client, as an expiry would, and returns once etcd has
// revoked it.
func etcdRevoke(t *testing.T, admin *clientv3.Client, s distsync.Session) {
	t.Helper()
	src := etcdq.Of(s)
	if src == nil {
		t.Fatalf("%T is not an etcd Session", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := src.CurrentLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// etcdKeysOf lists the contenders of a name: its holders, waiters and
// candidates, the direct children of its prefix that are no control keys
// (keys of deeper names and tombstones lie under the prefix too).
func etcdKeysOf(t *testing.T, c *clientv3.Client, name string) []string {
	t.Helper()
	resp, err := c.Get(context.Background(), etcdq.Prefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		if etcdq.IsContender(etcdq.Prefix(name), kv.Key) {
			keys = append(keys, string(kv.Key))
		}
	}
	return keys
}

// etcdDeniedSession starts a member of its own with authentication on (the
// shared member must stay open to every test), with a user "denied" whose
// role grants an unrelated prefix only, and returns a Session dialed as
// that user. Opening it may fail with ErrDenied: then it returns nil.
func etcdDeniedSession(t *testing.T) distsync.Session {
	t.Helper()
	m := etcdAuthMember(t, "denied", "denied-password", "unrelated/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.Dial(ctx, clientv3.Config{
		Endpoints: m.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "denied", Password: "denied-password",
	}, etcdsync.WithTTL(etcdSessionTTL))
	if err != nil {
		if !errors.Is(err, distsync.ErrDenied) {
			t.Fatalf("Dial as a denied user: got %v, want ErrDenied", err)
		}
		return nil
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// etcdAuthMember starts an etcd member of its own, stopped at cleanup, with
// authentication enabled and a user whose only role may read and write
// the keys under prefix.
func etcdAuthMember(t *testing.T, user, password, prefix string) *testserver.Etcd {
	t.Helper()
	m, err := testserver.StartEtcd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.EnableAuth(ctx, user, password, prefix); err != nil {
		t.Fatal(err)
	}
	return m
}
