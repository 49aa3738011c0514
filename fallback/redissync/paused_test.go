package redissync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// A Lock whose first request is sent while the server is paused gives up
// at its context's end, within distsync.CancelGrace, although the request
// runs on the caller's goroutine (the client has ContextTimeoutEnabled).
// Once the server resumes, the late request and the cleanup run, in
// either order: nothing of the acquisition is left, and the name is free
// long before the 10 s TTL. (The order the pause leaves is usually the
// harmless one; internal/redisq's TestAbandonedAcquireRunsLate checks the
// other, and that the check catches it.)
func TestLockWhileServerPaused(t *testing.T) {
	srv, err := testserver.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	m := mutex(t, s, "paused")
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { admin.Close() })

	for i := range 3 {
		// Warm the pool: the paused request goes out on an open connection.
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		start := time.Now()
		l, err = m.Lock(lctx)
		took := time.Since(start)
		cancel()
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
		if err == nil {
			t.Fatalf("round %d: Lock on a paused server succeeded", i)
		}
		if !errors.Is(err, distsync.ErrNotAcquired) {
			t.Errorf("round %d: Lock: %v, want ErrNotAcquired", i, err)
		}
		if took > 20*time.Millisecond+distsync.CancelGrace+50*time.Millisecond {
			t.Errorf("round %d: Lock returned %v after it began, its context ended after 20ms", i, took)
		}
		// Nothing of the cancelled acquisition stays: the name is free long
		// before the TTL.
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		l, err = m.Lock(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("round %d: Lock after the server resumed: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := admin.ZCard(ctx, "distsync:{paused}:h").Val() + admin.ZCard(ctx, "distsync:{paused}:q").Val()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d members left 3 s after the release", i, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
