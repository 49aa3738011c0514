package integration

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
)

// TestEtcdSemaphoreLeaderStop stops the etcd leader while 12 clients churn
// on a semaphore with limit 3: the limit is never exceeded by live leases,
// and acquisitions go on after the fault and after the restart.
func TestEtcdSemaphoreLeaderStop(t *testing.T) {
	cl := distsynctest.EtcdCluster(t, 3)
	const limit, clients = 3, 12
	open := sessionOpener(func(ctx context.Context, s *etcdsync.Session) (func(context.Context) (distsync.Lease, error), error) {
		sem, err := s.Semaphore(ctx, "fault-semaphore", limit)
		if err != nil {
			return nil, err
		}
		return sem.Acquire, nil
	})
	counter := holdCounter{limit: limit}
	ctx, cancel := context.WithCancel(context.Background())
	var c churn
	wg := c.run(ctx, t, cl, clients, open, func(l distsync.Lease) {
		if l.Err() == nil {
			counter.hold(2 * time.Millisecond)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	c.progress(t, 30, "before the fault")
	leader := cl.WaitLeader(t)
	cl.Stop(t, leader)
	c.progress(t, 50, "with the leader stopped")
	cl.Restart(t, leader)
	c.progress(t, 50, "after the restart")
	cancel()
	wg.Wait()
	t.Logf("acquisitions %d, most holders at once %d, failed acquisitions %d (last: %v)",
		c.acquired.Load(), counter.max.Load(), c.failures.Load(), c.lastErr.Load())
	if n := counter.over.Load(); n != 0 {
		t.Fatalf("more than %d live holders %d times (max %d)", limit, n, counter.max.Load())
	}
	if counter.max.Load() < 2 {
		t.Fatalf("never more than %d holder: the permits were not shared", counter.max.Load())
	}
}
