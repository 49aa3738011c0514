package integration

import (
	"context"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
)

func redisElection(t *testing.T, s *redissync.Session, name string) *redissync.Election {
	t.Helper()
	e, err := redissync.NewElection(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// redisElectionBackend adapts the Redis Election to the conformance suite.
// Redis keeps a capped history of each election's changes, which compact
// deletes.
func redisElectionBackend() electionBackend {
	return electionBackend{
		newElection: func(t *testing.T, name string) distsync.Election {
			return redisElection(t, redisSession(t), name)
		},
		newCuttableElection: func(t *testing.T, name string) (distsync.Election, func(), func()) {
			p := newTCPProxy(t, redisServer.Addr())
			return redisElection(t, redisSession(t, redisClient(t, p.Addr())), name), p.Cut, p.Heal
		},
		endSession: func(t *testing.T, e distsync.Election) {
			el := e.(*redissync.Election)
			redisEndSession(t, el.Session(), el.Name())
		},
		compact: func(t *testing.T) {
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
		},
		keys: redisKeys,
	}
}

func TestRedisElectionConformance(t *testing.T) {
	testElectionConformance(t, redisElectionBackend())
}
