package integration

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// TestRedisDeletedHolderPassesOn deletes a holder's entry from outside
// while others wait: the lock must pass to the head waiter at its next
// re-check (within the TTL), not when a waiter gives up. (Found by the
// fenced-history nemesis: the waiters' re-check did not promote anyone,
// since no release or expiry had announced the room, and the name stayed
// blocked for as long as its waiters waited.)
func TestRedisDeletedHolderPassesOn(t *testing.T) {
	const ttl = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	holder, err := redisMutex(t, ttlSession(t, redisServer.Addr(), ttl), name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan distsync.Lease, 2)
	errs := make(chan error, 2)
	for range 2 {
		m := redisMutex(t, ttlSession(t, redisServer.Addr(), ttl), name)
		go func() {
			l, err := m.Lock(ctx)
			errs <- err
			got <- l
		}()
	}
	// However the test ends, the waiters end before it does.
	defer func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil && ctx.Err() == nil {
				t.Error(err)
			}
			if l := <-got; l != nil {
				_ = l.Release(context.Background())
			}
		}
	}()
	waitKeys(t, redisKeys, name, 3)
	deleted := time.Now()
	if err := redisq.DeleteMember(ctx, redisClient(t), holder); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		got <- l // released by the deferred drain
		if l == nil {
			t.FailNow()
		}
		t.Logf("a waiter got the lock %v after the holder's entry was deleted", time.Since(deleted))
		if l.Token() <= holder.Token() {
			t.Errorf("token %d not above the deleted holder's %d", l.Token(), holder.Token())
		}
		if err := l.Release(ctx); err != nil {
			t.Error(err)
		}
	case <-time.After(4 * ttl):
		t.Fatalf("no waiter got the lock within %v of the holder's deletion", 4*ttl)
	}
	waitLost(t, holder, 2*ttl, "holder deleted")
	_ = holder.Release(ctx)
}
