package rwmutex_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
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
}

// TestSameSessionWriterExcludesReader: a write lease excludes a read lease
// taken through the same RWMutex and Session.
func TestSameSessionWriterExcludesReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rw, err := s.RWMutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
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
	if _, ok := r.(*rwmutex.Lease); !ok {
		t.Fatalf("TryRLock returned %T, want *rwmutex.Lease", r)
	}
	_ = r.Release(ctx)
}
