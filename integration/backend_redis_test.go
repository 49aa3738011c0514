package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// redisBackend adapts the Redis Session to the conformance suite, on the
// shared server; every Session has a client of its own and the TTL
// redisTTL.
func redisBackend() backend {
	return backend{
		name: "redis",
		open: func(t *testing.T) distsync.Session { return redisSession(t) },
		openCuttable: func(t *testing.T) (distsync.Session, func(), func()) {
			p := newTCPProxy(t, redisServer.Addr())
			return redisSession(t, redisClient(t, p.Addr())), p.Cut, p.Heal
		},
		expire: func(t *testing.T, s distsync.Session) {
			// Redis has no session of its own: every lease and waiter of
			// s stops renewing, and Expire returns once the server has
			// let their entries go.
			ctx, cancel := context.WithTimeout(context.Background(), 10*redisTTL)
			defer cancel()
			if err := redisq.Expire(ctx, s); err != nil {
				t.Fatal(err)
			}
		},
		deleteState: func(t *testing.T, l distsync.Lease) {
			// The holder's entry, deleted by hand as an operator would
			// (no script: nobody is woken).
			if err := redisq.DeleteMember(context.Background(), redisClient(t), l); err != nil {
				t.Fatal(err)
			}
		},
		keys:             redisKeys,
		compact:          redisDeleteHistories,
		denied:           redisDeniedSession,
		observeCoalesces: false,
	}
}

// redisACLClient creates a Redis ACL user with a unique name, the
// password "pw" and rules on the shared server, deleted at cleanup, and
// returns a client logged in as it. The default user is never changed.
func redisACLClient(t *testing.T, rules ...string) *goredis.Client {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	user := "distsync-" + hex.EncodeToString(b[:])
	admin := redisClient(t)
	args := []any{"ACL", "SETUSER", user, "on", ">pw"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = admin.Do(ctx, "ACL", "DELUSER", user).Err()
	})
	c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr(), Username: user, Password: "pw", ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// redisDeniedSession returns a Session of an ACL user whose keys are
// "other:*" only: it may subscribe (its channels are distsync's), so the
// Session opens, and every call on a name is refused. A user without the
// channels too (the ACL "~other:* &other:*") is refused at NewSession
// already, which this checks first.
func redisDeniedSession(t *testing.T) distsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := redissync.NewSession(ctx, redisACLClient(t, "~other:*", "&other:*", "+@all")); !errors.Is(err, distsync.ErrDenied) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("NewSession as a user without distsync's keys and channels: got %v, want ErrDenied", err)
	}
	s, err := redissync.NewSession(ctx, redisACLClient(t, "~other:*", "&distsync:*", "+@all"), redissync.WithTTL(redisTTL))
	if err != nil {
		if !errors.Is(err, distsync.ErrDenied) {
			t.Fatalf("NewSession as a user without distsync's keys: got %v, want ErrDenied", err)
		}
		return nil
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
