package integration

import (
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

func zkElection(t *testing.T, s *zksync.Session, name string) *zksync.Election {
	t.Helper()
	e, err := zksync.NewElection(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// zkElectionBackend adapts the ZooKeeper Election to the conformance suite.
// Every Election gets a session of its own. ZooKeeper keeps no history of
// changes (nothing to compact), and its watches fire once, so its
// observers may coalesce short-lived states (observeCoalesces).
func zkElectionBackend() electionBackend {
	return electionBackend{
		newElection: func(t *testing.T, name string) distsync.Election {
			return zkElection(t, zkSession(t), name)
		},
		newCuttableElection: func(t *testing.T, name string) (distsync.Election, func(), func()) {
			p := newTCPProxy(t, zkServer.Addr())
			return zkElection(t, zkSessionTo(t, p.Addr()), name), p.Cut, p.Heal
		},
		endSession: func(t *testing.T, e distsync.Election) {
			zkExpire(t, e.(*zksync.Election).Session().SessionID())
		},
		keys:             zkKeys,
		observeCoalesces: true,
	}
}

func TestZooKeeperElectionConformance(t *testing.T) {
	testElectionConformance(t, zkElectionBackend())
}
