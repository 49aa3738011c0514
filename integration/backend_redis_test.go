package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/redissync"
	goredis "github.com/redis/go-redis/v9"
)

// redisBackend adapts the Redis Session to the conformance suite, on the
// shared server; every Session has a client of its own and the TTL
// redisTTL.
func redisBackend() backend {
	return backend{
		name: "redis",
		open: func(t *testing.T) distsync.Session { return redisSession(t) },
		openWith: func(t *testing.T, o sessionOpts) distsync.Session {
			opts := []redissync.Option{redissync.WithTTL(redisTTL), redissync.WithNameAttribute()}
			if o.identity != "" {
				opts = append(opts, redissync.WithIdentity(o.identity))
			}
			if o.logger != nil {
				opts = append(opts, redissync.WithLogger(o.logger))
			}
			if o.meter != nil {
				opts = append(opts, redissync.WithMeterProvider(o.meter))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := redissync.NewSession(ctx, redisClient(t), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		openCuttable: func(t *testing.T) (distsync.Session, func(), func()) {
			p := distsynctest.NewProxy(t, redisServer.Addr())
			return redisSession(t, redisClient(t, p.Addr())), p.Cut, p.Heal
		},
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
	return redisACLClientAt(t, redisServer.Addr(), rules...)
}

// redisACLClientAt is redisACLClient with a client that connects to addr
// (a proxy of the shared server). Unlike the other clients of these tests,
// it leaves go-redis's ContextTimeoutEnabled off: the Sessions of the
// ACL-prefix conformance run then send every request in a goroutine of its
// own, where the others send the first try of an acquisition and a release
// on the caller's goroutine (see fallback/redissync's doc).
func redisACLClientAt(t *testing.T, addr string, rules ...string) *goredis.Client {
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
	c := goredis.NewClient(&goredis.Options{Addr: addr, Username: user, Password: "pw", MaxRetries: -1})
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

// TestRedisExpireThenReuse checks the kit's Expire on Redis, on every
// primitive: the Session's holder ends lost and its waiter fails with
// ErrLost (each with that one sentinel), and the same primitives then
// acquire again.
func TestRedisExpireThenReuse(t *testing.T) {
	b := redisBackend()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type acquire = func(context.Context) (distsync.Lease, error)
	for _, p := range []struct {
		prim string
		open func(t *testing.T, s distsync.Session, name string) acquire
	}{
		{"mutex", func(t *testing.T, s distsync.Session, n string) acquire { return redisMutex(t, s, n).Lock }},
		{"rwmutex", func(t *testing.T, s distsync.Session, n string) acquire { return redisRWMutex(t, s, n).Lock }},
		{"semaphore", func(t *testing.T, s distsync.Session, n string) acquire {
			sem, err := s.Semaphore(ctx, n, 1)
			if err != nil {
				t.Fatal(err)
			}
			return sem.Acquire
		}},
		{"election", func(t *testing.T, s distsync.Session, n string) acquire {
			e := redisElection(t, s, n)
			return func(ctx context.Context) (distsync.Lease, error) { return e.Campaign(ctx, []byte("v")) }
		}},
	} {
		t.Run(p.prim, func(t *testing.T) {
			name := t.Name()
			s := b.open(t)
			held, err := p.open(t, s, name+"/held")(ctx)
			if err != nil {
				t.Fatal(err)
			}
			blocker, err := p.open(t, b.open(t), name+"/blocked")(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Release(ctx)
			waiting := p.open(t, s, name+"/blocked")
			waited := make(chan error, 1)
			go func() {
				l, err := waiting(ctx)
				if l != nil {
					_ = l.Release(ctx)
				}
				waited <- err
			}()
			waitKeys(t, redisKeys, name+"/blocked", 2)
			start := time.Now()
			distsynctest.Expire(t, s)
			t.Logf("Expire returned after %v", time.Since(start).Round(time.Millisecond))
			if left := redisKeys(t, name+"/held"); len(left) != 0 {
				t.Fatalf("after expire, %q still has %v", name+"/held", left)
			}
			select {
			case <-held.Done():
			default:
				t.Fatal("holder not told by the time its entry expired")
			}
			if err := held.Err(); !errors.Is(err, distsync.ErrLost) || len(distsynctest.Sentinels(err)) != 1 {
				t.Errorf("holder's Err %v, want ErrLost alone", err)
			}
			select {
			case err := <-waited:
				if !errors.Is(err, distsync.ErrLost) || len(distsynctest.Sentinels(err)) != 1 {
					t.Errorf("waiter: %v, want ErrLost alone", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("waiter still waits 5s after its entry expired")
			}
			// The Session goes on: both names acquire again through it.
			again, err := p.open(t, s, name+"/held")(ctx)
			if err != nil {
				t.Fatalf("acquire after the expiry: %v", err)
			}
			if again.Token() <= held.Token() {
				t.Errorf("token %d not above the expired lease's %d", again.Token(), held.Token())
			}
			_ = again.Release(ctx)
			_ = blocker.Release(ctx)
			l, err := waiting(ctx)
			if err != nil {
				t.Fatalf("the waiter's primitive after the expiry: %v", err)
			}
			_ = l.Release(ctx)
		})
	}
}

// redisDeleteHistories deletes every election's recorded history (the
// backend's compact).
func redisDeleteHistories(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t)
	keys, err := c.Keys(ctx, "distsync:*:hist").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := c.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// redisAppPrefix is the prefix of redisACLPrefixBackend, and redisAppACL
// the rules of its user: the ACL the package documentation gives for it.
const redisAppPrefix = "app:"

var redisAppACL = []string{"~app:*", "&app:*",
	"+evalsha", "+eval", "+script|load", "+subscribe", "+unsubscribe", "+ping",
	"+time", "+get", "+set", "+del", "+exists", "+zadd", "+zrem", "+zcard", "+zrange", "+zrangebyscore",
	"+zscore", "+hset", "+hget", "+hmget", "+hdel", "+xadd", "+xrange", "+xrevrange", "+publish"}

// redisACLPrefixBackend is redisBackend with every Session opened by a
// Redis user of its own, limited to the documented ACL for the prefix
// "app:", with WithPrefix("app:").
func redisACLPrefixBackend() backend {
	b := redisBackend()
	b.name = "redis-acl-prefix"
	open := func(t *testing.T, c *goredis.Client) distsync.Session {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redissync.NewSession(ctx, c, redissync.WithTTL(redisTTL), redissync.WithPrefix(redisAppPrefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	b.open = func(t *testing.T) distsync.Session { return open(t, redisACLClient(t, redisAppACL...)) }
	b.openCuttable = func(t *testing.T) (distsync.Session, func(), func()) {
		p := distsynctest.NewProxy(t, redisServer.Addr())
		return open(t, redisACLClientAt(t, p.Addr(), redisAppACL...)), p.Cut, p.Heal
	}
	b.compact = func(t *testing.T) {
		ctx := context.Background()
		c := redisClient(t)
		keys, err := c.Keys(ctx, redisAppPrefix+"*:hist").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := c.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// TestConformanceRedisACLPrefix runs the conformance suite of every
// primitive, of the Session, and of Inspect and ForceRelease, as Redis
// users limited to "~app:* &app:*" and the documented commands, with
// WithPrefix("app:"). The same user without the prefix is denied at once.
func TestConformanceRedisACLPrefix(t *testing.T) {
	b := redisACLPrefixBackend()
	// The Inspect checks' Sessions with an identity: the same user and
	// prefix as b.open's.
	b.openWith = func(t *testing.T, o sessionOpts) distsync.Session {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redissync.NewSession(ctx, redisACLClient(t, redisAppACL...),
			redissync.WithTTL(redisTTL), redissync.WithPrefix(redisAppPrefix), redissync.WithIdentity(o.identity))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	distsynctest.TestSession(t, b.kit())
	t.Run("DefaultPrefixDenied", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		s, err := redissync.NewSession(ctx, redisACLClient(t, redisAppACL...), redissync.WithTTL(redisTTL))
		if err == nil {
			_ = s.Close()
		}
		if !errors.Is(err, distsync.ErrDenied) || len(distsynctest.Sentinels(err)) != 1 {
			t.Errorf("NewSession without the prefix: %v, want ErrDenied alone", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the refusal took %v: retried", took)
		}
	})
}
