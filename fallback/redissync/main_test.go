package redissync_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

var server *testserver.Redis

func TestMain(m *testing.M) {
	testserver.Run(m, func() (func(), error) {
		r, err := testserver.StartRedis()
		if err != nil {
			return nil, err
		}
		server = r
		return r.Stop, nil
	})
}

// newClient returns a client of the test server, closed at cleanup.
func newClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: server.Addr(), ContextTimeoutEnabled: true})
	tb.Cleanup(func() { c.Close() })
	return c
}

// newSession returns a Session on a client of its own, closed at cleanup.
func newSession(tb testing.TB, opts ...redissync.Option) *redissync.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, newClient(tb), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func mutex(tb testing.TB, s distsync.Session, name string) distsync.Mutex {
	tb.Helper()
	m, err := s.Mutex(name)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func semaphore(tb testing.TB, s distsync.Session, name string, limit int64) distsync.Semaphore {
	tb.Helper()
	sem, err := s.Semaphore(context.Background(), name, limit)
	if err != nil {
		tb.Fatal(err)
	}
	return sem
}

// aclUser creates a Redis ACL user with a unique name, the password "pw"
// and rules, deleted at cleanup, and returns a client logged in as it.
// The default user is never changed.
func aclUser(tb testing.TB, rules ...string) *goredis.Client {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	user := "distsync-test-" + hex.EncodeToString(b[:])
	admin := newClient(tb)
	ctx := context.Background()
	args := []any{"ACL", "SETUSER", user, "on", ">pw"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	c := goredis.NewClient(&goredis.Options{Addr: server.Addr(), Username: user, Password: "pw", ContextTimeoutEnabled: true})
	tb.Cleanup(func() { c.Close() })
	return c
}
