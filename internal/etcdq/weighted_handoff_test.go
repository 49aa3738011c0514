package etcdq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// watchCounting counts the watch creations sent on a client stream.
type watchCounting struct {
	grpc.ClientStream
	n *atomic.Int64
}

func (s watchCounting) SendMsg(m any) error {
	if wr, ok := m.(*etcdserverpb.WatchRequest); ok && wr.GetCreateRequest() != nil {
		s.n.Add(1)
	}
	return s.ClientStream.SendMsg(m)
}

// semaphoreQueue returns the semaphore queue of name on a caller's session
// over a client of its own, and a counter of the watches that client
// creates.
func semaphoreQueue(t *testing.T, name string) (*Queue, *atomic.Int64) {
	t.Helper()
	watches := new(atomic.Int64)
	count := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return watchCounting{ClientStream: s, n: watches}, nil
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(count)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	q := queueOn(t, c, 10, name)
	q.limited = true
	return q, watches
}

// TestSemaphoreWaiterHandsWatch: a semaphore waiter that acquires hands its
// prefix watch to its Lease, which sets up no watch of its own key, goes on
// holding while other holders' keys go, and ends as lost when its own key
// is deleted.
func TestSemaphoreWaiterHandsWatch(t *testing.T) {
	ctx := context.Background()
	limit := func() int64 { return 2 }
	acquire := func(q *Queue) (*Lease, error) {
		return q.AcquireWeighted(ctx, q.src.Recorder().Target(telemetry.Semaphore, "", q.name), limit, 1)
	}
	qa, _ := semaphoreQueue(t, t.Name())
	qb, watchesB := semaphoreQueue(t, t.Name())
	qc, _ := semaphoreQueue(t, t.Name())
	a, err := acquire(qa)
	if err != nil {
		t.Fatal(err)
	}
	c, err := acquire(qc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)
	rb := make(chan acquired, 1)
	go func() {
		l, err := acquire(qb)
		rb <- acquired{l, err}
	}()
	waitKeys(t, qa, 4) // a, c, b and the limit
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b := await(t, rb, "the waiter")
	if b.err != nil {
		t.Fatal(b.err)
	}
	defer b.l.Release(ctx)
	before := watchesB.Load()
	time.Sleep(5 * maxFollowDelay) // past any delayed watch of the key
	if got := watchesB.Load(); got != before {
		t.Errorf("the Lease of a waiter created %d watches, want none (it has the waiter's prefix watch)", got-before)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.l.Done():
		t.Fatalf("another holder's release ended the waiter's Lease: %v", b.l.Err())
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := qa.c.Delete(ctx, b.l.Key()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.l.Done():
		if !errors.Is(b.l.Err(), distsync.ErrLost) {
			t.Fatalf("Err after its key was deleted = %v, want ErrLost", b.l.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Lease did not end after its key was deleted")
	}
}
