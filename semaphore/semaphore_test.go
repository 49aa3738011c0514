package semaphore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func open(t *testing.T, name string, limit int64) *semaphore.Semaphore {
	t.Helper()
	s, err := semaphore.NewWithClient(context.Background(), etcd.Client(t), name, limit, semaphore.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		// The limit is configuration that outlives sessions: leave none.
		_ = semaphore.DeleteLimit(context.Background(), etcd.Client(t), name)
	})
	return s
}

func TestNewRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	s, err := concurrency.NewSession(etcd.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, limit := range []int64{0, -1} {
		if _, err := semaphore.New(s, "ok", limit); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("New(limit %d): got %v, want ErrInvalidConfig", limit, err)
		}
		if _, err := semaphore.NewWithClient(ctx, etcd.Client(t), "ok", limit); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("NewWithClient(limit %d): got %v, want ErrInvalidConfig", limit, err)
		}
	}
	if _, err := semaphore.New(s, "", 1); !errors.Is(err, distsync.ErrInvalidName) {
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
	go func() {
		l, err := open(t, name, 4).AcquireN(ctx, 3)
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

func TestSetLimit(t *testing.T) {
	ctx := context.Background()
	name := t.Name()
	old := open(t, name, 2)
	if err := semaphore.SetLimit(ctx, etcd.Client(t), name, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Acquire(ctx); !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("Acquire with the old limit: got %v, want ErrLimitMismatch", err)
	}
	l, err := open(t, name, 5).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release(ctx)
	if err := semaphore.DeleteLimit(ctx, etcd.Client(t), name); err != nil {
		t.Fatal(err)
	}
	if _, err := semaphore.NewWithClient(ctx, etcd.Client(t), name, 7); err != nil {
		t.Fatalf("open after DeleteLimit with a new limit: %v", err)
	}
	if err := semaphore.SetLimit(ctx, etcd.Client(t), name, 0); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Fatalf("SetLimit(0): got %v, want ErrInvalidConfig", err)
	}
}

func waitCount(t *testing.T, name string, n int64) {
	t.Helper()
	c := etcd.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(context.Background(), name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys under %q", n, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
