package redissync_test

import (
	"testing"

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
