package testserver_test

import (
	"testing"
	"time"

	"github.com/distsync/distsync/internal/testserver"
)

// TestZooKeeperEnsembleFaults starts a 3-member ensemble, kills its leader
// (another member must lead) and restarts it (it must rejoin as a
// follower), twice, so that a member with a lower ID than the leader
// rejoins too; then it partitions a follower: it must stop serving while
// the other two keep a leader, and serve again once healed.
func TestZooKeeperEnsembleFaults(t *testing.T) {
	start := time.Now()
	e, err := testserver.StartZooKeeperEnsemble(3)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	t.Logf("ensemble serving after %v", time.Since(start))
	leader, err := e.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}

	var next int
	for range 2 {
		start = time.Now()
		e.Kill(leader)
		next, err = e.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if next == leader {
			t.Fatalf("killed member %d still leads", leader)
		}
		t.Logf("leader %d killed: member %d leads after %v", leader, next, time.Since(start))
		start = time.Now()
		if err := e.Restart(leader); err != nil {
			t.Fatal(err)
		}
		if mode := e.Mode(leader); mode != "follower" {
			t.Fatalf("restarted member %d: mode %q, want follower", leader, mode)
		}
		t.Logf("member %d restarted: follower after %v", leader, time.Since(start))
		leader = next
	}

	follower := (next + 1) % 3
	start = time.Now()
	e.Partition(follower)
	deadline := time.Now().Add(20 * time.Second)
	for e.Mode(follower) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("partitioned member %d still serves as %q", follower, e.Mode(follower))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("member %d partitioned: stopped serving after %v", follower, time.Since(start))
	if l, err := e.WaitLeader(10 * time.Second); err != nil || l == follower {
		t.Fatalf("majority side: leader %d, %v", l, err)
	}
	// It stays out while partitioned.
	time.Sleep(time.Second)
	if mode := e.Mode(follower); mode != "" {
		t.Fatalf("partitioned member %d serves as %q", follower, mode)
	}
	start = time.Now()
	e.Heal(follower)
	deadline = time.Now().Add(30 * time.Second)
	for e.Mode(follower) != "follower" {
		if time.Now().After(deadline) {
			t.Fatalf("healed member %d: mode %q, want follower", follower, e.Mode(follower))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("member %d healed: follower again after %v", follower, time.Since(start))
}
