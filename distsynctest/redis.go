package distsynctest

import (
	"context"
	"testing"

	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/redis/go-redis/v9"
)

// RedisServer is a real redis-server process on a free loopback port, with
// persistence off. Redis starts in milliseconds, so each test may have its
// own; a test package may also share one, started in TestMain with
// [StartRedis], and keep tests apart by names. Its methods are safe for
// concurrent use.
type RedisServer struct {
	r *testserver.Redis
}

// StartRedis starts redis-server and returns once it answers PING. It
// fails, naming the Debian package to install, when redis-server is
// missing. The caller must call [RedisServer.Stop].
func StartRedis() (*RedisServer, error) {
	r, err := testserver.StartRedis()
	if err != nil {
		return nil, err
	}
	return &RedisServer{r: r}, nil
}

// Redis starts redis-server for t, stopped when t's test ends. It fails t
// when the server cannot start (see [StartRedis]).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Addr returns the server's address, "127.0.0.1:PORT". It stays the same
// across Kill and Restart.
func (r *RedisServer) Addr() string { return r.r.Addr() }

// Client returns a new go-redis client of the server, closed when t's
// test ends. Its calls are bounded by their contexts
// (ContextTimeoutEnabled), as redissync wants.
func (r *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// Session returns a redissync Session with opts on a new client, closed
// (Session, then client) when t's test ends. The TTL has no server-side
// minimum on Redis: redissync.WithTTL(time.Second) makes an expiry test
// quick. It fails t when the Session cannot open within 20 s.
func (r *RedisServer) Session(t testing.TB, opts ...redissync.Option) *redissync.Session {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true})
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	s, err := redissync.NewSession(ctx, c, opts...)
	if err != nil {
		c.Close()
		t.Fatalf("distsynctest: Redis session: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = c.Close()
	})
	return s
}

// Kill kills the server (SIGKILL) and waits for it to exit: every
// connection drops and new ones are refused until Restart.
func (r *RedisServer) Kill() { r.r.Kill() }

// Restart starts the server again, empty, on the same port after Kill.
func (r *RedisServer) Restart() error { return r.r.Restart() }

// Pause stops the server process (SIGSTOP): connections stay open and
// commands go unanswered, as with a blackholed server, until Resume.
func (r *RedisServer) Pause() error { return r.r.Pause() }

// Resume continues a paused server (SIGCONT).
func (r *RedisServer) Resume() error { return r.r.Resume() }

// Stop kills the server. It is idempotent.
func (r *RedisServer) Stop() { r.r.Stop() }
