package integration

import (
	"context"
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

// TestBadInputEtcd is the bad-input table of the etcd primitives.
func TestBadInputEtcd(t *testing.T) {
	c := etcdServer.Client(t)
	bg := context.Background()
	const ttl = 5 * time.Second
	session := func(t *testing.T) *concurrency.Session {
		s, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	closedSession := func(t *testing.T) *concurrency.Session {
		s := session(t)
		_ = s.Close()
		return s
	}
	closedClient := func(t *testing.T) *clientv3.Client {
		cc, err := etcdServer.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		_ = cc.Close()
		return cc
	}
	left := func(t *testing.T, name string) []string {
		resp, err := c.Get(bg, etcdq.Prefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		return keys
	}
	leftOf := func(name string) func(t *testing.T) []string {
		return func(t *testing.T) []string { return left(t, name) }
	}
	lose := func(t *testing.T, l distsync.Lease) {
		if _, err := c.Delete(bg, l.(interface{ Key() string }).Key()); err != nil {
			t.Fatal(err)
		}
	}
	// owned opens a primitive with NewWithClient; closed closes it before
	// the call (Lock after Close).
	owned := func(t *testing.T, closed bool, open func() (interface{ Close() error }, error)) {
		p, err := open()
		if err != nil {
			t.Fatal(err)
		}
		if closed {
			_ = p.Close()
		} else {
			t.Cleanup(func() { _ = p.Close() })
		}
	}
	type call = func(context.Context) (distsync.Lease, error)
	mutexCall := func(pick func(*mutex.Mutex) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			var m *mutex.Mutex
			owned(t, closed, func() (interface{ Close() error }, error) {
				var err error
				m, err = mutex.NewWithClient(bg, c, name, mutex.WithTTL(ttl))
				return m, err
			})
			return pick(m)
		}
	}
	rwCall := func(pick func(*rwmutex.RWMutex) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			var rw *rwmutex.RWMutex
			owned(t, closed, func() (interface{ Close() error }, error) {
				var err error
				rw, err = rwmutex.NewWithClient(bg, c, name, rwmutex.WithTTL(ttl))
				return rw, err
			})
			return pick(rw)
		}
	}
	semCall := func(pick func(*semaphore.Semaphore) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			var s *semaphore.Semaphore
			owned(t, closed, func() (interface{ Close() error }, error) {
				var err error
				s, err = semaphore.NewWithClient(bg, c, name, 1, semaphore.WithTTL(ttl))
				return s, err
			})
			t.Cleanup(func() { _ = semaphore.DeleteLimit(bg, c, name) })
			return pick(s)
		}
	}
	campaign := func(t *testing.T, name string, closed bool) call {
		var e *election.Election
		owned(t, closed, func() (interface{ Close() error }, error) {
			var err error
			e, err = election.NewWithClient(bg, c, name, election.WithTTL(ttl))
			return e, err
		})
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte("v"))
			if err != nil {
				return nil, err
			}
			return l, nil
		}
	}
	acquirers := []acquirer{
		{"mutex.Lock", mutexCall(func(m *mutex.Mutex) call { return m.Lock }), true},
		{"mutex.TryLock", mutexCall(func(m *mutex.Mutex) call { return m.TryLock }), false},
		{"rwmutex.Lock", rwCall(func(rw *rwmutex.RWMutex) call { return rw.Lock }), true},
		{"rwmutex.TryLock", rwCall(func(rw *rwmutex.RWMutex) call { return rw.TryLock }), false},
		{"rwmutex.RLock", rwCall(func(rw *rwmutex.RWMutex) call { return rw.RLock }), true},
		{"rwmutex.TryRLock", rwCall(func(rw *rwmutex.RWMutex) call { return rw.TryRLock }), false},
		{"semaphore.Acquire", semCall(func(s *semaphore.Semaphore) call { return s.Acquire }), true},
		{"semaphore.TryAcquire", semCall(func(s *semaphore.Semaphore) call { return s.TryAcquire }), false},
		{"semaphore.AcquireN", semCall(func(s *semaphore.Semaphore) call {
			return func(ctx context.Context) (distsync.Lease, error) { return s.AcquireN(ctx, 1) }
		}), true},
		{"semaphore.TryAcquireN", semCall(func(s *semaphore.Semaphore) call {
			return func(ctx context.Context) (distsync.Lease, error) { return s.TryAcquireN(ctx, 1) }
		}), false},
		{"election.Campaign", campaign, true},
	}
	cases := acquireCases("etcd", acquirers, left, lose)

	cases = append(cases, nameCases(map[string]func(*testing.T, string) func() error{
		"mutex.New": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(mutex.New(s, n)) }
		},
		"mutex.NewWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(mutex.NewWithClient(bg, c, n)) }
		},
		"rwmutex.New": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(rwmutex.New(s, n)) }
		},
		"rwmutex.NewWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(rwmutex.NewWithClient(bg, c, n)) }
		},
		"semaphore.New": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(semaphore.New(s, n, 1)) }
		},
		"semaphore.NewWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(semaphore.NewWithClient(bg, c, n, 1)) }
		},
		"semaphore.SetLimit": func(t *testing.T, n string) func() error {
			return func() error { return semaphore.SetLimit(bg, c, n, 1) }
		},
		"semaphore.DeleteLimit": func(t *testing.T, n string) func() error {
			return func() error { return semaphore.DeleteLimit(bg, c, n) }
		},
		"election.New": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(election.New(s, n)) }
		},
		"election.NewWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(election.NewWithClient(bg, c, n)) }
		},
	})...)

	const name = "badinput-etcd"
	invalid := is(distsync.ErrInvalidConfig)
	simple := func(label string, want []error, f func() error) badCase {
		return badCase{name: label, want: want, setup: func(*testing.T) func() error { return f }, left: leftOf(name)}
	}
	cases = append(cases,
		simple("mutex.New/nil-session", invalid, func() error { return errOf(mutex.New(nil, name)) }),
		simple("rwmutex.New/nil-session", invalid, func() error { return errOf(rwmutex.New(nil, name)) }),
		simple("semaphore.New/nil-session", invalid, func() error { return errOf(semaphore.New(nil, name, 1)) }),
		simple("election.New/nil-session", invalid, func() error { return errOf(election.New(nil, name)) }),
		simple("mutex.NewWithClient/nil-client", invalid, func() error { return errOf(mutex.NewWithClient(bg, nil, name)) }),
		simple("rwmutex.NewWithClient/nil-client", invalid, func() error { return errOf(rwmutex.NewWithClient(bg, nil, name)) }),
		simple("semaphore.NewWithClient/nil-client", invalid, func() error { return errOf(semaphore.NewWithClient(bg, nil, name, 1)) }),
		simple("election.NewWithClient/nil-client", invalid, func() error { return errOf(election.NewWithClient(bg, nil, name)) }),
		simple("semaphore.SetLimit/nil-client", invalid, func() error { return semaphore.SetLimit(bg, nil, name, 1) }),
		simple("semaphore.DeleteLimit/nil-client", invalid, func() error { return semaphore.DeleteLimit(bg, nil, name) }),
		badCase{name: "semaphore.New/limit-0", want: invalid, setup: func(t *testing.T) func() error {
			s := session(t)
			return func() error { return errOf(semaphore.New(s, name, 0)) }
		}},
		badCase{name: "semaphore.New/limit-negative", want: invalid, setup: func(t *testing.T) func() error {
			s := session(t)
			return func() error { return errOf(semaphore.New(s, name, -1)) }
		}},
		simple("semaphore.NewWithClient/limit-0", invalid, func() error { return errOf(semaphore.NewWithClient(bg, c, name, 0)) }),
		simple("semaphore.NewWithClient/limit-negative", invalid, func() error { return errOf(semaphore.NewWithClient(bg, c, name, -5)) }),
		simple("semaphore.SetLimit/limit-0", invalid, func() error { return semaphore.SetLimit(bg, c, name, 0) }),
	)
	for _, tc := range []struct {
		label string
		ttl   time.Duration
	}{{"zero", 0}, {"negative", -2 * time.Second}, {"below-minimum", time.Second}, {"fractional", 2500 * time.Millisecond}} {
		cases = append(cases,
			simple("mutex.NewWithClient/ttl-"+tc.label, invalid, func() error { return errOf(mutex.NewWithClient(bg, c, name, mutex.WithTTL(tc.ttl))) }),
			simple("rwmutex.NewWithClient/ttl-"+tc.label, invalid, func() error { return errOf(rwmutex.NewWithClient(bg, c, name, rwmutex.WithTTL(tc.ttl))) }),
			simple("semaphore.NewWithClient/ttl-"+tc.label, invalid, func() error {
				return errOf(semaphore.NewWithClient(bg, c, name, 1, semaphore.WithTTL(tc.ttl)))
			}),
			simple("election.NewWithClient/ttl-"+tc.label, invalid, func() error { return errOf(election.NewWithClient(bg, c, name, election.WithTTL(tc.ttl))) }),
		)
	}
	for _, cc := range ctxCases {
		cases = append(cases,
			simple("mutex.NewWithClient/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(mutex.NewWithClient(cc.ctx(), c, name)) }),
			simple("semaphore.NewWithClient/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(semaphore.NewWithClient(cc.ctx(), c, name, 1)) }),
			simple("semaphore.SetLimit/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return semaphore.SetLimit(cc.ctx(), c, name, 1) }),
			badCase{name: "election.Leader/" + cc.label + "-context", want: is(distsync.ErrUnavailable, cc.err), left: leftOf(name), setup: func(t *testing.T) func() error {
				e, err := election.New(session(t), name)
				if err != nil {
					t.Fatal(err)
				}
				return func() error { _, err := e.Leader(cc.ctx()); return err }
			}},
			badCase{name: "election.Observe/" + cc.label + "-context", left: leftOf(name), setup: func(t *testing.T) func() error {
				e, err := election.New(session(t), name)
				if err != nil {
					t.Fatal(err)
				}
				return func() error { return drained(e.Observe(cc.ctx())) }
			}},
		)
	}
	// A closed client, and primitives on a session that had ended.
	cases = append(cases,
		badCase{name: "mutex.NewWithClient/closed-client", want: is(distsync.ErrUnavailable), left: leftOf(name), setup: func(t *testing.T) func() error {
			cc := closedClient(t)
			return func() error { return errOf(mutex.NewWithClient(bg, cc, name)) }
		}},
		badCase{name: "mutex.Lock/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			m, err := mutex.New(closedSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(m.Lock(bg)) }
		}},
		badCase{name: "rwmutex.RLock/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			rw, err := rwmutex.New(closedSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(rw.RLock(bg)) }
		}},
		badCase{name: "semaphore.Acquire/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			s, err := semaphore.New(closedSession(t), name, 1)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(s.Acquire(bg)) }
		}},
		badCase{name: "election.Campaign/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			e, err := election.New(closedSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { l, err := e.Campaign(bg, nil); return releaseIfHeld(l, err) }
		}},
	)
	// Limits that disagree, and permit counts out of range.
	const semName = "badinput-etcd-semaphore-limits"
	stored := func(t *testing.T) {
		if err := semaphore.SetLimit(bg, c, semName, 2); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = semaphore.DeleteLimit(bg, c, semName) })
	}
	semOn := func(t *testing.T, limit int64) *semaphore.Semaphore {
		s, err := semaphore.New(session(t), semName, limit)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases = append(cases,
		badCase{name: "semaphore.NewWithClient/limit-mismatch", want: is(distsync.ErrLimitMismatch), left: leftOf(semName), setup: func(t *testing.T) func() error {
			stored(t)
			return func() error { return errOf(semaphore.NewWithClient(bg, c, semName, 3)) }
		}},
		badCase{name: "semaphore.Acquire/limit-mismatch", want: is(distsync.ErrLimitMismatch), left: leftOf(semName), setup: func(t *testing.T) func() error {
			stored(t)
			s := semOn(t, 3)
			return func() error { return releaseIfHeld(s.Acquire(bg)) }
		}},
		badCase{name: "semaphore.TryAcquire/limit-mismatch", want: is(distsync.ErrLimitMismatch), left: leftOf(semName), setup: func(t *testing.T) func() error {
			stored(t)
			s := semOn(t, 3)
			return func() error { return releaseIfHeld(s.TryAcquire(bg)) }
		}},
	)
	for _, n := range []int64{0, -1, 2} {
		cases = append(cases,
			badCase{name: "semaphore.AcquireN/n" + itoa(n), want: invalid, left: leftOf(semName), setup: func(t *testing.T) func() error {
				s := semOn(t, 1)
				return func() error { return releaseIfHeld(s.AcquireN(bg, n)) }
			}},
			badCase{name: "semaphore.TryAcquireN/n" + itoa(n), want: invalid, left: leftOf(semName), setup: func(t *testing.T) func() error {
				s := semOn(t, 1)
				return func() error { return releaseIfHeld(s.TryAcquireN(bg, n)) }
			}},
		)
	}
	// Close is an end call: a second one is not an error.
	for label, open := range map[string]func() (interface{ Close() error }, error){
		"mutex":     func() (interface{ Close() error }, error) { return errPrim(mutex.NewWithClient(bg, c, name)) },
		"rwmutex":   func() (interface{ Close() error }, error) { return errPrim(rwmutex.NewWithClient(bg, c, name)) },
		"semaphore": func() (interface{ Close() error }, error) { return errPrim(semaphore.NewWithClient(bg, c, name, 1)) },
		"election":  func() (interface{ Close() error }, error) { return errPrim(election.NewWithClient(bg, c, name)) },
	} {
		cases = append(cases, badCase{name: label + ".Close/twice", left: leftOf(name), setup: func(t *testing.T) func() error {
			p, err := open()
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return closeTwice(p) }
		}})
	}
	t.Logf("%d cases", runBadCases(t, cases))
}
