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

// TestBadInputRedis is the bad-input table of the Redis primitives.
func TestBadInputRedis(t *testing.T) {
	bg := context.Background()
	c := redisClient(t)
	const ttl = time.Second
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
		if err := redisq.DeleteMember(bg, c, redisLease(l)); err != nil {
			t.Fatal(err)
		}
	}
	type call = func(context.Context) (distsync.Lease, error)
	// opener opens a primitive on a session of its own, or with closed,
	// opens it with the WithClient constructor and closes it (Lock after
	// Close).
	type prim interface{ Close() error }
	opener := func(open func(name string, s *redissync.Session) (prim, error), owned func(name string) (prim, error)) func(t *testing.T, name string, closed bool) prim {
		return func(t *testing.T, name string, closed bool) prim {
			var (
				p   prim
				err error
			)
			if closed {
				p, err = owned(name)
			} else {
				p, err = open(name, session(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				_ = p.Close()
			}
			return p
		}
	}
	mutexes := opener(
		func(name string, s *redissync.Session) (prim, error) {
			return errPrim(redissync.NewMutex(s, name))
		},
		func(name string) (prim, error) {
			return errPrim(redissync.NewMutexWithClient(bg, c, name, redissync.WithTTL(ttl)))
		})
	rws := opener(
		func(name string, s *redissync.Session) (prim, error) {
			return errPrim(redissync.NewRWMutex(s, name))
		},
		func(name string) (prim, error) {
			return errPrim(redissync.NewRWMutexWithClient(bg, c, name, redissync.WithTTL(ttl)))
		})
	sems := opener(
		func(name string, s *redissync.Session) (prim, error) {
			return errPrim(redissync.NewSemaphore(s, name, 1))
		},
		func(name string) (prim, error) {
			return errPrim(redissync.NewSemaphoreWithClient(bg, c, name, 1, redissync.WithTTL(ttl)))
		})
	elections := opener(
		func(name string, s *redissync.Session) (prim, error) {
			return errPrim(redissync.NewElection(s, name))
		},
		func(name string) (prim, error) {
			return errPrim(redissync.NewElectionWithClient(bg, c, name, redissync.WithTTL(ttl)))
		})
	pick := func(open func(*testing.T, string, bool) prim, f func(prim) call) func(*testing.T, string, bool) call {
		return func(t *testing.T, name string, closed bool) call { return f(open(t, name, closed)) }
	}
	acquirers := []acquirer{
		{"Mutex.Lock", pick(mutexes, func(p prim) call { return p.(*redissync.Mutex).Lock }), true},
		{"Mutex.TryLock", pick(mutexes, func(p prim) call { return p.(*redissync.Mutex).TryLock }), false},
		{"RWMutex.Lock", pick(rws, func(p prim) call { return p.(*redissync.RWMutex).Lock }), true},
		{"RWMutex.TryLock", pick(rws, func(p prim) call { return p.(*redissync.RWMutex).TryLock }), false},
		{"RWMutex.RLock", pick(rws, func(p prim) call { return p.(*redissync.RWMutex).RLock }), true},
		{"RWMutex.TryRLock", pick(rws, func(p prim) call { return p.(*redissync.RWMutex).TryRLock }), false},
		{"Semaphore.Acquire", pick(sems, func(p prim) call { return p.(*redissync.Semaphore).Acquire }), true},
		{"Semaphore.TryAcquire", pick(sems, func(p prim) call { return p.(*redissync.Semaphore).TryAcquire }), false},
		{"Election.Campaign", pick(elections, func(p prim) call {
			return func(ctx context.Context) (distsync.Lease, error) {
				l, err := p.(*redissync.Election).Campaign(ctx, []byte("v"))
				if err != nil {
					return nil, err
				}
				return l, nil
			}
		}), true},
	}
	cases := acquireCases("redis", acquirers, redisKeys, lose)

	cases = append(cases, nameCases(map[string]func(*testing.T, string) func() error{
		"NewMutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(redissync.NewMutex(s, n)) }
		},
		"NewMutexWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(redissync.NewMutexWithClient(bg, c, n)) }
		},
		"NewRWMutex": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(redissync.NewRWMutex(s, n)) }
		},
		"NewRWMutexWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(redissync.NewRWMutexWithClient(bg, c, n)) }
		},
		"NewSemaphore": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(redissync.NewSemaphore(s, n, 1)) }
		},
		"NewSemaphoreWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(redissync.NewSemaphoreWithClient(bg, c, n, 1)) }
		},
		"NewElection": func(t *testing.T, n string) func() error {
			s := session(t)
			return func() error { return errOf(redissync.NewElection(s, n)) }
		},
		"NewElectionWithClient": func(t *testing.T, n string) func() error {
			return func() error { return errOf(redissync.NewElectionWithClient(bg, c, n)) }
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
	cases = append(cases,
		simple("NewSession/nil-client", invalid, func() error { return errOf(redissync.NewSession(bg, nil)) }),
		simple("NewMutex/nil-session", invalid, func() error { return errOf(redissync.NewMutex(nil, name)) }),
		simple("NewRWMutex/nil-session", invalid, func() error { return errOf(redissync.NewRWMutex(nil, name)) }),
		simple("NewSemaphore/nil-session", invalid, func() error { return errOf(redissync.NewSemaphore(nil, name, 1)) }),
		simple("NewElection/nil-session", invalid, func() error { return errOf(redissync.NewElection(nil, name)) }),
		simple("NewMutexWithClient/nil-client", invalid, func() error { return errOf(redissync.NewMutexWithClient(bg, nil, name)) }),
		simple("NewRWMutexWithClient/nil-client", invalid, func() error { return errOf(redissync.NewRWMutexWithClient(bg, nil, name)) }),
		simple("NewSemaphoreWithClient/nil-client", invalid, func() error { return errOf(redissync.NewSemaphoreWithClient(bg, nil, name, 1)) }),
		simple("NewElectionWithClient/nil-client", invalid, func() error { return errOf(redissync.NewElectionWithClient(bg, nil, name)) }),
		withSession("NewSemaphore/limit-0", invalid, func(s *redissync.Session) error { return errOf(redissync.NewSemaphore(s, name, 0)) }),
		withSession("NewSemaphore/limit-negative", invalid, func(s *redissync.Session) error { return errOf(redissync.NewSemaphore(s, name, -1)) }),
		simple("NewSemaphoreWithClient/limit-0", invalid, func() error { return errOf(redissync.NewSemaphoreWithClient(bg, c, name, 0)) }),
		simple("NewSemaphoreWithClient/limit-negative", invalid, func() error { return errOf(redissync.NewSemaphoreWithClient(bg, c, name, -3)) }),
		simple("NewSession/replicas-negative", invalid, func() error {
			return errOf(redissync.NewSession(bg, c, redissync.WithReplicas(-1, 10*time.Millisecond)))
		}),
		simple("NewSession/replica-timeout-zero", invalid, func() error { return errOf(redissync.NewSession(bg, c, redissync.WithReplicas(1, 0))) }),
		simple("NewSession/replica-timeout-too-long", invalid, func() error {
			return errOf(redissync.NewSession(bg, c, redissync.WithTTL(time.Second), redissync.WithReplicas(1, 900*time.Millisecond)))
		}),
		withSession("Election.Leader/no-leader", is(distsync.ErrNoLeader), func(s *redissync.Session) error {
			e, err := redissync.NewElection(s, name)
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
	}{{"zero", 0}, {"negative", -time.Second}, {"below-minimum", redissync.MinTTL - time.Millisecond}, {"fractional", 150*time.Millisecond + 500*time.Microsecond}} {
		opt := redissync.WithTTL(tc.ttl)
		cases = append(cases,
			simple("NewSession/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewSession(bg, c, opt)) }),
			simple("NewMutexWithClient/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewMutexWithClient(bg, c, name, opt)) }),
			simple("NewRWMutexWithClient/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewRWMutexWithClient(bg, c, name, opt)) }),
			simple("NewSemaphoreWithClient/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewSemaphoreWithClient(bg, c, name, 1, opt)) }),
			simple("NewElectionWithClient/ttl-"+tc.label, invalid, func() error { return errOf(redissync.NewElectionWithClient(bg, c, name, opt)) }),
		)
	}
	for _, cc := range ctxCases {
		cases = append(cases,
			simple("NewSession/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(redissync.NewSession(cc.ctx(), c)) }),
			simple("NewMutexWithClient/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func() error { return errOf(redissync.NewMutexWithClient(cc.ctx(), c, name)) }),
			withSession("Election.Leader/"+cc.label+"-context", is(distsync.ErrUnavailable, cc.err), func(s *redissync.Session) error {
				e, err := redissync.NewElection(s, name)
				if err != nil {
					return err
				}
				_, err = e.Leader(cc.ctx())
				return err
			}),
			withSession("Election.Observe/"+cc.label+"-context", nil, func(s *redissync.Session) error {
				e, err := redissync.NewElection(s, name)
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
		badCase{name: "Mutex.Lock/closed-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			m, err := redissync.NewMutex(closedSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(m.Lock(bg)) }
		}},
		badCase{name: "Semaphore.Acquire/closed-session", want: is(distsync.ErrClosed), left: leftOf(name), setup: func(t *testing.T) func() error {
			s, err := redissync.NewSemaphore(closedSession(t), name, 1)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(s.Acquire(bg)) }
		}},
	)
	// Limits that disagree: a semaphore in use with limit 2, opened with 3.
	const semName = "badinput-redis-semaphore-limits"
	inUse := func(t *testing.T) {
		s, err := redissync.NewSemaphore(session(t), semName, 2)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Acquire(bg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Release(bg) })
	}
	for _, acq := range []struct {
		label string
		f     func(*redissync.Semaphore) call
	}{{"Acquire", func(s *redissync.Semaphore) call { return s.Acquire }}, {"TryAcquire", func(s *redissync.Semaphore) call { return s.TryAcquire }}} {
		cases = append(cases, badCase{name: "Semaphore." + acq.label + "/limit-mismatch", want: is(distsync.ErrLimitMismatch), setup: func(t *testing.T) func() error {
			inUse(t)
			s, err := redissync.NewSemaphore(session(t), semName, 3)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return releaseIfHeld(acq.f(s)(bg)) }
		}})
	}
	// Close is an end call: a second one is not an error.
	for label, open := range map[string]func() (interface{ Close() error }, error){
		"Session": func() (interface{ Close() error }, error) { return errPrim(redissync.NewSession(bg, c)) },
		"Mutex":   func() (interface{ Close() error }, error) { return errPrim(redissync.NewMutexWithClient(bg, c, name)) },
		"RWMutex": func() (interface{ Close() error }, error) {
			return errPrim(redissync.NewRWMutexWithClient(bg, c, name))
		},
		"Semaphore": func() (interface{ Close() error }, error) {
			return errPrim(redissync.NewSemaphoreWithClient(bg, c, name, 1))
		},
		"Election": func() (interface{ Close() error }, error) {
			return errPrim(redissync.NewElectionWithClient(bg, c, name))
		},
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

// errPrim turns a constructor's typed result into a closable primitive.
func errPrim[T interface{ Close() error }](p T, err error) (interface{ Close() error }, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
