package redissync_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
)

func TestConstructorsRejectBadInput(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, ttl := range []time.Duration{0, -time.Second, 99 * time.Millisecond, 100*time.Millisecond + time.Microsecond} {
		if _, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("WithTTL(%v): got %v, want ErrInvalidConfig", ttl, err)
		}
		if _, err := redissync.NewMutexWithClient(ctx, c, "ok", redissync.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("NewMutexWithClient WithTTL(%v): got %v, want ErrInvalidConfig", ttl, err)
		}
	}
	if _, err := redissync.NewSession(ctx, nil); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("nil client: got %v, want ErrInvalidConfig", err)
	}
	if _, err := redissync.NewMutex(nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("nil session: got %v, want ErrInvalidConfig", err)
	}
	s, err := redissync.NewSession(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"", strings.Repeat("x", distsync.MaxNameLen+1), "bad\x00name", "bad\xffutf8"} {
		if _, err := redissync.NewMutex(s, name); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("NewMutex(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	for _, limit := range []int64{0, -1} {
		if _, err := redissync.NewSemaphore(s, "ok", limit); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("NewSemaphore(limit %d): got %v, want ErrInvalidConfig", limit, err)
		}
	}
}

func TestLockReleaseTokens(t *testing.T) {
	ctx := context.Background()
	m, err := redissync.NewMutexWithClient(ctx, newClient(t), t.Name(), redissync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var last uint64
	for range 3 {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() <= last {
			t.Fatalf("token %d not above previous %d", l.Token(), last)
		}
		last = l.Token()
		if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
			t.Fatalf("TryLock while held: got %v, want ErrWouldBlock", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		if !errors.Is(l.Err(), distsync.ErrReleased) {
			t.Fatalf("Err after Release: got %v, want ErrReleased", l.Err())
		}
	}
}

// A held lease outlives several TTLs: renewal works.
func TestRenewalKeepsLease(t *testing.T) {
	ctx := context.Background()
	m, err := redissync.NewMutexWithClient(ctx, newClient(t), t.Name(), redissync.WithTTL(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if l.Err() != nil {
		t.Fatalf("lease lost after 4 TTLs: %v", l.Err())
	}
	if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock: got %v, want ErrWouldBlock", err)
	}
	_ = l.Release(ctx)
}

// Closing a session ends its leases with ErrLost and ErrClosed, frees the
// lock, and fails later calls with ErrClosed.
func TestSessionClose(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := redissync.NewMutex(s, t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	<-l.Done()
	if !errors.Is(l.Err(), distsync.ErrLost) || !errors.Is(l.Err(), distsync.ErrClosed) {
		t.Fatalf("Err after Close: %v, want ErrLost and ErrClosed", l.Err())
	}
	if _, err := m.Lock(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Lock after Close: %v, want ErrClosed", err)
	}
	other, err := redissync.NewMutexWithClient(ctx, c, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l2, err := other.TryLock(ctx)
	if err != nil {
		t.Fatalf("lock not freed by Close: %v", err)
	}
	_ = l2.Release(ctx)
}

func TestWithReplicasValidation(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, tc := range []struct {
		ttl     time.Duration
		n       int
		timeout time.Duration
	}{
		{time.Second, -1, 100 * time.Millisecond},
		{time.Second, 1, 0},
		{time.Second, 1, 100*time.Millisecond + time.Microsecond},
		{time.Second, 1, 500 * time.Millisecond}, // no room for a renewal
	} {
		_, err := redissync.NewSession(ctx, c, redissync.WithTTL(tc.ttl), redissync.WithReplicas(tc.n, tc.timeout))
		if !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("ttl %v WithReplicas(%d, %v): got %v, want ErrInvalidConfig", tc.ttl, tc.n, tc.timeout, err)
		}
	}
}

// WithReplicas(0, ...) waits for nothing; WithReplicas(1, ...) on a
// server without replicas fails every acquisition with ErrUnavailable
// within the timeout and leaves nothing behind.
func TestWithReplicas(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	name := t.Name()
	m0, err := redissync.NewMutexWithClient(ctx, c, name, redissync.WithTTL(300*time.Millisecond), redissync.WithReplicas(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m0.Close()
	l, err := m0.Lock(ctx)
	if err != nil {
		t.Fatalf("WithReplicas(0): %v", err)
	}
	time.Sleep(400 * time.Millisecond) // renewals work too
	if l.Err() != nil {
		t.Fatalf("WithReplicas(0) lease lost: %v", l.Err())
	}
	_ = l.Release(ctx)

	const timeout = 100 * time.Millisecond
	m1, err := redissync.NewMutexWithClient(ctx, c, name, redissync.WithReplicas(1, timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	for _, call := range []struct {
		what string
		f    func(context.Context) (distsync.Lease, error)
	}{{"Lock", m1.Lock}, {"TryLock", m1.TryLock}} {
		start := time.Now()
		l, err := call.f(ctx)
		took := time.Since(start)
		if !errors.Is(err, distsync.ErrUnavailable) {
			if l != nil {
				_ = l.Release(ctx)
			}
			t.Fatalf("%s WithReplicas(1) without replicas: got %v, want ErrUnavailable", call.what, err)
		}
		if took < timeout || took > timeout+time.Second {
			t.Errorf("%s failed after %v, want about the timeout %v", call.what, took, timeout)
		}
		if m, err := redisq.Members(ctx, c, name); err != nil || len(m) != 0 {
			t.Fatalf("%s left %v (%v), want nothing", call.what, m, err)
		}
	}
	// The name is free for others.
	l, err = m0.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock after the failed acquisitions: %v", err)
	}
	_ = l.Release(ctx)
}
