package integration

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// TestBadInputRedis is the bad-input table of the Redis Session and its
// primitives.
func TestBadInputRedis(t *testing.T) {
	bg := context.Background()
	c := redisClient(t)
	session := func(t *testing.T) *redissync.Session { return redisSession(t, c) }
	closedSession := func(t *testing.T) *redissync.Session {
		s := session(t)
		_ = s.Close()
		return s
	}
	leftOf := func(name string) func(t *testing.T) []string {
		return func(t *testing.T) []string { return redisKeys(t, name) }
	}
	lose := func(t *testing.T, l distsync.Lease) {
		if err := redisq.DeleteMember(bg, c, l); err != nil {
			t.Fatal(err)
		}
	}
	type call = func(context.Context) (distsync.Lease, error)
	// opener returns the call f picks on a primitive opened on a session
	// of its own; with closed, the session is closed after the opening
	// (Lock after Close).
	opener := func(f func(t *testing.T, s distsync.Session, name string) call) func(t *testing.T, name string, closed bool) call {
		return func(t *testing.T, name string, closed bool) call {
			s := session(t)
			acquire := f(t, s, name)
			if closed {
				_ = s.Close()
			}
			return acquire
		}
	}
	sem := func(t *testing.T, s distsync.Session, name string) distsync.Semaphore {
		sem, err := s.Semaphore(bg, name, 2)
		if err != nil {
			t.Fatal(err)
		}
		return sem
	}
	acquirers := []acquirer{
		{"Mutex.Lock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisMutex(t, s, n).Lock }), true},
		{"Mutex.TryLock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisMutex(t, s, n).TryLock }), false},
		{"RWMutex.Lock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisRWMutex(t, s, n).Lock }), true},
		{"RWMutex.TryLock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisRWMutex(t, s, n).TryLock }), false},
		{"RWMutex.RLock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisRWMutex(t, s, n).RLock }), true},
		{"RWMutex.TryRLock", opener(func(t *testing.T, s distsync.Session, n string) call { return redisRWMutex(t, s, n).TryRLock }), false},
		{"Semaphore.Acquire", opener(func(t *testing.T, s distsync.Session, n string) call { return sem(t, s, n).Acquire }), true},
		{"Semaphore.TryAcquire", opener(func(t *testing.T, s distsync.Session, n string) call { return sem(t, s, n).TryAcquire }), false},
		{"Semaphore.AcquireN", opener(func(t *testing.T, s distsync.Session, n string) call {
			sm := sem(t, s, n)
			return func(ctx context.Context) (distsync.Lease, error) { return sm.AcquireN(ctx, 2) }
		}), true},
		{"Semaphore.TryAcquireN", opener(func(t *testing.T, s distsync.Session, n string) call {
			sm := sem(t, s, n)
			return func(ctx context.Context) (distsync.Lease, error) { return sm.TryAcquireN(ctx, 2) }
		}), false},
		{"Election.Campaign", opener(func(t *testing.T, s distsync.Session, n string) call {
			e := redisElection(t, s, n)
			return func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("v"))
				if err != nil {
					return nil, err
				}
				return l, nil
			}
		}), true},
	}
	cases := acquireCases("redis", acquirers, redisKeys, lose)

	cases = append(cases, nameCases(map[string]func(*testing.T, string) func() error{
		"Session.Mutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(s.Mutex(n)) }
		},
		"Session.RWMutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(s.RWMutex(n)) }
		},
		"Session.Semaphore": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(s.Semaphore(bg, n, 1)) }
		},
		"Session.Election": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(s.Election(n)) }
		},
	})...)

	const name = "badinput-redis"
	invalid := is(distsync.ErrInvalidConfig)
	simple := func(label string, want []error, f func() error) badCase {
		return badCase{name: label, want: want, setup: func(*testing.T) func() error { return f }, left: leftOf(name)}
	}
	withSession := func(label string, want []error, f func(s *redissync.Session) error) badCase {
		return badCase{name: label, want: want, left: leftOf(name), setup: func(t *testing.T) func() error {
			s := session(t)
			return func() error { return f(s) }
		}}
	}
	withSem := func(label string, want []error, f func(sem distsync.Semaphore) error) badCase {
		return badCase{name: label, want: want, left: leftOf(name), setup: func(t *testing.T) func() error {
			sm := sem(t, session(t), name)
			return func() error { return f(sm) }
		}}
	}
	dial := func(ctx context.Context, opts ...redissync.Option) error {
		return errOf(redissync.Dial(ctx, &goredis.UniversalOptions{Addrs: []string{redisServer.Addr()}}, opts...))
	}
	cases = append(cases,
		simple("NewSession/nil-client", invalid, func() error { return errOf(redissync.NewSession(bg, nil)) }),
		simple("Dial/nil-options", invalid, func() error { return errOf(redissync.Dial(bg, nil)) }),
		withSession("Session.Semaphore/limit-0", invalid, func(s *redissync.Session) error { return errOf(s.Semaphore(bg, name, 0)) }),
		withSession("Session.Semaphore/limit-negative", invalid, func(s *redissync.Session) error { return errOf(s.Semaphore(bg, name, -1)) }),
		withSem("Semaphore.AcquireN/n-0", invalid, func(sm distsync.Semaphore) error { return releaseIfHeld(sm.AcquireN(bg, 0)) }),
		withSem("Semaphore.AcquireN/n-above-limit", invalid, func(sm distsync.Semaphore) error { return releaseIfHeld(sm.AcquireN(bg, 3)) }),
		withSem("Semaphore.TryAcquireN/n-negative", invalid, func(sm distsync.Semaphore) error { return releaseIfHeld(sm.TryAcquireN(bg, -1)) }),
		withSem("Semaphore.TryAcquireN/n-above-limit", invalid, func(sm distsync.Semaphore) error { return releaseIfHeld(sm.TryAcquireN(bg, 3)) }),
		withSem("Semaphore.SetLimit/0", invalid, func(sm distsync.Semaphore) error { return sm.SetLimit(bg, 0) }),
		simple("NewSession/replicas-negative", invalid, func() error {
			return errOf(redissync.NewSession(bg, c, redissync.WithReplicas(-1, 10*time.Millisecond)))
		}),
		simple("NewSession/replica-timeout-zero", invalid, func() error { return errOf(redissync.NewSession(bg, c, redissync.WithReplicas(1, 0))) }),
		simple("NewSession/replica-timeout-too-long", invalid, func() error {
			return errOf(redissync.NewSession(bg, c, redissync.WithTTL(time.Second), redissync.WithReplicas(1, 900*time.Millisecond)))
		}),
		withSession("Election.Leader/no-leader", is(distsync.ErrNoLeader), func(s *redissync.Session) error {
			e, err := s.Election(name)
			if err != nil {
				return err
			}
			_, err = e.Leader(bg)
			return err
		}),
	)
	for _, tc := range []struct {
		label string
		ttl   time.Duration
	}{{"zero", 0}, {"negative", -time.Second}, {"below-minimum", 99 * time.Millisecond}, {"fractional", 150*time.Millisecond + 500*time.Microsecond}} {
		opt := redissync.WithTTL(tc.ttl)
		cases = append(cases,
			simple("NewSession/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewSession(bg, c, opt)) }),
			simple("Dial/ttl-"+tc.label, invalid, func() error { return dial(bg, opt) }),
		)
	}
	for _, cc := range ctxCases {
		cases = append(cases,
			simple("NewSession/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(redissync.NewSession(cc.ctx(), c)) }),
			simple("Dial/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return dial(cc.ctx()) }),
			withSession("Session.Semaphore/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *redissync.Session) error {
				return errOf(s.Semaphore(cc.ctx(), name, 1))
			}),
			withSem("Semaphore.SetLimit/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(sm distsync.Semaphore) error {
				return sm.SetLimit(cc.ctx(), 3)
			}),
			withSession("Election.Leader/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *redissync.Session) error {
				e, err := s.Election(name)
				if err != nil {
					return err
				}
				_, err = e.Leader(cc.ctx())
				return err
			}),
			withSession("Election.Observe/"+cc.label+"-context", nil, func(s *redissync.Session) error {
				e, err := s.Election(name)
				if err != nil {
					return err
				}
				return drained(e.Observe(cc.ctx()))
			}),
		)
	}
	cases = append(cases,
		badCase{name: "NewSession/closed-client", want: is(distsync.ErrUnavailable), left: leftOf(name), setup: func(t *testing.T) func() error {
			cc := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr()})
			_ = cc.Close()
			return func() error { return errOf(redissync.NewSession(bg, cc)) }
		}},
		badCase{name: "Session.Mutex/closed-session", want: is(distsync.ErrClosed), setup: func(t *testing.T) func() error {
			s := closedSession(t)
			return func() error { return errOf(s.Mutex(name)) }
		}},
		badCase{name: "Session.Semaphore/closed-session", want: is(distsync.ErrClosed), setup: func(t *testing.T) func() error {
			s := closedSession(t)
			return func() error { return errOf(s.Semaphore(bg, name, 1)) }
		}},
	)
	// Limits that disagree: a semaphore in use with limit 2, opened (or
	// acquired through a value opened while it was idle) with 3.
	const semName = "badinput-redis-semaphore-limits"
	inUse := func(t *testing.T) {
		sm, err := session(t).Semaphore(bg, semName, 2)
		if err != nil {
			t.Fatal(err)
		}
		l, err := sm.Acquire(bg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Release(bg) })
	}
	cases = append(cases, badCase{name: "Session.Semaphore/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
		inUse(t)
		s := session(t)
		return func() error { return errOf(s.Semaphore(bg, semName, 3)) }
	}})
	for _, acq := range []struct {
		label string
		f     func(distsync.Semaphore) call
	}{
		{"Acquire", func(s distsync.Semaphore) call { return s.Acquire }},
		{"TryAcquire", func(s distsync.Semaphore) call { return s.TryAcquire }},
		{"AcquireN", func(s distsync.Semaphore) call {
			return func(ctx context.Context) (distsync.Lease, error) { return s.AcquireN(ctx, 2) }
		}},
	} {
		cases = append(cases, badCase{name: "Semaphore." + acq.label + "/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
			sm, err := session(t).Semaphore(bg, semName, 3) // idle: no mismatch yet
			if err != nil {
				t.Fatal(err)
			}
			inUse(t)
			return func() error { return releaseIfHeld(acq.f(sm)(bg)) }
		}})
	}
	// Close is an end call: a second one is not an error.
	for label, open := range map[string]func() (interface{ Close() error }, error){
		"Session.Close/twice": func() (interface{ Close() error }, error) { return errPrim(redissync.NewSession(bg, c)) },
		"Dial.Close/twice": func() (interface{ Close() error }, error) {
			return errPrim(redissync.Dial(bg, &goredis.UniversalOptions{Addrs: []string{redisServer.Addr()}}))
		},
	} {
		cases = append(cases, badCase{name: label, left: leftOf(name), setup: func(t *testing.T) func() error {
			p, err := open()
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return closeTwice(p) }
		}})
	}
	t.Logf("%d cases", runBadCases(t, cases))
}

// errPrim turns a constructor's typed result into a closable value.
func errPrim[T interface{ Close() error }](p T, err error) (interface{ Close() error }, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
