package integration

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/mutex"
	"github.com/distsync/distsync/rwmutex"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestBadInputEtcd is the bad-input table of the etcd Session and its
// primitives.
func TestBadInputEtcd(t *testing.T) {
	c := etcdServer.Client(t)
	bg := context.Background()
	const ttl = 5 * time.Second
	// session opens a Session on c; with closed, it is closed before the
	// call (calls after Close).
	session := func(t *testing.T, closed bool) *etcdsync.Session {
		s, err := etcdsync.NewSession(bg, c, etcdsync.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if closed {
			_ = s.Close()
		} else {
			t.Cleanup(func() { _ = s.Close() })
		}
		return s
	}
	callerSession := func(t *testing.T) *concurrency.Session {
		s, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	closedCallerSession := func(t *testing.T) *concurrency.Session {
		s := callerSession(t)
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
		keys := etcdKeysOf(t, c, name)
		resp, err := c.Get(bg, etcdq.LimitKey(name), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
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
	type call = func(context.Context) (distsync.Lease, error)
	mutexCall := func(pick func(distsync.Mutex) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			s := session(t, false)
			m, err := s.Mutex(name)
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				_ = s.Close()
			}
			return pick(m)
		}
	}
	rwCall := func(pick func(distsync.RWMutex) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			s := session(t, false)
			rw, err := s.RWMutex(name)
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				_ = s.Close()
			}
			return pick(rw)
		}
	}
	semCall := func(pick func(distsync.Semaphore) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call {
			s := session(t, false)
			sem, err := s.Semaphore(bg, name, 1)
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				_ = s.Close()
			}
			return pick(sem)
		}
	}
	campaign := func(t *testing.T, name string, closed bool) call {
		s := session(t, false)
		e, err := s.Election(name)
		if err != nil {
			t.Fatal(err)
		}
		if closed {
			_ = s.Close()
		}
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte("v"))
			if err != nil {
				return nil, err
			}
			return l, nil
		}
	}
	acquirers := []acquirer{
		{"mutex.Lock", mutexCall(func(m distsync.Mutex) call { return m.Lock }), true},
		{"mutex.TryLock", mutexCall(func(m distsync.Mutex) call { return m.TryLock }), false},
		{"rwmutex.Lock", rwCall(func(rw distsync.RWMutex) call { return rw.Lock }), true},
		{"rwmutex.TryLock", rwCall(func(rw distsync.RWMutex) call { return rw.TryLock }), false},
		{"rwmutex.RLock", rwCall(func(rw distsync.RWMutex) call { return rw.RLock }), true},
		{"rwmutex.TryRLock", rwCall(func(rw distsync.RWMutex) call { return rw.TryRLock }), false},
		{"semaphore.Acquire", semCall(func(s distsync.Semaphore) call { return s.Acquire }), true},
		{"semaphore.TryAcquire", semCall(func(s distsync.Semaphore) call { return s.TryAcquire }), false},
		{"semaphore.AcquireN", semCall(func(s distsync.Semaphore) call {
			return func(ctx context.Context) (distsync.Lease, error) { return s.AcquireN(ctx, 1) }
		}), true},
		{"semaphore.TryAcquireN", semCall(func(s distsync.Semaphore) call {
			return func(ctx context.Context) (distsync.Lease, error) { return s.TryAcquireN(ctx, 1) }
		}), false},
		{"election.Campaign", campaign, true},
	}
	cases := acquireCases("etcd", acquirers, left, lose)

	cases = append(cases, nameCases(map[string]func(*testing.T, string) func() error{
		"Session.Mutex": func(t *testing.T, n string) func() error {
			s := session(t, false)
			return func() error { return errOf(s.Mutex(n)) }
		},
		"Session.RWMutex": func(t *testing.T, n string) func() error {
			s := session(t, false)
			return func() error { return errOf(s.RWMutex(n)) }
		},
		"Session.Semaphore": func(t *testing.T, n string) func() error {
			s := session(t, false)
			return func() error { return errOf(s.Semaphore(bg, n, 1)) }
		},
		"Session.Election": func(t *testing.T, n string) func() error {
			s := session(t, false)
			return func() error { return errOf(s.Election(n)) }
		},
		"mutex.New": func(t *testing.T, n string) func() error {
			s := callerSession(t)
			return func() error { return errOf(mutex.New(s, n)) }
		},
		"rwmutex.New": func(t *testing.T, n string) func() error {
			s := callerSession(t)
			return func() error { return errOf(rwmutex.New(s, n)) }
		},
		"semaphore.New": func(t *testing.T, n string) func() error {
			s := callerSession(t)
			return func() error { return errOf(semaphore.New(s, n, 1)) }
		},
		"election.New": func(t *testing.T, n string) func() error {
			s := callerSession(t)
			return func() error { return errOf(election.New(s, n)) }
		},
	})...)

	const name = "badinput-etcd"
	invalid := is(distsync.ErrInvalidConfig)
	simple := func(label string, want []error, f func() error) badCase {
		return badCase{name: label, want: want, setup: func(*testing.T) func() error { return f }, left: leftOf(name)}
	}
	withSession := func(label string, want []error, f func(s *etcdsync.Session) error) badCase {
		return badCase{name: label, want: want, left: leftOf(name), setup: func(t *testing.T) func() error {
			s := session(t, false)
			return func() error { return f(s) }
		}}
	}
	cases = append(cases,
		simple("mutex.New/nil-session", invalid, func() error { return errOf(mutex.New(nil, name)) }),
		simple("rwmutex.New/nil-session", invalid, func() error { return errOf(rwmutex.New(nil, name)) }),
		simple("semaphore.New/nil-session", invalid, func() error { return errOf(semaphore.New(nil, name, 1)) }),
		simple("election.New/nil-session", invalid, func() error { return errOf(election.New(nil, name)) }),
		simple("etcdsync.NewSession/nil-client", invalid, func() error { return errOf(etcdsync.NewSession(bg, nil)) }),
		badCase{name: "semaphore.New/limit-0", want: invalid, setup: func(t *testing.T) func() error {
			s := callerSession(t)
			return func() error { return errOf(semaphore.New(s, name, 0)) }
		}},
		badCase{name: "semaphore.New/limit-negative", want: invalid, setup: func(t *testing.T) func() error {
			s := callerSession(t)
			return func() error { return errOf(semaphore.New(s, name, -1)) }
		}},
		withSession("Session.Semaphore/limit-0", invalid, func(s *etcdsync.Session) error { return errOf(s.Semaphore(bg, name, 0)) }),
		withSession("Session.Semaphore/limit-negative", invalid, func(s *etcdsync.Session) error { return errOf(s.Semaphore(bg, name, -5)) }),
		withSession("Semaphore.SetLimit/limit-0", invalid, func(s *etcdsync.Session) error {
			sem, err := s.Semaphore(bg, name, 1)
			if err != nil {
				return err
			}
			return sem.SetLimit(bg, 0)
		}),
	)
	for _, tc := range []struct {
		label string
		ttl   time.Duration
	}{{"zero", 0}, {"negative", -2 * time.Second}, {"below-a-second", 500 * time.Millisecond}, {"fractional", 2500 * time.Millisecond}} {
		cases = append(cases,
			simple("etcdsync.NewSession/ttl-"+tc.label, invalid, func() error { return errOf(etcdsync.NewSession(bg, c, etcdsync.WithTTL(tc.ttl))) }),
			simple("etcdsync.Dial/ttl-"+tc.label, invalid, func() error {
				return errOf(etcdsync.Dial(bg, clientv3.Config{Endpoints: etcdServer.Endpoints()}, etcdsync.WithTTL(tc.ttl)))
			}),
		)
	}
	for _, cc := range ctxCases {
		cases = append(cases,
			simple("etcdsync.NewSession/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(etcdsync.NewSession(cc.ctx(), c)) }),
			withSession("Session.Semaphore/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *etcdsync.Session) error {
				return errOf(s.Semaphore(cc.ctx(), name, 1))
			}),
			withSession("Semaphore.SetLimit/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *etcdsync.Session) error {
				sem, err := s.Semaphore(bg, name, 1)
				if err != nil {
					return err
				}
				return sem.SetLimit(cc.ctx(), 2)
			}),
			withSession("election.Leader/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *etcdsync.Session) error {
				e, err := s.Election(name)
				if err != nil {
					return err
				}
				_, err = e.Leader(cc.ctx())
				return err
			}),
			withSession("election.Observe/"+cc.label+"-context", nil, func(s *etcdsync.Session) error {
				e, err := s.Election(name)
				if err != nil {
					return err
				}
				return drained(e.Observe(cc.ctx()))
			}),
		)
	}
	// A closed client, and primitives on a caller's session that had ended.
	cases = append(cases,
		badCase{name: "etcdsync.NewSession/closed-client", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			cc := closedClient(t)
			return func() error { return errOf(etcdsync.NewSession(bg, cc)) }
		}},
		badCase{name: "mutex.Lock/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			m, err := mutex.New(closedCallerSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(m.Lock(bg)) }
		}},
		badCase{name: "rwmutex.RLock/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			rw, err := rwmutex.New(closedCallerSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(rw.RLock(bg)) }
		}},
		badCase{name: "semaphore.Acquire/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			s, err := semaphore.New(closedCallerSession(t), name, 1)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(s.Acquire(bg)) }
		}},
		badCase{name: "election.Campaign/ended-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			e, err := election.New(closedCallerSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { l, err := e.Campaign(bg, nil); return releaseIfHeld(l, err) }
		}},
		badCase{name: "Session.Mutex/after-close", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			s := session(t, true)
			return func() error { return errOf(s.Mutex(name)) }
		}},
		badCase{name: "Session.Semaphore/after-close", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			s := session(t, true)
			return func() error { return errOf(s.Semaphore(bg, name, 1)) }
		}},
	)
	// Limits that disagree, and permit counts out of range.
	const semName = "badinput-etcd-semaphore-limits"
	// inUse holds a permit of semName with limit 2, so that the limit is
	// stored, until cleanup.
	inUse := func(t *testing.T) {
		sem, err := session(t, false).Semaphore(bg, semName, 2)
		if err != nil {
			t.Fatal(err)
		}
		l, err := sem.Acquire(bg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Release(bg) })
	}
	semOn := func(t *testing.T, limit int64) distsync.Semaphore {
		s, err := semaphore.New(callerSession(t), semName, limit)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases = append(cases,
		badCase{name: "Session.Semaphore/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
			inUse(t)
			s := session(t, false)
			return func() error { return errOf(s.Semaphore(bg, semName, 3)) }
		}},
		badCase{name: "semaphore.Acquire/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
			inUse(t)
			s := semOn(t, 3)
			return func() error { return releaseIfHeld(s.Acquire(bg)) }
		}},
		badCase{name: "semaphore.TryAcquire/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
			inUse(t)
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
	cases = append(cases, badCase{name: "Session.Close/twice", left: leftOf(name), setup: func(t *testing.T) func() error {
		s, err := etcdsync.NewSession(bg, c, etcdsync.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return func() error { return closeTwice(s) }
	}})
	t.Logf("%d cases", runBadCases(t, cases))
}
