// Package etcdcluster runs a multi-member etcd cluster inside a test
// process, for the fault tests: members can be stopped, restarted, isolated
// from each other and blackholed from their clients.
package etcdcluster

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

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/framework/integration"
)

// leaderTimeout bounds how long WaitLeader and Restart wait for the cluster
// to agree on a leader. Elections take a few 100ms election timeouts; the
// rest is margin for -race on a loaded machine.
const leaderTimeout = 30 * time.Second

// Cluster is a multi-member etcd cluster for fault tests, built on etcd's own
// integration framework: all members run inside the test process and talk
// over unix sockets in the test's temporary directory. Members tick every
// 10ms with a 100ms election timeout, so a lost leader is replaced within a
// few hundred milliseconds.
//
// Each member's client traffic passes through a bridge, a proxy the test can
// blackhole to cut that member's clients off ([Cluster.Blackhole]); raft
// traffic between members can be cut separately ([Cluster.Isolate]).
//
// Members are numbered 0 to Size()-1. The client methods and Endpoints are
// safe for concurrent use; the fault methods (Stop, Restart, Isolate, Heal,
// Blackhole, Unblackhole, WaitLeader) must be called from the test goroutine
// of tb, one at a time.
type Cluster struct {
	fw *integration.Cluster

	// Per member, what the test has done to it, so that each fault can be
	// undone and re-applied when a member's server is replaced by Restart.
	stopped    []bool
	isolated   []bool
	blackholed []bool
}

// New starts a cluster of size members, waits until they agree on a
// leader, and terminates it when t's test finishes (after the clients made by
// Client and MemberClient are closed). It fails t if the cluster cannot start.
//
// The framework changes the process's working directory to a temporary one
// for the test, since its unix sockets are named relative to it. So the test
// must not call t.Parallel (it panics if it does), it must not read files by
// relative path (testdata) after NewCluster, and it can start only one
// cluster (subtests share it).
func New(t *testing.T, size int) *Cluster {
	t.Helper()
	if size < 1 {
		t.Fatalf("etcdcluster: cluster size %d, want at least 1", size)
	}
	// t.Chdir makes testing panic if this test, or a parent, runs in
	// parallel, which turns the framework's silent process-wide chdir into
	// a loud rule. The framework then moves into its own temporary
	// directory and back again, inside ours.
	t.Chdir(t.TempDir())
	// The framework's own leak check would compare goroutines before and
	// after this test alone: it would see a package's shared embedded etcd
	// and skip the test. The package-level check of Run covers leaks instead.
	integration.BeforeTest(t, integration.WithoutGoLeakDetection(), integration.WithoutSkipInShort())

	// This follows integration.NewCluster, except that each member's logger
	// is replaced before launch: the framework's sends every member's info
	// lines to the test, which drowns a failing fault test's own output.
	fw := &integration.Cluster{Cfg: &integration.ClusterConfig{Size: size, UseBridge: true}}
	var peers []string
	for range size {
		m := fw.MustNewMember(t)
		m.Logger = testLogger(t).Named(m.Name)
		fw.Members = append(fw.Members, m)
		for _, u := range m.PeerURLs {
			peers = append(peers, m.Name+"="+u.String())
		}
	}
	initial, err := types.NewURLsMap(strings.Join(peers, ","))
	if err != nil {
		t.Fatalf("etcdcluster: initial cluster: %v", err)
	}
	for _, m := range fw.Members {
		m.InitialPeerURLsMap = initial
	}
	fw.Launch(t)
	// Registered after BeforeTest's cleanup, so it runs before the working
	// directory the unix sockets live in is restored.
	t.Cleanup(func() { fw.Terminate(t) })

	c := &Cluster{
		fw:         fw,
		stopped:    make([]bool, size),
		isolated:   make([]bool, size),
		blackholed: make([]bool, size),
	}
	c.WaitLeader(t)
	return c
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.fw.Members) }

// Endpoints returns every member's client endpoint, in member order. They
// are unix socket addresses relative to the test's working directory and go
// through each member's bridge.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.fw.Members))
	for i := range c.fw.Members {
		eps[i] = c.Endpoint(i)
	}
	return eps
}

// Endpoint returns member i's client endpoint (see [Cluster.Endpoints]). It
// stays the same across Stop and Restart.
func (c *Cluster) Endpoint(i int) string { return c.fw.Members[i].GRPCURL }

// Client returns a new client balanced over all members, closed when tb's
// test finishes. It fails tb if the client cannot be created.
func (c *Cluster) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return c.newClient(tb, c.Endpoints())
}

// MemberClient returns a new client that talks to member i only, closed when
// tb's test finishes: the client to use for "a waiter on a member that is
// stopped, isolated or cut off". It fails tb if the client cannot be created.
func (c *Cluster) MemberClient(tb testing.TB, i int) *clientv3.Client {
	tb.Helper()
	return c.newClient(tb, []string{c.Endpoint(i)})
}

func (c *Cluster) newClient(tb testing.TB, endpoints []string) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      testLogger(tb).Named("client"),
	})
	if err != nil {
		tb.Fatalf("etcdcluster: cluster client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the leader that every running, non-isolated
// member currently follows, or -1 while they disagree or have none. It does
// not wait; see [Cluster.WaitLeader].
func (c *Cluster) Leader() int {
	var lead uint64
	for i, m := range c.fw.Members {
		if c.stopped[i] || c.isolated[i] {
			continue
		}
		l := m.Server.Lead()
		if l == 0 || (lead != 0 && l != lead) {
			return -1
		}
		lead = l
	}
	for i, m := range c.fw.Members {
		if !c.stopped[i] && !c.isolated[i] && uint64(m.Server.MemberID()) == lead {
			return i
		}
	}
	return -1
}

// WaitLeader waits until the running, non-isolated members agree on a leader
// that can serve a linearizable read, and returns its index. It fails tb if
// that takes longer than 30s, for instance because too few members run to
// form a quorum.
func (c *Cluster) WaitLeader(tb testing.TB) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	defer cancel()
	for {
		if i := c.Leader(); i >= 0 && c.readThrough(ctx, i) == nil {
			return i
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("etcdcluster: no leader after %v", leaderTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readThrough makes a linearizable read through member i's in-process
// client. It succeeds only once the leader has committed an entry in its
// term, which is what "has a usable leader" means to a client; the
// in-process client sees past a blackholed bridge.
func (c *Cluster) readThrough(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := c.fw.Members[i].ServerClient.Get(ctx, "distsync-testserver-wait-leader")
	return err
}

// Stop stops member i, keeping its data so that Restart brings it back as
// the same member. Its clients' requests fail or wait until it restarts.
// Stopping a stopped member does nothing.
func (c *Cluster) Stop(tb testing.TB, i int) {
	tb.Helper()
	if c.stopped[i] {
		return
	}
	c.fw.Members[i].Stop(tb)
	c.stopped[i] = true
	// Stop closed the bridge; Restart makes a new one that passes traffic.
	c.blackholed[i] = false
}

// Restart starts the stopped member i again with its data, at the same
// endpoint, and waits for it to follow the cluster's leader (unless it is
// isolated). Clients made before the restart
// reconnect by themselves. Restarting a running member does nothing.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	if !c.stopped[i] {
		return
	}
	if err := c.fw.Members[i].Restart(tb); err != nil {
		tb.Fatalf("etcdcluster: restart member %d: %v", i, err)
	}
	c.stopped[i] = false
	// The restarted member has a new server, which knows nothing of the
	// partitions the test made: re-apply them in both directions.
	for j := range c.fw.Members {
		if j != i && (c.isolated[i] || c.isolated[j]) {
			c.cut(i, j, true)
		}
	}
	// An isolated member cannot become ready (that takes a quorum), so
	// there is nothing to wait for.
	if !c.isolated[i] {
		c.WaitLeader(tb)
	}
}

// Isolate cuts member i off from the other members (raft traffic dropped in
// both directions) while its clients still reach it. It loses its leader
// after an election timeout, requests made with clientv3.WithRequireLeader
// on it then fail with rpctypes.ErrNoLeader, and other requests wait; the
// others elect a new leader if they still form a quorum. Isolating an
// isolated member does nothing.
func (c *Cluster) Isolate(tb testing.TB, i int) {
	tb.Helper()
	if c.isolated[i] {
		return
	}
	c.isolated[i] = true
	for j := range c.fw.Members {
		if j != i {
			c.cut(i, j, true)
		}
	}
	tb.Logf("etcdcluster: member %d isolated", i)
}

// Heal undoes Isolate: member i exchanges raft traffic with the others again
// and catches up. It does not wait; call WaitLeader to wait for the members
// to agree again. Healing a member that is not isolated does nothing.
func (c *Cluster) Heal(tb testing.TB, i int) {
	tb.Helper()
	if !c.isolated[i] {
		return
	}
	c.isolated[i] = false
	for j := range c.fw.Members {
		if j != i && !c.isolated[j] {
			c.cut(i, j, false)
		}
	}
	tb.Logf("etcdcluster: member %d healed", i)
}

// cut drops (or restores) raft messages between members i and j, on the
// side of each that is running; a stopped member's side is applied when it
// restarts.
func (c *Cluster) cut(i, j int, drop bool) {
	mi, mj := c.fw.Members[i], c.fw.Members[j]
	for _, p := range [][2]*integration.Member{{mi, mj}, {mj, mi}} {
		from, to := p[0], p[1]
		if c.stopped[c.index(from)] {
			continue
		}
		if drop {
			from.Server.CutPeer(to.Server.MemberID())
		} else {
			from.Server.MendPeer(to.Server.MemberID())
		}
	}
}

func (c *Cluster) index(m *integration.Member) int {
	for i, mm := range c.fw.Members {
		if mm == m {
			return i
		}
	}
	panic(fmt.Sprintf("etcdcluster: member %s not in cluster", m.Name))
}

// Blackhole cuts member i's clients off from it: from the moment Blackhole
// returns, nothing a client sends through the member's endpoint reaches it
// and nothing comes back, while the member stays in the cluster. Open
// connections are reset, because the bridge would otherwise still pass the
// next message each way on them. So a request a client sends before it
// notices the reset fails at once with codes.Unavailable (a non-idempotent
// one is not retried); after that the client redials into silence, its
// requests fail only at their context's deadline, and its leases expire on
// the server. Blackholing a blackholed or stopped member does nothing.
func (c *Cluster) Blackhole(tb testing.TB, i int) {
	tb.Helper()
	if c.blackholed[i] || c.stopped[i] {
		return
	}
	b := c.fw.Members[i].Bridge()
	b.Blackhole()
	b.DropConnections()
	c.blackholed[i] = true
	tb.Logf("etcdcluster: member %d blackholed", i)
}

// Unblackhole undoes Blackhole: member i's clients reconnect by themselves.
// Unblackholing a member that is not blackholed does nothing.
func (c *Cluster) Unblackhole(tb testing.TB, i int) {
	tb.Helper()
	if !c.blackholed[i] {
		return
	}
	// Unblackhole also closes the silent connections, so clients redial at
	// once instead of waiting for a keepalive to time out.
	c.fw.Members[i].Bridge().Unblackhole()
	c.blackholed[i] = false
	tb.Logf("etcdcluster: member %d unblackholed", i)
}

// dialTimeout is the DialTimeout of every client this package hands out.
const dialTimeout = 5 * time.Second

// testLogger returns the logger of a member or client owned by tb: errors
// only (testing prints them when the test fails or runs with -v), or the
// level DISTSYNC_TEST_LOG names.
func testLogger(tb testing.TB) *zap.Logger {
	lvl := zapcore.ErrorLevel
	if v := os.Getenv("DISTSYNC_TEST_LOG"); v != "" {
		if l, err := zapcore.ParseLevel(v); err == nil {
			lvl = l
		} else {
			lvl = zapcore.DebugLevel
		}
	}
	return zaptest.NewLogger(tb, zaptest.Level(lvl))
}
