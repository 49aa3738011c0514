package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/testserver"
)

// ownRedis starts a redis-server for one fault test, stopped at cleanup.
func ownRedis(t *testing.T) *testserver.Redis {
	t.Helper()
	r, err := testserver.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func ttlSession(t *testing.T, addr string, ttl time.Duration) *redissync.Session {
	t.Helper()
	s, err := redissync.NewSession(context.Background(), redisClient(t, addr), redissync.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestRedisFaultKillRestart kills redis-server under a holder and a waiter:
// the holder is told of the loss before its TTL could run out, the waiter
// fails cleanly, and after a restart the lock works again.
func TestRedisFaultKillRestart(t *testing.T) {
	const ttl = 500 * time.Millisecond
	r := ownRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	holder := redisMutex(t, ttlSession(t, r.Addr(), ttl), name)
	waiter := redisMutex(t, ttlSession(t, r.Addr(), ttl), name)
	l, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		wl, err := waiter.Lock(ctx)
		if err == nil {
			_ = wl.Release(ctx)
		}
		waitErr <- err
	}()
	time.Sleep(50 * time.Millisecond) // the waiter is queued

	killed := time.Now()
	r.Kill()
	select {
	case <-l.Done():
	case <-time.After(ttl):
		t.Fatalf("holder not told of the loss within the TTL (%v) of the kill", ttl)
	}
	t.Logf("holder told %v after the kill: %v", time.Since(killed), l.Err())
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("holder Err: %v, want ErrLost", l.Err())
	}
	select {
	case err := <-waitErr:
		t.Logf("waiter failed %v after the kill: %v", time.Since(killed), err)
		if err == nil || !(errors.Is(err, distsync.ErrUnavailable) || errors.Is(err, distsync.ErrLost)) {
			t.Fatalf("waiter: got %v, want ErrUnavailable or ErrLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter still blocked 5s after the kill")
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release of a lost lease: %v", err)
	}

	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	// The same sessions work again once their connections redial.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l2, err := holder.TryLock(ctx)
		if err == nil {
			if _, err := waiter.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
				t.Fatalf("TryLock by the other after restart: %v, want ErrWouldBlock", err)
			}
			_ = l2.Release(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock unusable 10s after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Waiting works again too: a waiter is woken by the release.
	l3, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		wl, err := waiter.Lock(ctx)
		if err == nil {
			_ = wl.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = l3.Release(ctx)
	if err := <-got; err != nil {
		t.Fatalf("waiter after restart: %v", err)
	}
}

// TestRedisFaultPausedServer stops redis-server (SIGSTOP) under a holder:
// loss is reported before the holder's TTL runs out on the server.
func TestRedisFaultPausedServer(t *testing.T) {
	const ttl = 600 * time.Millisecond
	r := ownRedis(t)
	ctx := context.Background()
	l, err := redisMutex(t, ttlSession(t, r.Addr(), ttl), t.Name()).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acquired := time.Now()
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	defer r.Resume()
	select {
	case <-l.Done():
	case <-time.After(2 * ttl):
		t.Fatal("holder not told of the loss while the server was paused")
	}
	// The server-side expiry is at least ttl after the acquisition.
	if d := time.Since(acquired); d >= ttl {
		t.Fatalf("loss reported %v after acquiring, not before the TTL %v", d, ttl)
	}
	t.Logf("loss reported %v after the last confirmed refresh: %v", time.Since(acquired), l.Err())
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err: %v, want ErrLost", l.Err())
	}
	_ = r.Resume()
	_ = l.Release(ctx)
}

// TestRedisFaultPausedHolder suspends a holder's renewals, as a GC pause or
// a stopped process would: it is told of the loss before its TTL ends, the
// next holder gets a higher token, and a fenced store rejects the stale one.
func TestRedisFaultPausedHolder(t *testing.T) {
	const ttl = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := t.Name()
	m1 := redisMutex(t, ttlSession(t, redisServer.Addr(), ttl), name)
	m2 := redisMutex(t, ttlSession(t, redisServer.Addr(), ttl), name)
	old, err := m1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	redisq.SuspendRenewal(old, true)
	next := make(chan distsync.Lease, 1)
	go func() {
		l, err := m2.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		next <- l
	}()
	<-old.Done()
	told := time.Since(paused)
	if told >= ttl {
		t.Fatalf("paused holder told after %v, not within its TTL %v", told, ttl)
	}
	cur := <-next
	if cur == nil {
		return
	}
	t.Logf("paused holder told after %v; next holder in after %v (token %d > %d)", told, time.Since(paused), cur.Token(), old.Token())
	store := &redisFencedCounter{}
	if err := store.add(cur.Token()); err != nil {
		t.Fatal(err)
	}
	if err := store.add(old.Token()); err == nil {
		t.Fatalf("the stale holder's token %d was accepted after %d", old.Token(), cur.Token())
	}
	if store.n != 1 {
		t.Fatalf("counter %d, want 1", store.n)
	}
	_ = cur.Release(ctx)
	_ = old.Release(ctx)
}

// redisFencedCounter is a resource that rejects writes with a fencing token
// lower than the highest it accepted.
type redisFencedCounter struct {
	highest uint64
	n       int
}

func (c *redisFencedCounter) add(token uint64) error {
	if token < c.highest {
		return errors.New("stale fencing token")
	}
	c.highest = token
	c.n++
	return nil
}
