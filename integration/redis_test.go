package integration

import (
	"context"
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

// redisSession returns a session on a client of its own, closed at cleanup.
func redisSession(t testing.TB, c ...redissync.Client) *redissync.Session {
	t.Helper()
	var cl redissync.Client
	if len(c) > 0 {
		cl = c[0]
	} else {
		cl = redisClient(t)
	}
	s, err := redissync.NewSession(context.Background(), cl, redissync.WithTTL(redisTTL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// redisKeys lists the holders and waiters of a name.
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
func redisEndSession(t *testing.T, s *redissync.Session, name string) {
	t.Helper()
	if err := redisq.DropSession(context.Background(), redisClient(t), name, s.ID()); err != nil {
		t.Fatal(err)
	}
}

func redisMutex(t *testing.T, s *redissync.Session, name string) *redissync.Mutex {
	t.Helper()
	m, err := redissync.NewMutex(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// redisMutexBackend adapts the Redis Mutex to the conformance suite. Redis
// grants in arrival order, so the FIFO subtest runs too.
func redisMutexBackend() mutexBackend {
	return mutexBackend{
		newMutex: func(t *testing.T, name string) distsync.Mutex {
			return redisMutex(t, redisSession(t), name)
		},
		sameSession: func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex) {
			s := redisSession(t)
			return redisMutex(t, s, name), redisMutex(t, s, name)
		},
		endSession: func(t *testing.T, m distsync.Mutex) {
			mu := m.(*redissync.Mutex)
			redisEndSession(t, mu.Session(), mu.Name())
		},
		deleteState: func(t *testing.T, l distsync.Lease) {
			// Delete the holder's entry from the holders' sorted set by
			// hand, as an operator would.
			rl := l.(*redissync.Lease)
			if err := redisq.DeleteMember(context.Background(), redisClient(t), rl); err != nil {
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
			rw, err := redissync.NewRWMutex(redisSession(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return rw
		},
		endSession: func(t *testing.T, rw distsync.RWMutex) {
			r := rw.(*redissync.RWMutex)
			redisEndSession(t, r.Session(), r.Name())
		},
		keys: redisKeys,
	})
}

func TestRedisSemaphoreConformance(t *testing.T) {
	testSemaphoreConformance(t, semBackend{
		newSem: func(t *testing.T, name string, limit int64) (distsync.Semaphore, error) {
			return redissync.NewSemaphore(redisSession(t), name, limit)
		},
		endSession: func(t *testing.T, s distsync.Semaphore) {
			sem := s.(*redissync.Semaphore)
			redisEndSession(t, sem.Session(), sem.Name())
		},
		keys: redisKeys,
	})
}
