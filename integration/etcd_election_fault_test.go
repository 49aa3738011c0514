package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
)

// electionOpener opens the etcd Election called name on a 5 s Session;
// its acquire call is Campaign.
func electionOpener(name string) opener {
	return sessionOpener(func(_ context.Context, s *etcdsync.Session) (func(context.Context) (distsync.Lease, error), error) {
		e, err := s.Election(name)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte("candidate"))
			if err != nil {
				return nil, err
			}
			return l, nil
		}, nil
	})
}

// termChecker follows the leaderships of an election under churn, and the
// observers of it, by term: never two leaders that have not been told of a
// loss, terms growing in the order leaderships began, and no observer that
// sees a newer term while an older leader still leads or that sees terms go
// back.
type termChecker struct {
	mu         sync.Mutex
	live       map[uint64]distsync.Lease // began and not yet resigning
	lastTerm   uint64
	violations []string
}

func (tc *termChecker) begin(l distsync.Lease) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for t, other := range tc.live {
		if other.Err() == nil && l.Err() == nil {
			tc.violations = append(tc.violations, fmt.Sprintf("term %d began while term %d still led", l.Token(), t))
		}
	}
	if l.Token() <= tc.lastTerm {
		tc.violations = append(tc.violations, fmt.Sprintf("term %d began after term %d", l.Token(), tc.lastTerm))
	}
	tc.lastTerm = l.Token()
	tc.live[l.Token()] = l
}

func (tc *termChecker) end(l distsync.Lease) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	delete(tc.live, l.Token())
}

// observe follows one observer until ctx ends.
func (tc *termChecker) observe(ctx context.Context, e distsync.Election) {
	var last uint64
	for l := range e.Observe(ctx) {
		if l.None {
			continue
		}
		tc.mu.Lock()
		for t, other := range tc.live {
			if t < l.Term && other.Err() == nil {
				tc.violations = append(tc.violations, fmt.Sprintf("an observer saw term %d while term %d still led", l.Term, t))
			}
		}
		if l.Term < last {
			tc.violations = append(tc.violations, fmt.Sprintf("an observer saw term %d after term %d", l.Term, last))
		}
		tc.mu.Unlock()
		last = l.Term
	}
}

// TestEtcdElectionLeaderStop stops the etcd leader of a 3-member cluster,
// twice, while 6 candidates churn (campaign, lead for a fenced write and a
// proclamation, resign) and 2 observers watch: the election keeps
// electing, there is never more than one leader, and terms only grow.
func TestEtcdElectionLeaderStop(t *testing.T) {
	const name = "fault-election-leader-stop"
	cl := distsynctest.EtcdCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		c     churn
		terms = termChecker{live: map[uint64]distsync.Lease{}}
	)
	wg := c.run(ctx, t, cl, 6, electionOpener(name), func(l distsync.Lease) {
		terms.begin(l)
		c.exclusive(l)
		if err := l.(distsync.Leadership).Proclaim(ctx, []byte("leading")); err != nil {
			c.fail(err)
		}
		terms.end(l)
	})
	for range 2 {
		e, err := etcdSessionWith(t, cl.Client(t), 5*time.Second).Election(name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { terms.observe(ctx, e) })
	}
	defer func() { cancel(); wg.Wait() }()

	c.progress(t, 20, "before the fault")
	for range 2 {
		leader := cl.WaitLeader(t)
		cl.Stop(t, leader)
		t.Logf("stopped etcd leader %d", leader)
		c.progress(t, 20, "with the etcd leader stopped")
		cl.Restart(t, leader)
		c.progress(t, 20, "after the restart")
	}
	cancel()
	wg.Wait()
	c.check(t)
	for _, v := range terms.violations {
		t.Error(v)
	}
}
