package distsynctest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// Leader returns the index of the leader that every running, non-isolated
// member follows now, or -1 while they disagree or have none. It does not
// wait; see [EtcdServer.WaitLeader].
func (e *EtcdServer) Leader() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var lead uint64
	for _, m := range e.members {
		if m.srv == nil || m.isolated {
			continue
		}
		l := m.srv.Server.Lead()
		if l == 0 || (lead != 0 && l != lead) {
			return -1
		}
		lead = l
	}
	for i, m := range e.members {
		if m.srv != nil && !m.isolated && uint64(m.srv.Server.MemberID()) == lead {
			return i
		}
	}
	return -1
}

// WaitLeader waits until the running, non-isolated members agree on a
// leader that serves a linearizable read, and returns its index. It fails
// t after 30 s, for instance when too few members run to form a quorum.
func (e *EtcdServer) WaitLeader(t testing.TB) int {
	t.Helper()
	if err := e.waitLeader(); err != nil {
		t.Fatal(err)
	}
	return e.Leader()
}

func (e *EtcdServer) waitLeader() error {
	ctx, cancel := context.WithTimeout(context.Background(), etcdStartTimeout)
	defer cancel()
	for {
		if i := e.Leader(); i >= 0 && e.readThrough(ctx, i) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("distsynctest: etcd members agree on no leader after %v", etcdStartTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readThrough makes a linearizable read on member i, past its proxy. It
// succeeds once the leader has committed an entry in its term: what "has a
// usable leader" means to a client.
func (e *EtcdServer) readThrough(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := newEtcdClient([]string{e.members[i].client.Host})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Get(ctx, "distsynctest-wait-leader")
	return err
}

// Stop stops member i, keeping its data, so that Restart brings it back as
// the same member. Its clients' requests fail or wait until then. Stopping
// a stopped member does nothing.
func (e *EtcdServer) Stop(t testing.TB, i int) {
	t.Helper()
	e.stopServer(e.members[i])
	t.Logf("distsynctest: etcd member %d stopped", i)
}

// Restart starts the stopped member i again from its data, at the same
// addresses, and waits until it follows the cluster's leader (unless it is
// isolated). Clients made before reconnect by themselves. Restarting a
// running member does nothing.
func (e *EtcdServer) Restart(t testing.TB, i int) {
	t.Helper()
	m := e.members[i]
	e.mu.Lock()
	running := m.srv != nil
	e.mu.Unlock()
	if running {
		return
	}
	var initial []string
	for _, o := range e.members {
		initial = append(initial, o.name+"="+o.peerFront.String())
	}
	// An isolated member cannot become ready (that takes a quorum): do not
	// wait for it.
	if err := e.launch(m, strings.Join(initial, ","), !m.isolated); err != nil {
		t.Fatal(err)
	}
	// The new server knows nothing of the partitions the test made:
	// apply them again, both ways.
	for j := range e.members {
		if j != i && (m.isolated || e.members[j].isolated) {
			e.cut(i, j, true)
		}
	}
	t.Logf("distsynctest: etcd member %d restarted", i)
	if !m.isolated && len(e.members) > 1 {
		e.WaitLeader(t)
	}
}

// Isolate cuts member i off from the other members (their raft messages
// dropped both ways) while its clients still reach it. It loses its leader
// after an election timeout: requests made with clientv3.WithRequireLeader
// then fail, and others wait. The other members elect a new leader if they
// still form a quorum. Isolating an isolated member does nothing.
func (e *EtcdServer) Isolate(t testing.TB, i int) {
	t.Helper()
	if e.members[i].isolated {
		return
	}
	e.members[i].isolated = true
	for j := range e.members {
		if j != i {
			e.cut(i, j, true)
		}
	}
	t.Logf("distsynctest: etcd member %d isolated", i)
}

// Heal undoes Isolate: member i exchanges raft messages with the others
// again and catches up. It does not wait; WaitLeader does.
func (e *EtcdServer) Heal(t testing.TB, i int) {
	t.Helper()
	if !e.members[i].isolated {
		return
	}
	e.members[i].isolated = false
	for j := range e.members {
		if j != i && !e.members[j].isolated {
			e.cut(i, j, false)
		}
	}
	t.Logf("distsynctest: etcd member %d healed", i)
}

// cut drops (or restores) raft messages between members i and j, on the
// side of each that runs; a stopped member's side is applied when it
// restarts.
func (e *EtcdServer) cut(i, j int, drop bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	mi, mj := e.members[i], e.members[j]
	for _, p := range [][2]*etcdMember{{mi, mj}, {mj, mi}} {
		from, to := p[0], p[1]
		if from.srv == nil {
			continue
		}
		if drop {
			from.srv.Server.CutPeer(to.id)
		} else {
			from.srv.Server.MendPeer(to.id)
		}
	}
}

// Blackhole cuts member i's clients off from it while it stays in the
// cluster. Open connections are reset at once; the clients then redial into
// silence: their requests fail only at their contexts' deadlines, and
// their leases expire on the server. Blackholing a blackholed member does
// nothing.
func (e *EtcdServer) Blackhole(t testing.TB, i int) {
	t.Helper()
	m := e.members[i]
	if m.blackholed {
		return
	}
	m.blackholed = true
	m.proxy.Blackhole()
	m.proxy.Reset()
	t.Logf("distsynctest: etcd member %d blackholed", i)
}

// Unblackhole undoes Blackhole: member i's clients reconnect at once.
func (e *EtcdServer) Unblackhole(t testing.TB, i int) {
	t.Helper()
	m := e.members[i]
	if !m.blackholed {
		return
	}
	m.blackholed = false
	m.proxy.Heal()
	m.proxy.Reset()
	t.Logf("distsynctest: etcd member %d unblackholed", i)
}

// testLogger returns the logger of a member owned by t: errors only
// (printed when the test fails or runs with -v), or the level
// DISTSYNC_TEST_LOG names.
func testLogger(t testing.TB) *zap.Logger {
	lvl := zapcore.ErrorLevel
	if v := os.Getenv("DISTSYNC_TEST_LOG"); v != "" {
		if l, err := zapcore.ParseLevel(v); err == nil {
			lvl = l
		} else {
			lvl = zapcore.DebugLevel
		}
	}
	return zaptest.NewLogger(t, zaptest.Level(lvl))
}
