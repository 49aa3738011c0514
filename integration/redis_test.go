package integration

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// redisServer is the redis-server shared by this package's Redis tests.
var redisServer *distsynctest.RedisServer

func init() {
	servers = append(servers, func() (func(), error) {
		r, err := distsynctest.StartRedis()
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
