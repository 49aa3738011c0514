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
	goredis "github.com/redis/go-redis/v9"
)

// sentinels counts the contract's sentinel errors that err wraps.
func sentinels(err error) int {
	n := 0
	for _, s := range []error{distsync.ErrWouldBlock, distsync.ErrNotAcquired, distsync.ErrLost,
		distsync.ErrReleased, distsync.ErrInvalidName, distsync.ErrInvalidConfig, distsync.ErrLimitMismatch,
		distsync.ErrNoLeader, distsync.ErrClosed, distsync.ErrUnavailable, distsync.ErrDenied, distsync.ErrNotFound} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// wantErr fails t unless err wraps want and no other sentinel.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || sentinels(err) != 1 {
		t.Errorf("%s: got %v (%d sentinels), want %v alone", what, err, sentinels(err), want)
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, ttl := range []time.Duration{0, -time.Second, 99 * time.Millisecond, 100*time.Millisecond + time.Microsecond} {
		_, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl))
		wantErr(t, "NewSession WithTTL("+ttl.String()+")", err, distsync.ErrInvalidConfig)
		_, err = redissync.Dial(ctx, &goredis.UniversalOptions{Addrs: []string{server.Addr()}}, redissync.WithTTL(ttl))
		wantErr(t, "Dial WithTTL("+ttl.String()+")", err, distsync.ErrInvalidConfig)
	}
	_, err := redissync.NewSession(ctx, nil)
	wantErr(t, "nil client", err, distsync.ErrInvalidConfig)
	_, err = redissync.Dial(ctx, nil)
	wantErr(t, "nil options", err, distsync.ErrInvalidConfig)
	s := newSession(t)
	for _, name := range []string{"", strings.Repeat("x", distsync.MaxNameLen+1), "bad\x00name", "bad\xffutf8"} {
		_, err := s.Mutex(name)
		wantErr(t, "Mutex("+name+")", err, distsync.ErrInvalidName)
		_, err = s.RWMutex(name)
		wantErr(t, "RWMutex", err, distsync.ErrInvalidName)
		_, err = s.Semaphore(ctx, name, 1)
		wantErr(t, "Semaphore", err, distsync.ErrInvalidName)
		_, err = s.Election(name)
		wantErr(t, "Election", err, distsync.ErrInvalidName)
	}
	for _, limit := range []int64{0, -1} {
		_, err := s.Semaphore(ctx, "ok", limit)
		wantErr(t, "Semaphore limit", err, distsync.ErrInvalidConfig)
	}
	sem := semaphore(t, s, t.Name(), 3)
	for _, n := range []int64{0, -1, 4} {
		_, err := sem.AcquireN(ctx, n)
		wantErr(t, "AcquireN", err, distsync.ErrInvalidConfig)
		_, err = sem.TryAcquireN(ctx, n)
		wantErr(t, "TryAcquireN", err, distsync.ErrInvalidConfig)
	}
	wantErr(t, "SetLimit(0)", sem.SetLimit(ctx, 0), distsync.ErrInvalidConfig)
}

// An unreachable server fails the opening within its context.
func TestOpenUnreachable(t *testing.T) {
	for _, open := range []struct {
		what string
		f    func(ctx context.Context, addr string) (*redissync.Session, error)
	}{
		{"NewSession", func(ctx context.Context, addr string) (*redissync.Session, error) {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			defer c.Close()
			return redissync.NewSession(ctx, c)
		}},
		{"Dial", func(ctx context.Context, addr string) (*redissync.Session, error) {
			return redissync.Dial(ctx, &goredis.UniversalOptions{Addrs: []string{addr}})
		}},
	} {
		// A port nobody listens on: 192.0.2.1 (TEST-NET-1) drops the
		// packets, so the dial hangs until the context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		s, err := open.f(ctx, "192.0.2.1:6379")
		took := time.Since(start)
		cancel()
		if s != nil {
			_ = s.Close()
		}
		wantErr(t, open.what, err, distsync.ErrUnavailable)
		if took > time.Second {
			t.Errorf("%s returned after %v, want about its 300ms context", open.what, took)
		}
	}
}

func TestLockReleaseTokens(t *testing.T) {
	ctx := context.Background()
	m := mutex(t, newSession(t, redissync.WithTTL(time.Second)), t.Name())
	var last uint64
	for range 3 {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.(*redissync.Lease); !ok {
			t.Fatalf("Lock returned a %T, want *redissync.Lease", l)
		}
		if l.Token() <= last {
			t.Fatalf("token %d not above previous %d", l.Token(), last)
		}
		last = l.Token()
		_, err = m.TryLock(ctx)
		wantErr(t, "TryLock while held", err, distsync.ErrWouldBlock)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		wantErr(t, "Err after Release", l.Err(), distsync.ErrReleased)
	}
}

// A held lease outlives several TTLs: renewal works.
func TestRenewalKeepsLease(t *testing.T) {
	ctx := context.Background()
	m := mutex(t, newSession(t, redissync.WithTTL(150*time.Millisecond)), t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if l.Err() != nil {
		t.Fatalf("lease lost after 4 TTLs: %v", l.Err())
	}
	_, err = m.TryLock(ctx)
	wantErr(t, "TryLock", err, distsync.ErrWouldBlock)
	_ = l.Release(ctx)
}

// A lease whose renewals stopped is lost, and the Session goes on: the
// next Lock through the same Mutex works.
func TestSessionOutlivesLostLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := newSession(t, redissync.WithTTL(200*time.Millisecond))
	m := mutex(t, s, t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := redisq.Expire(ctx, s); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	wantErr(t, "Err after expiry", l.Err(), distsync.ErrLost)
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the expiry: %v", err)
	}
	if l2.Token() <= l.Token() {
		t.Errorf("token %d not above the expired lease's %d", l2.Token(), l.Token())
	}
	_ = l2.Release(ctx)
}

// Closing a Session ends its leases with ErrLost alone, frees the lock,
// and fails later calls with ErrClosed.
func TestSessionClose(t *testing.T) {
	ctx := context.Background()
	s, err := redissync.NewSession(ctx, newClient(t), redissync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := mutex(t, s, t.Name())
	e, _ := s.Election(t.Name() + "/e")
	sem := semaphore(t, s, t.Name()+"/s", 1)
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-l.Done()
	wantErr(t, "Err after Close", l.Err(), distsync.ErrLost)
	_, err = m.Lock(ctx)
	wantErr(t, "Lock after Close", err, distsync.ErrClosed)
	_, err = m.TryLock(ctx)
	wantErr(t, "TryLock after Close", err, distsync.ErrClosed)
	_, err = s.Mutex(t.Name())
	wantErr(t, "Mutex after Close", err, distsync.ErrClosed)
	_, err = s.Semaphore(ctx, t.Name(), 1)
	wantErr(t, "Semaphore after Close", err, distsync.ErrClosed)
	_, err = e.Leader(ctx)
	wantErr(t, "Leader after Close", err, distsync.ErrClosed)
	_, err = e.Campaign(ctx, nil)
	wantErr(t, "Campaign after Close", err, distsync.ErrClosed)
	if err := sem.SetLimit(ctx, 2); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("SetLimit after Close: %v, want ErrClosed", err)
	}
	for range e.Observe(ctx) {
		t.Error("Observe after Close delivered a leader")
	}
	l2, err := mutex(t, newSession(t), t.Name()).TryLock(ctx)
	if err != nil {
		t.Fatalf("lock not freed by Close: %v", err)
	}
	_ = l2.Release(ctx)
}

// A Session from Dial owns its client: Close closes it.
func TestDial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := &goredis.UniversalOptions{Addrs: []string{server.Addr()}}
	s, err := redissync.Dial(ctx, o, redissync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l, err := mutex(t, s, t.Name()).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin := newClient(t)
	before := clients(t, admin)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	// The Session's pub/sub connection and its client's pool are gone.
	deadline := time.Now().Add(5 * time.Second)
	for clients(t, admin) >= before-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after Close, %d before: the client was not closed", clients(t, admin), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o.ContextTimeoutEnabled || len(o.Addrs) != 1 {
		t.Errorf("Dial changed the caller's options: %+v", o)
	}
}

// clients counts the server's connections.
func clients(t *testing.T, admin *goredis.Client) int {
	t.Helper()
	out, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Split(strings.TrimSpace(out), "\n"))
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
		wantErr(t, "WithReplicas", err, distsync.ErrInvalidConfig)
	}
}

// WithReplicas(0, ...) waits for nothing; WithReplicas(1, ...) on a
// server without replicas fails every acquisition with ErrUnavailable
// within the timeout and leaves nothing behind.
func TestWithReplicas(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	name := t.Name()
	m0 := mutex(t, newSession(t, redissync.WithTTL(300*time.Millisecond), redissync.WithReplicas(0, 0)), name)
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
	m1 := mutex(t, newSession(t, redissync.WithReplicas(1, timeout)), name)
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

// TestDefaultPrefixAgrees: the public default is the engine's.
func TestDefaultPrefixAgrees(t *testing.T) {
	if redissync.DefaultPrefix != redisq.DefaultPrefix {
		t.Fatalf("redissync.DefaultPrefix %q, engine %q", redissync.DefaultPrefix, redisq.DefaultPrefix)
	}
}
