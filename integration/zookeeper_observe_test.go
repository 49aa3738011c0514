package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zookeeper"
)

// TestZooKeeperCampaignFollowsSessionExpiry ends, from outside, the
// session of a Campaign that waits behind a leader: the Campaign must
// return ErrLost at once, as the session's leases end, not when
// go-zookeeper has reconnected (it pauses a second before each reconnect
// to a single server, and the expiry is seen only at the second one).
func TestZooKeeperCampaignFollowsSessionExpiry(t *testing.T) {
	const rounds = 20
	bg := context.Background()
	name := fmt.Sprintf("campaign-expiry-%d", time.Now().UnixNano())
	leader, err := zookeeper.NewElection(zkSession(t), name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := leader.Campaign(bg, []byte("leader"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(bg)
	var worst time.Duration
	for round := range rounds {
		ws := zkSession(t)
		e, err := zookeeper.NewElection(ws, name)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		errc := make(chan error, 1)
		go func() {
			l, err := e.Campaign(ctx, []byte("waiter"))
			if err == nil {
				_ = l.Release(bg)
				err = errors.New("led while another leads")
			}
			errc <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for len(zkKeys(t, name)) < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the waiting candidate's node did not appear within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		zkExpire(t, ws.SessionID())
		var got error
		select {
		case got = <-errc:
		case <-time.After(10 * time.Second):
			t.Fatal("Campaign not returned 10s after its session expired")
		}
		took := time.Since(start)
		cancel()
		worst = max(worst, took)
		t.Logf("round %d: Campaign returned %v after the expiry began: %v", round, took, got)
		if !errors.Is(got, distsync.ErrLost) {
			t.Errorf("round %d: Campaign returned %v, want ErrLost", round, got)
		}
		if took > 300*time.Millisecond {
			t.Errorf("round %d: Campaign returned %v after its session expired, want within 300ms", round, took)
		}
		if k := zkKeys(t, name); len(k) != 1 {
			t.Errorf("round %d: candidates %q after the expiry, want the leader's alone", round, k)
		}
		_ = ws.Close()
	}
	t.Logf("worst return after the expiry over %d rounds: %v", rounds, worst)
}
