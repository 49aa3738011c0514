package semaphore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func session(t *testing.T) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// open returns the semaphore called name with limit on a Session of its
// own.
func open(t *testing.T, name string, limit int64) distsync.Semaphore {
	t.Helper()
	s, err := session(t).Semaphore(context.Background(), name, limit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stored returns the stored limit of name, "" if none.
func stored(t *testing.T, name string) string {
	t.Helper()
	resp, err := etcd.Client(t).Get(context.Background(), semaphore.LimitKey(name))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func TestNewRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	cs, err := concurrency.NewSession(etcd.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	s := session(t)
	for _, limit := range []int64{0, -1} {
		if _, err := semaphore.New(cs, "ok", limit); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("New(limit %d): got %v, want ErrInvalidConfig", limit, err)
		}
		if _, err := s.Semaphore(ctx, "ok", limit); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("Session.Semaphore(limit %d): got %v, want ErrInvalidConfig", limit, err)
		}
	}
	if _, err := semaphore.New(cs, "", 1); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("New(empty name): got %v, want ErrInvalidName", err)
	}
	sem := open(t, t.Name(), 3)
	for _, n := range []int64{0, -2, 4} {
		if _, err := sem.AcquireN(ctx, n); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("AcquireN(%d) of limit 3: got %v, want ErrInvalidConfig", n, err)
		}
		if _, err := sem.TryAcquireN(ctx, n); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("TryAcquireN(%d) of limit 3: got %v, want ErrInvalidConfig", n, err)
		}
	}
	if err := sem.SetLimit(ctx, 0); !errors.Is(err, distsync.ErrInvalidConfig) || sem.Limit() != 3 {
		t.Errorf("SetLimit(0): got %v and limit %d, want ErrInvalidConfig and 3", err, sem.Limit())
	}
}

// TestWeightedFIFO: a waiting AcquireN(3) is not overtaken by a later
// Acquire(1) that would fit, and gets in when enough permits come back.
func TestWeightedFIFO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	held1, err := open(t, name, 4).AcquireN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	big := make(chan distsync.Lease, 1)
	bigSem := open(t, name, 4)
	go func() {
		l, err := bigSem.AcquireN(ctx, 3)
		if err != nil {
			t.Error(err)
		}
		big <- l
	}()
	waitCount(t, name, 2)
	small := open(t, name, 4)
	if _, err := small.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire behind a waiting AcquireN(3): got %v, want ErrWouldBlock", err)
	}
	smallc := make(chan distsync.Lease, 1)
	go func() {
		l, err := small.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		smallc <- l
	}()
	waitCount(t, name, 3)
	select {
	case <-smallc:
		t.Fatal("Acquire(1) overtook a waiting AcquireN(3)")
	case <-big:
		t.Fatal("AcquireN(3) got in with only 2 of 4 permits free")
	case <-time.After(100 * time.Millisecond):
	}
	if err := held1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b := <-big
	s := <-smallc // 3 + 1 = 4 fits
	if b == nil || s == nil {
		t.FailNow()
	}
	if s.Token() <= b.Token() {
		t.Fatalf("tokens out of acquisition order: %d then %d", b.Token(), s.Token())
	}
	_ = b.Release(ctx)
	_ = s.Release(ctx)
}

// TestLimitStoredWhileInUse: the limit is stored by the first acquisition,
// checked by every other one and at open while in use, and deleted with
// the last permit, after which another limit is accepted.
func TestLimitStoredWhileInUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	two := open(t, name, 2)
	if got := stored(t, name); got != "" {
		t.Fatalf("limit stored by opening: %q, want none", got)
	}
	l, err := two.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored(t, name); got != "2" {
		t.Fatalf("limit stored while in use: %q, want 2", got)
	}
	if _, err := session(t).Semaphore(ctx, name, 3); !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("open with limit 3 while in use with 2: got %v, want ErrLimitMismatch", err)
	}
	cs, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	three, err := semaphore.New(cs, name, 3) // no check at open
	if err != nil {
		t.Fatal(err)
	}
	for what, acquire := range map[string]func(context.Context) (distsync.Lease, error){
		"Acquire": three.Acquire, "TryAcquire": three.TryAcquire,
	} {
		if _, err := acquire(ctx); !errors.Is(err, distsync.ErrLimitMismatch) {
			t.Fatalf("%s with limit 3 while in use with 2: got %v, want ErrLimitMismatch", what, err)
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, name); got != "" {
		t.Fatalf("limit left after the last release: %q", got)
	}
	l3, err := three.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("limit 3 on the idle semaphore: %v", err)
	}
	if got := stored(t, name); got != "3" {
		t.Fatalf("limit stored: %q, want 3", got)
	}
	_ = l3.Release(ctx)
	if got := stored(t, name); got != "" {
		t.Fatalf("limit left after the last release: %q", got)
	}
}

// TestStaleLimitReplaced: a limit left by holders that expired (no key
// under the semaphore) does not bind the next user.
func TestStaleLimitReplaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	if _, err := etcd.Client(t).Put(ctx, semaphore.LimitKey(name), "7"); err != nil {
		t.Fatal(err)
	}
	sem := open(t, name, 2)
	l, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire over a stale limit: %v", err)
	}
	if got := stored(t, name); got != "2" {
		t.Fatalf("limit stored: %q, want 2", got)
	}
	_ = l.Release(ctx)
}

// TestSetLimit: SetLimit replaces the stored limit while in use (held
// permits are kept), fails other values' acquisitions with the old limit,
// waiting ones included, and stores nothing on an idle semaphore.
func TestSetLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	a := open(t, name, 1)
	held, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, name, 1)
	waiting := make(chan error, 1)
	go func() {
		l, err := b.Acquire(ctx)
		if err == nil {
			_ = l.Release(ctx)
		}
		waiting <- err
	}()
	waitCount(t, name, 2)
	if err := a.SetLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if a.Limit() != 2 || stored(t, name) != "2" {
		t.Fatalf("after SetLimit(2): Limit %d, stored %q", a.Limit(), stored(t, name))
	}
	if err := <-waiting; !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("waiting Acquire with the old limit: got %v, want ErrLimitMismatch", err)
	}
	if held.Err() != nil {
		t.Fatalf("held permit after SetLimit: %v", held.Err())
	}
	second, err := a.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("second permit of the new limit 2: %v", err)
	}
	if err := b.SetLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("third permit of 2: got %v, want ErrWouldBlock", err)
	}
	_ = held.Release(ctx)
	_ = second.Release(ctx)
	if err := a.SetLimit(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, name); got != "" || a.Limit() != 5 {
		t.Fatalf("SetLimit on an idle semaphore: stored %q, Limit %d; want none and 5", got, a.Limit())
	}
}

// TestCloseDeletesIdleLimit: Close revokes the Session's permits, and
// deletes the limit of the semaphore it leaves idle.
func TestCloseDeletesIdleLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := t.Name()
	s := session(t)
	sem, err := s.Semaphore(ctx, name, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sem.AcquireN(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, name); got != "" {
		t.Fatalf("limit after Close: %q, want none", got)
	}
}

func waitCount(t *testing.T, name string, n int64) {
	t.Helper()
	c := etcd.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The holders and waiters: not the limit key "name/\x00limit".
		resp, err := c.Get(context.Background(), name+"/\x01", clientv3.WithRange(clientv3.GetPrefixRangeEnd(name+"/")), clientv3.WithCountOnly())
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys under %q", n, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
