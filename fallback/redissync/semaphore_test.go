package redissync_test

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

type acquired struct {
	l   distsync.Lease
	err error
}

// acquireAsync runs sem.AcquireN(ctx, n) in a goroutine; the test ends it
// and releases what it got at cleanup.
func acquireAsync(t *testing.T, ctx context.Context, sem distsync.Semaphore, n int64) <-chan acquired {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan acquired, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := sem.AcquireN(ctx, n)
		c <- acquired{l, err}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		select {
		case a := <-c:
			if a.l != nil {
				_ = a.l.Release(context.Background())
			}
			c <- a
		default:
		}
	})
	return c
}

// waitMembers waits until name has n holders and waiters.
func waitMembers(t *testing.T, name string, n int) {
	t.Helper()
	c := newClient(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := redisq.Members(context.Background(), c, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q has members %v, want %d", name, m, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func expectPending(t *testing.T, c <-chan acquired, what string) {
	t.Helper()
	select {
	case a := <-c:
		t.Fatalf("%s: returned %v, %v while it should wait", what, a.l, a.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func expectGot(t *testing.T, c <-chan acquired, what string) distsync.Lease {
	t.Helper()
	select {
	case a := <-c:
		if a.err != nil {
			t.Fatalf("%s: %v", what, a.err)
		}
		return a.l
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still waiting", what)
	}
	return nil
}

// Weighted permits add up to the limit, and a waiting AcquireN holds back
// later acquisitions that would fit (FIFO).
func TestSemaphoreWeighted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	sem := semaphore(t, newSession(t), name, 5)
	three, err := sem.AcquireN(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sem.TryAcquireN(ctx, 3)
	wantErr(t, "TryAcquireN(3) beside 3 of 5", err, distsync.ErrWouldBlock)
	two, err := sem.TryAcquireN(ctx, 2)
	if err != nil {
		t.Fatalf("TryAcquireN(2) beside 3 of 5: %v", err)
	}
	_ = two.Release(ctx)

	// 3 of 5 held: a waiting AcquireN(4) holds back a later Acquire that
	// would fit now.
	four := acquireAsync(t, ctx, semaphore(t, newSession(t), name, 5), 4)
	waitMembers(t, name, 2)
	one := acquireAsync(t, ctx, semaphore(t, newSession(t), name, 5), 1)
	waitMembers(t, name, 3)
	expectPending(t, one, "Acquire behind a waiting AcquireN(4)")
	_, err = sem.TryAcquire(ctx)
	wantErr(t, "TryAcquire behind a waiter", err, distsync.ErrWouldBlock)

	_ = three.Release(ctx)
	l4 := expectGot(t, four, "AcquireN(4) after the release")
	l1 := expectGot(t, one, "Acquire(1) beside 4 of 5")
	if l1.Token() <= l4.Token() {
		t.Errorf("the later Acquire's token %d is not above AcquireN's %d", l1.Token(), l4.Token())
	}
	_ = l4.Release(ctx)
	_ = l1.Release(ctx)
}

// The limit is stored while the semaphore is in use, and only then;
// SetLimit changes it, keeps held permits, lets waiters in, and fails
// other values' acquisitions, waiting ones included.
func TestSemaphoreLimitRule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	c := newClient(t)
	limitKey := redisq.KeysFor(name).Limit
	stored := func() string {
		v, _ := c.Get(ctx, limitKey).Result()
		return v
	}
	a := semaphore(t, newSession(t), name, 2)
	b := semaphore(t, newSession(t), name, 3) // idle: nothing to disagree with
	if got := stored(); got != "" {
		t.Fatalf("an idle semaphore stores limit %q", got)
	}
	// SetLimit on an idle semaphore stores nothing, and changes the value.
	if err := b.SetLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != "" || b.Limit() != 2 {
		t.Fatalf("after SetLimit(2) on an idle semaphore: stored %q, Limit %d; want none, 2", got, b.Limit())
	}
	if err := b.SetLimit(ctx, 3); err != nil {
		t.Fatal(err)
	}

	l1, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != "2" {
		t.Fatalf("in use: stored limit %q, want 2", got)
	}
	_, err = newSession(t).Semaphore(ctx, name, 3)
	wantErr(t, "open with 3 while in use with 2", err, distsync.ErrLimitMismatch)
	_, err = b.Acquire(ctx)
	wantErr(t, "Acquire with 3 while in use with 2", err, distsync.ErrLimitMismatch)
	_, err = b.TryAcquire(ctx)
	wantErr(t, "TryAcquire with 3 while in use with 2", err, distsync.ErrLimitMismatch)

	l2, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Full: a waiter of a, and a waiter of another value with limit 2.
	waiter := acquireAsync(t, ctx, a, 1)
	other := acquireAsync(t, ctx, semaphore(t, newSession(t), name, 2), 1)
	waitMembers(t, name, 4)

	// Lowering keeps the held permits; the other value's waiter fails.
	if err := a.SetLimit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != "1" || a.Limit() != 1 {
		t.Fatalf("after SetLimit(1): stored %q, Limit %d; want 1, 1", got, a.Limit())
	}
	select {
	case r := <-other:
		wantErr(t, "waiting Acquire of a value with the old limit", r.err, distsync.ErrLimitMismatch)
		if r.l != nil {
			_ = r.l.Release(ctx)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter with the old limit still waits after SetLimit")
	}
	if l1.Err() != nil || l2.Err() != nil {
		t.Fatalf("held permits lost by SetLimit: %v, %v", l1.Err(), l2.Err())
	}
	expectPending(t, waiter, "waiter of the value that lowered the limit")

	// Raising lets the waiter in.
	if err := a.SetLimit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	l3 := expectGot(t, waiter, "waiter after SetLimit(3)")
	// b has limit 3 now too.
	_, err = b.TryAcquire(ctx)
	wantErr(t, "TryAcquire of b at 3 of 3", err, distsync.ErrWouldBlock)
	for _, l := range []distsync.Lease{l1, l2, l3} {
		_ = l.Release(ctx)
	}
	if got := stored(); got != "" {
		t.Fatalf("idle again: stored limit %q, want none", got)
	}
	// Idle, any limit goes.
	if _, err := newSession(t).Semaphore(ctx, name, 7); err != nil {
		t.Fatalf("open with 7 when idle: %v", err)
	}
}
