package integration

import (
	"context"
	"testing"

	"github.com/distsync/distsync"
)

// redisDeleteHistories deletes every election's recorded history.
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

// redisElectionBackend adapts the Redis Election to the per-primitive
// conformance suite. Redis keeps a capped history of each election's
// changes, which compact deletes.
func redisElectionBackend() electionBackend {
	return electionBackend{
		newElection: func(t *testing.T, name string) distsync.Election {
			s := redisSession(t)
			e := redisElection(t, s, name)
			redisOpened.Store(e, redisOpen{s, name})
			return e
		},
		newCuttableElection: func(t *testing.T, name string) (distsync.Election, func(), func()) {
			p := newTCPProxy(t, redisServer.Addr())
			return redisElection(t, redisSession(t, redisClient(t, p.Addr())), name), p.Cut, p.Heal
		},
		endSession: func(t *testing.T, e distsync.Election) { redisEndSessionOf(t, e) },
		compact:    redisDeleteHistories,
		keys:       redisKeys,
	}
}

func TestRedisElectionConformance(t *testing.T) {
	testElectionConformance(t, redisElectionBackend())
}
