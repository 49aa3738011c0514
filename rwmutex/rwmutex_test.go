package rwmutex_test

import (
	"context"
	"errors"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/rwmutex"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func TestNewRejectsBadInput(t *testing.T) {
	s, err := concurrency.NewSession(etcd.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := rwmutex.New(s, ""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("New(empty name): got %v, want ErrInvalidName", err)
	}
	if _, err := rwmutex.New(nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("New(nil session): got %v, want ErrInvalidConfig", err)
	}
	if _, err := rwmutex.NewWithClient(context.Background(), etcd.Client(t), "ok", rwmutex.WithTTL(rwmutex.MinTTL/2)); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("WithTTL below MinTTL: got %v, want ErrInvalidConfig", err)
	}
}

// TestSameSessionWriterExcludesReader: a write lease excludes a read lease
// taken through the same RWMutex and session.
func TestSameSessionWriterExcludesReader(t *testing.T) {
	ctx := context.Background()
	rw, err := rwmutex.NewWithClient(ctx, etcd.Client(t), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	w, err := rw.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.TryRLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryRLock through the writer's own RWMutex: got %v, want ErrWouldBlock", err)
	}
	_ = w.Release(ctx)
	r, err := rw.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Release(ctx)
}
