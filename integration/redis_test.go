package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// redisServer is the redis-server shared by this package's Redis tests.
var redisServer *testserver.Redis

func init() {
	servers = append(servers, func() (func(), error) {
		r, err := testserver.StartRedis()
		if err != nil {
			return nil, err
		}
		redisServer = r
		return r.Stop, nil
	})
}

// redisTTL is the session TTL of the conformance runs: short, so that a
// deleted holder learns of it within TTL/3.
const redisTTL = time.Second

// redisClient returns a client of addr (default: the shared server),
// closed at cleanup.
func redisClient(t testing.TB, addr ...string) *goredis.Client {
	t.Helper()
	a := redisServer.Addr()
	if len(addr) > 0 {
		a = addr[0]
	}
	c := goredis.NewClient(&goredis.Options{Addr: a, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// redisSession returns a session on c (default: a client of its own),
// closed at cleanup.
func redisSession(t testing.TB, c ...goredis.UniversalClient) *redissync.Session {
	t.Helper()
	var cl goredis.UniversalClient
	if len(c) > 0 {
		cl = c[0]
	} else {
		cl = redisClient(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, cl, redissync.WithTTL(redisTTL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// redisKeys lists the holders and waiters of a name, of any primitive.
func redisKeys(t *testing.T, name string) []string {
	t.Helper()
	m, err := redisq.Members(context.Background(), redisClient(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// redisEndSession deletes every holder and waiter of s on name, as the
// expiry of a crashed session would.
func redisEndSession(t *testing.T, s distsync.Session, name string) {
	t.Helper()
	if err := redisq.DropSession(context.Background(), redisClient(t), name, s); err != nil {
		t.Fatal(err)
	}
}

func redisMutex(t testing.TB, s distsync.Session, name string) distsync.Mutex {
	t.Helper()
	m, err := s.Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func redisRWMutex(t testing.TB, s distsync.Session, name string) distsync.RWMutex {
	t.Helper()
	rw, err := s.RWMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func redisElection(t testing.TB, s distsync.Session, name string) distsync.Election {
	t.Helper()
	e, err := s.Election(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// redisOpened remembers the session and name each primitive of the
// per-primitive conformance adapters below was opened with, for their
// endSession.
var redisOpened sync.Map // primitive -> redisOpen

type redisOpen struct {
	s    distsync.Session
	name string
}

func redisEndSessionOf(t *testing.T, prim any) {
	t.Helper()
	o, ok := redisOpened.Load(prim)
	if !ok {
		t.Fatalf("%T not opened by an adapter", prim)
	}
	redisEndSession(t, o.(redisOpen).s, o.(redisOpen).name)
}

// redisMutexBackend adapts the Redis Mutex to the per-primitive
// conformance suite. Redis grants in arrival order, so the FIFO subtest
// runs too.
func redisMutexBackend() mutexBackend {
	return mutexBackend{
		newMutex: func(t *testing.T, name string) distsync.Mutex {
			s := redisSession(t)
			m := redisMutex(t, s, name)
			redisOpened.Store(m, redisOpen{s, name})
			return m
		},
		sameSession: func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex) {
			s := redisSession(t)
			return redisMutex(t, s, name), redisMutex(t, s, name)
		},
		endSession: func(t *testing.T, m distsync.Mutex) { redisEndSessionOf(t, m) },
		deleteState: func(t *testing.T, l distsync.Lease) {
			// Delete the holder's entry from the holders' sorted set by
			// hand, as an operator would.
			if err := redisq.DeleteMember(context.Background(), redisClient(t), l); err != nil {
				t.Fatal(err)
			}
		},
		keys: redisKeys,
	}
}

func TestRedisMutexConformance(t *testing.T) {
	testMutexConformance(t, redisMutexBackend())
}

func TestRedisRWMutexConformance(t *testing.T) {
	testRWMutexConformance(t, rwBackend{
		newRW: func(t *testing.T, name string) distsync.RWMutex {
			s := redisSession(t)
			rw := redisRWMutex(t, s, name)
			redisOpened.Store(rw, redisOpen{s, name})
			return rw
		},
		endSession: func(t *testing.T, rw distsync.RWMutex) { redisEndSessionOf(t, rw) },
		keys:       redisKeys,
	})
}

func TestRedisSemaphoreConformance(t *testing.T) {
	testSemaphoreConformance(t, semBackend{
		newSem: func(t *testing.T, name string, limit int64) (distsync.Semaphore, error) {
			s := redisSession(t)
			sem, err := s.Semaphore(context.Background(), name, limit)
			if err == nil {
				redisOpened.Store(sem, redisOpen{s, name})
			}
			return sem, err
		},
		endSession: func(t *testing.T, sem distsync.Semaphore) { redisEndSessionOf(t, sem) },
		keys:       redisKeys,
	})
}
