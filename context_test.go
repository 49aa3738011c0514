package distsync_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/distsync/distsync"
)

// testLease is a Lease held in memory, for the helpers that only use the
// interface.
type testLease struct {
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newTestLease() *testLease { return &testLease{done: make(chan struct{})} }

func (l *testLease) Token() uint64         { return 1 }
func (l *testLease) Done() <-chan struct{} { return l.done }
func (l *testLease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
func (l *testLease) end(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.done)
	})
}
func (l *testLease) Release(context.Context) error { l.end(distsync.ErrReleased); return nil }

func TestLeaseContextEndsWithTheLease(t *testing.T) {
	l := newTestLease()
	ctx, cancel := distsync.LeaseContext(context.Background(), l)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatalf("context done while the lease is held: %v", ctx.Err())
	}
	l.end(distsync.Errorf(distsync.ErrLost, nil, "session expired"))
	<-ctx.Done()
	if cause := context.Cause(ctx); !errors.Is(cause, distsync.ErrLost) {
		t.Fatalf("cause %v, want ErrLost", cause)
	}
}

func TestLeaseContextEndsWithParent(t *testing.T) {
	l := newTestLease()
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := distsync.LeaseContext(parent, l)
	defer cancel()
	cancelParent()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("got %v, want Canceled", ctx.Err())
	}
	if l.Err() != nil {
		t.Fatal("the lease ended with the context")
	}
}

func TestLeaseContextCancelIsIdempotent(t *testing.T) {
	ctx, cancel := distsync.LeaseContext(context.Background(), newTestLease())
	cancel()
	cancel()
	if ctx.Err() == nil {
		t.Fatal("context not done after cancel")
	}
}

func TestLeaseContextNilLease(t *testing.T) {
	ctx, cancel := distsync.LeaseContext(context.Background(), nil)
	defer cancel()
	if ctx.Err() == nil || !errors.Is(context.Cause(ctx), distsync.ErrInvalidConfig) {
		t.Fatalf("nil lease: err %v cause %v, want a cancelled context with ErrInvalidConfig", ctx.Err(), context.Cause(ctx))
	}
}
