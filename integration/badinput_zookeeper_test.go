package integration

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// TestBadInputZooKeeper is the bad-input table of the ZooKeeper primitives.
func TestBadInputZooKeeper(t *testing.T) {
	bg := context.Background()
	session := func(t *testing.T) *zksync.Session { return zkSession(t) }
	leftOf := func(name string) func(t *testing.T) []string {
		return func(t *testing.T) []string { return zkKeys(t, name) }
	}
	lose := func(t *testing.T, l distsync.Lease) {
		var path string
		switch l := l.(type) {
		case *zksync.Lease:
			path = l.Path()
		case *zksync.Leadership:
			path = l.Path()
		}
		if err := zkAdmin(t).Delete(path, -1); err != nil {
			t.Fatal(err)
		}
	}
	type call = func(context.Context) (distsync.Lease, error)
	// on opens a primitive on a session of its own; with closed, the
	// session is closed before the call.
	on := func(open func(s *zksync.Session, name string) (call, error)) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			s := session(t)
			f, err := open(s, name)
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				_ = s.Close()
			}
			return f
		}
	}
	mutexCall := func(pick func(*zksync.Mutex) call) func(*testing.T, string, bool) call {
		return on(func(s *zksync.Session, name string) (call, error) {
			m, err := zkNewMutex(s, name)
			if err != nil {
				return nil, err
			}
			return pick(m), nil
		})
	}
	rwCall := func(pick func(*zksync.RWMutex) call) func(*testing.T, string, bool) call {
		return on(func(s *zksync.Session, name string) (call, error) {
			rw, err := zkNewRWMutex(s, name)
			if err != nil {
				return nil, err
			}
			return pick(rw), nil
		})
	}
	semCall := func(pick func(*zksync.Semaphore) call) func(*testing.T, string, bool) call {
		return on(func(s *zksync.Session, name string) (call, error) {
			sem, err := zkNewSemaphore(bg, s, name, 1)
			if err != nil {
				return nil, err
			}
			return pick(sem), nil
		})
	}
	campaign := on(func(s *zksync.Session, name string) (call, error) {
		e, err := zkNewElection(s, name)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte("v"))
			if err != nil {
				return nil, err
			}
			return l, nil
		}, nil
	})
	acquirers := []acquirer{
		{"Mutex.Lock", mutexCall(func(m *zksync.Mutex) call { return m.Lock }), true},
		{"Mutex.TryLock", mutexCall(func(m *zksync.Mutex) call { return m.TryLock }), false},
		{"RWMutex.Lock", rwCall(func(rw *zksync.RWMutex) call { return rw.Lock }), true},
		{"RWMutex.TryLock", rwCall(func(rw *zksync.RWMutex) call { return rw.TryLock }), false},
		{"RWMutex.RLock", rwCall(func(rw *zksync.RWMutex) call { return rw.RLock }), true},
		{"RWMutex.TryRLock", rwCall(func(rw *zksync.RWMutex) call { return rw.TryRLock }), false},
		{"Semaphore.Acquire", semCall(func(s *zksync.Semaphore) call { return s.Acquire }), true},
		{"Semaphore.TryAcquire", semCall(func(s *zksync.Semaphore) call { return s.TryAcquire }), false},
		{"Election.Campaign", campaign, true},
	}
	cases := acquireCases("zookeeper", acquirers, zkKeys, lose)

	cases = append(cases, nameCases(map[string]func(*testing.T, string) func() error{
		"Session.Mutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(zkNewMutex(s, n)) }
		},
		"Session.RWMutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(zkNewRWMutex(s, n)) }
		},
		"Session.Semaphore": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(zkNewSemaphore(bg, s, n, 1)) }
		},
		"Session.Election": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(zkNewElection(s, n)) }
		},
		"NodePath": func(t *testing.T, n string) func() error {
			return func() error { _, err := zksync.NodePath(zksync.DefaultPrefix, n); return err }
		},
	})...)

	const name = "badinput-zookeeper"
	invalid := is(distsync.ErrInvalidConfig)
	servers := zkServer.Servers()
	dial := func(ctx context.Context, opts ...zksync.Option) error {
		return errOf(zksync.Dial(ctx, servers, opts...))
	}
	simple := func(label string, want []error, f func() error) badCase {
		return badCase{name: label, want: want, setup: func(*testing.T) func() error { return f }, left: leftOf(name)}
	}
	withSession := func(label string, want []error, f func(s *zksync.Session) error) badCase {
		return badCase{name: label, want: want, left: leftOf(name), setup: func(t *testing.T) func() error {
			s := session(t)
			return func() error { return f(s) }
		}}
	}
	cases = append(cases,
		simple("Dial/no-servers", invalid, func() error { return errOf(zksync.Dial(bg, nil)) }),
		simple("Dial/timeout-zero", invalid, func() error { return dial(bg, zksync.WithTTL(0)) }),
		simple("Dial/timeout-negative", invalid, func() error { return dial(bg, zksync.WithTTL(-time.Second)) }),
		simple("Dial/timeout-fractional", invalid, func() error { return dial(bg, zksync.WithTTL(2*time.Second+time.Microsecond)) }),
		simple("Dial/grace-negative", invalid, func() error { return dial(bg, zksync.WithDisconnectGrace(-time.Second)) }),
		simple("Dial/grace-above-third", invalid, func() error {
			return dial(bg, zksync.WithTTL(3*time.Second), zksync.WithDisconnectGrace(1001*time.Millisecond))
		}),
		simple("Dial/nil-dialer", invalid, func() error { return dial(bg, zksync.WithDialer(nil)) }),
		simple("Dial/empty-ACL", invalid, func() error { return dial(bg, zksync.WithACL(nil)) }),
		simple("Dial/auth-no-scheme", invalid, func() error { return dial(bg, zksync.WithAuth("", []byte("x"))) }),
		simple("Dial/ttl-clamped", invalid, func() error { return dial(bg, zksync.WithTTL(testserver.ZooKeeperMinSession/2)) }),
		simple("Dial/auth-refused", is(distsync.ErrDenied), func() error { return dial(bg, zksync.WithAuth("no-such-scheme", []byte("x"))) }),
		simple("NewSession/nil-conn", invalid, func() error { return errOf(zksync.NewSession(bg, nil)) }),
		simple("NewSession/dialer", invalid, func() error { return errOf(zksync.NewSession(bg, zkConn(t), zksync.WithDialer(net.DialTimeout))) }),
		simple("NewSession/other-ttl", invalid, func() error {
			return errOf(zksync.NewSession(bg, zkConn(t), zksync.WithTTL(zkTestTimeout+time.Second)))
		}),
		withSession("Session.Semaphore/limit-0", invalid, func(s *zksync.Session) error { return errOf(zkNewSemaphore(bg, s, name, 0)) }),
		withSession("Session.Semaphore/limit-negative", invalid, func(s *zksync.Session) error { return errOf(zkNewSemaphore(bg, s, name, -1)) }),
		withSession("Election.Leader/no-leader", is(distsync.ErrNoLeader), func(s *zksync.Session) error {
			e, err := zkNewElection(s, name)
			if err != nil {
				return err
			}
			_, err = e.Leader(bg)
			return err
		}),
		// A server that never answers: Dial gives up with its context.
		simple("Dial/unreachable", is(distsync.ErrUnavailable, context.DeadlineExceeded), func() error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(bg, 500*time.Millisecond)
			defer cancel()
			return errOf(zksync.Dial(ctx, []string{ln.Addr().String()}))
		}),
	)
	for _, root := range []struct{ label, root string }{
		{"empty", ""}, {"slash", "/"}, {"relative", "distsync"}, {"trailing-slash", "/a/"},
		{"double-slash", "/a//b"}, {"dot", "/a/./b"}, {"dot-dot", "/a/../b"}, {"NUL", "/a\x00b"},
	} {
		cases = append(cases, simple("Dial/root-"+root.label, invalid, func() error { return dial(bg, zksync.WithPrefix(root.root)) }))
	}
	for _, cc := range ctxCases {
		cases = append(cases,
			simple("Dial/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return dial(cc.ctx()) }),
			withSession("Session.Semaphore/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *zksync.Session) error {
				return errOf(zkNewSemaphore(cc.ctx(), s, name, 1))
			}),
			withSession("Election.Leader/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *zksync.Session) error {
				e, err := zkNewElection(s, name)
				if err != nil {
					return err
				}
				_, err = e.Leader(cc.ctx())
				return err
			}),
			withSession("Election.Observe/"+cc.label+"-context", nil, func(s *zksync.Session) error {
				e, err := zkNewElection(s, name)
				if err != nil {
					return err
				}
				return drained(e.Observe(cc.ctx()))
			}),
		)
	}
	// Limits that disagree: the limit is stored on the semaphore's node.
	const semName = "badinput-zookeeper-semaphore-limits"
	cases = append(cases, badCase{name: "Session.Semaphore/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
		s := session(t)
		sem, err := zkNewSemaphore(bg, s, semName, 2)
		if err != nil {
			t.Fatal(err)
		}
		l, err := sem.Acquire(bg) // in use: the node keeps its limit
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Release(bg) })
		other := session(t)
		return func() error { return errOf(zkNewSemaphore(bg, other, semName, 3)) }
	}})
	// The session's connection closed under it.
	cases = append(cases, badCase{name: "Mutex.Lock/closed-conn", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
		s := session(t)
		m, err := zkNewMutex(s, name)
		if err != nil {
			t.Fatal(err)
		}
		var conn *zk.Conn = s.Conn()
		conn.Close()
		return func() error { return releaseIfHeld(m.Lock(bg)) }
	}})
	// Close is an end call: a second one is not an error.
	cases = append(cases, badCase{name: "Session.Close/twice", left: leftOf(name), setup: func(t *testing.T) func() error {
		s, err := zksync.Dial(bg, servers)
		if err != nil {
			t.Fatal(err)
		}
		return func() error { return closeTwice(s) }
	}})
	t.Logf("%d cases", runBadCases(t, cases))
}
