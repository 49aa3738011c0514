package integration

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/semaphore"
)

// TestEtcdSemaphoreLeaderStop stops the etcd leader while 12 clients churn
// on a semaphore with limit 3: the limit is never exceeded by live leases,
// and acquisitions go on after the fault and after the restart.
func TestEtcdSemaphoreLeaderStop(t *testing.T) {
	cl := testserver.NewCluster(t, 3)
	const limit, clients = 3, 12
	name := "fault-semaphore"
	ctx, cancel := context.WithCancel(context.Background())
	var (
		counter  = holdCounter{limit: limit}
		acquired atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	for range clients {
		client := cl.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *semaphore.Semaphore
			defer func() {
				if s != nil {
					_ = s.Close()
				}
			}()
			for ctx.Err() == nil {
				if s == nil {
					var err error
					if s, err = semaphore.NewWithClient(ctx, client, name, limit, semaphore.WithTTL(5*time.Second)); err != nil {
						failures.Add(1)
						s = nil
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				actx, acancel := context.WithTimeout(ctx, 10*time.Second)
				l, err := s.Acquire(actx)
				acancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						failures.Add(1)
					}
					if errors.Is(err, distsync.ErrClosed) || errors.Is(err, distsync.ErrLost) {
						_ = s.Close()
						s = nil
					}
					continue
				}
				acquired.Add(1)
				if l.Err() == nil {
					counter.hold(2 * time.Millisecond)
				}
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = l.Release(rctx)
				rcancel()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	progress := func(n int64, what string) {
		t.Helper()
		want := acquired.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for acquired.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no progress (%d acquisitions, want %d)", what, acquired.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	progress(30, "before the fault")
	leader := cl.WaitLeader(t)
	cl.Stop(t, leader)
	progress(50, "with the leader stopped")
	cl.Restart(t, leader)
	progress(50, "after the restart")
	cancel()
	wg.Wait()
	t.Logf("acquisitions %d, most holders at once %d, failed acquisitions %d", acquired.Load(), counter.max.Load(), failures.Load())
	if n := counter.over.Load(); n != 0 {
		t.Fatalf("more than %d live holders %d times (max %d)", limit, n, counter.max.Load())
	}
	if counter.max.Load() < 2 {
		t.Fatalf("never more than %d holder: the permits were not shared", counter.max.Load())
	}
}
