package integration

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestEtcdElectionConcurrencyCampaignAfterSessionDied replays, on etcd's own
// concurrency.Election, the case our NoLeadershipAfterSessionDied check
// covers: a waiting candidate's session is revoked, then the leader
// resigns. etcd's Campaign returns nil (leadership) although the candidate's
// key is gone (etcd issue #11051); the conformance suite shows that ours
// fails with ErrLost instead. If this test fails, etcd fixed the issue and
// the README's comparison must change.
func TestEtcdElectionConcurrencyCampaignAfterSessionDied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	newSession := func() *concurrency.Session {
		s, err := concurrency.NewSession(etcdServer.Client(t), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	leader := concurrency.NewElection(newSession(), name)
	if err := leader.Campaign(ctx, "leader"); err != nil {
		t.Fatal(err)
	}
	ds := newSession()
	doomed := concurrency.NewElection(ds, name)
	errc := make(chan error, 1)
	go func() { errc <- doomed.Campaign(ctx, "doomed") }()
	waitEtcdKeys(t, etcdServer.Client(t), name, 2)
	if _, err := etcdServer.Client(t).Revoke(ctx, ds.Lease()); err != nil {
		t.Fatal(err)
	}
	waitEtcdKeys(t, etcdServer.Client(t), name, 1)
	if err := leader.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	resp, gerr := etcdServer.Client(t).Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if gerr != nil {
		t.Fatal(gerr)
	}
	t.Logf("concurrency.Election.Campaign after its session was revoked: err=%v, candidate keys left: %d", err, resp.Count)
	if err != nil {
		t.Fatalf("concurrency.Election.Campaign returned %v: etcd no longer reports leadership after the session died", err)
	}
}
