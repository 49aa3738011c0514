package integration

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// redisLifeBackend adapts the Redis primitives to the lifecycle checks.
// Each session has a client of its own; admin, a plain go-redis client
// opened before any baseline, ends sessions and reads the server's state:
// CLIENT LIST, PUBSUB CHANNELS / NUMSUB / NUMPAT, and the name's keys by
// SCAN.
func redisLifeBackend(t *testing.T) lifeBackend {
	t.Helper()
	admin := redisClient(t)
	bg := context.Background()
	return lifeBackend{
		name: "redis",
		ttl:  redisTTL,
		newSession: func(t *testing.T) *lifeSession {
			c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			s, err := redissync.NewSession(bg, c, redissync.WithTTL(redisTTL))
			if err != nil {
				c.Close()
				t.Fatal(err)
			}
			var once sync.Once
			closeAll := func() {
				once.Do(func() {
					_ = s.Close()
					_ = c.Close()
				})
			}
			t.Cleanup(closeAll)
			return &lifeSession{
				open: func(t *testing.T, k lifeKind, name string) lifeAcquirer { return redisLifeAcquirer(t, s, k, name) },
				end: func(t *testing.T, name string) {
					if err := redisq.DropSession(bg, admin, name, s); err != nil {
						t.Fatal(err)
					}
				},
				close: closeAll,
			}
		},
		entries: func(t *testing.T, name string) int {
			k := redisq.KeysFor(name)
			h, err := admin.ZCard(bg, k.Holders).Result()
			if err != nil {
				t.Fatal(err)
			}
			q, err := admin.ZCard(bg, k.Queue).Result()
			if err != nil {
				t.Fatal(err)
			}
			return int(h + q)
		},
		state: func(t *testing.T, name string) serverState {
			return serverState{
				{name: "connections", value: redisConnections(t, admin), final: true},
				{name: "subscriptions", value: redisSubscriptions(t, admin)},
				{name: "pattern-subscriptions", value: redisStateInt(t, admin, "PUBSUB", "NUMPAT")},
				{name: "keys", value: len(redisNameKeys(t, admin, name))},
			}
		},
	}
}

// redisConnections counts the server's client connections (CLIENT LIST),
// admin's own included.
func redisConnections(t *testing.T, admin *goredis.Client) int {
	t.Helper()
	out, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Split(strings.TrimSpace(out), "\n"))
}

// redisSubscriptions sums the subscribers of every channel the server has
// (PUBSUB CHANNELS, then PUBSUB NUMSUB).
func redisSubscriptions(t *testing.T, admin *goredis.Client) int {
	t.Helper()
	ctx := context.Background()
	chans, err := admin.PubSubChannels(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) == 0 {
		return 0
	}
	subs, err := admin.PubSubNumSub(ctx, chans...).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range subs {
		n += int(c)
	}
	return n
}

func redisStateInt(t *testing.T, admin *goredis.Client, args ...any) int {
	t.Helper()
	n, err := admin.Do(context.Background(), args...).Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// redisNameKeys lists the keys of name by SCAN, except its fencing counter
// and an election's capped history, which outlive every holder by design.
func redisNameKeys(t *testing.T, admin *goredis.Client, name string) []string {
	t.Helper()
	k := redisq.KeysFor(name)
	base := strings.TrimSuffix(k.Holders, "h")
	var keys []string
	iter := admin.Scan(context.Background(), 0, base+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		if key := iter.Val(); key != k.Seq && key != k.History {
			keys = append(keys, key)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// redisLifeAcquirer opens the Redis primitive of kind k on s.
func redisLifeAcquirer(t *testing.T, s *redissync.Session, k lifeKind, name string) lifeAcquirer {
	t.Helper()
	switch k {
	case lifeMutex:
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: m.Lock}
	case lifeWrite, lifeRead:
		rw, err := s.RWMutex(name)
		if err != nil {
			t.Fatal(err)
		}
		if k == lifeRead {
			return lifeAcquirer{acquire: rw.RLock}
		}
		return lifeAcquirer{acquire: rw.Lock}
	case lifeSemaphore:
		sem, err := s.Semaphore(context.Background(), name, 1)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{acquire: sem.Acquire}
	case lifeElection:
		e, err := s.Election(name)
		if err != nil {
			t.Fatal(err)
		}
		return lifeAcquirer{
			acquire: func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("candidate"))
				if err != nil {
					return nil, err
				}
				return l, nil
			},
		}
	}
	t.Fatalf("unknown kind %q", k)
	return lifeAcquirer{}
}
