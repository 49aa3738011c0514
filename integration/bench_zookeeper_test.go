package integration

// Benchmarks of the ZooKeeper Mutex side by side with go-zookeeper's own
// zk.Lock, in one run against the shared ZooKeeper server:
//
//	go test -run '^$' -bench ZooKeeper -benchtime 1x -count 1 ./integration/

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync/fallback/zookeeper"
	"github.com/go-zookeeper/zk"
)

// zkRequests counts the requests benchmark clients send to ZooKeeper, read
// off the frames they write: every request but pings (xid -2) and the
// connect request that opens each connection.
var zkRequests atomic.Int64

// zkCountingDialer dials addr through a connection that counts requests.
func zkCountingDialer(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingZKConn{Conn: c}, nil
}

// countingZKConn counts the request frames written through it.
// go-zookeeper writes each request with one Write: length, xid, opcode, body.
type countingZKConn struct {
	net.Conn
	connected bool // the connect request (the first frame) was written
}

func (c *countingZKConn) Write(p []byte) (int, error) {
	switch {
	case !c.connected:
		c.connected = true
	case len(p) >= 12 && int32(binary.BigEndian.Uint32(p[4:8])) != -2:
		zkRequests.Add(1)
	}
	return c.Conn.Write(p)
}

// zkImpls are the ZooKeeper locks compared, ours first. Each open dials a
// connection of its own (with the request counter) and returns a lockFunc
// on name; the connection is closed when b's run ends. zk.Lock is not safe
// for concurrent use: each lockFunc is called by one goroutine at a time.
var zkImpls = []struct {
	name string
	open func(b *testing.B, name string) lockFunc
}{
	{"distsync", func(b *testing.B, name string) lockFunc {
		s := zkSessionTo(b, zkServer.Addr(), zookeeper.WithSessionTimeout(benchTTL), zookeeper.WithDialer(zkCountingDialer))
		m, err := zookeeper.NewMutex(s, name)
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context) (func(context.Context) error, error) {
			l, err := m.Lock(ctx)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
	}},
	{"zk.Lock", func(b *testing.B, name string) lockFunc {
		c, _, err := zk.Connect([]string{zkServer.Addr()}, benchTTL, zk.WithLogInfo(false), zk.WithLogger(quietZK{}), zk.WithDialer(zkCountingDialer))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		p, err := zookeeper.NodePath(zookeeper.DefaultRoot, name)
		if err != nil {
			b.Fatal(err)
		}
		l := zk.NewLock(c, p, zk.WorldACL(zk.PermAll))
		// zk.Lock takes no context; ctx bounds the benchmark loop only.
		return func(context.Context) (func(context.Context) error, error) {
			if err := l.Lock(); err != nil {
				return nil, err
			}
			return func(context.Context) error { return l.Unlock() }, nil
		}
	}},
}

// zkWarmed is set once the ZooKeeper server's JVM has been warmed up.
var zkWarmed atomic.Bool

// zkWarmUp runs zkWarmUpCycles lock cycles of every implementation, once
// per process, before anything is measured: the JVM's JIT takes a few
// hundred requests to settle, and without this whichever implementation
// runs first pays for it (by up to 2x here).
func zkWarmUp(b *testing.B) {
	const zkWarmUpCycles = 500
	if zkWarmed.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()
	for _, impl := range zkImpls {
		lock := impl.open(b, benchName("zk-warmup"))
		for range zkWarmUpCycles {
			unlock, err := lock(ctx)
			if err != nil {
				b.Fatalf("warm-up: %v", err)
			}
			if err := unlock(ctx); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
	}
}

// BenchmarkZooKeeperUncontended measures one client locking and releasing
// a lock nobody else wants: ns/op is one Lock+Release, reqs/op the
// ZooKeeper requests it sent.
func BenchmarkZooKeeperUncontended(b *testing.B) {
	zkWarmUp(b)
	for _, impl := range zkImpls {
		b.Run(impl.name, func(b *testing.B) {
			lock := impl.open(b, benchName("zk-uncontended"))
			ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
			defer cancel()
			cycle := func() {
				unlock, err := lock(ctx)
				if err != nil {
					b.Fatalf("lock: %v", err)
				}
				if err := unlock(ctx); err != nil {
					b.Fatalf("unlock: %v", err)
				}
			}
			for range 20 { // the parent nodes, this connection
				cycle()
			}
			reqs := zkRequests.Load()
			b.ResetTimer()
			for range b.N {
				for range benchUncontendedBatch {
					cycle()
				}
			}
			b.StopTimer()
			ops := float64(b.N * benchUncontendedBatch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/op")
			b.ReportMetric(float64(zkRequests.Load()-reqs)/ops, "reqs/op")
		})
	}
}

// BenchmarkZooKeeperContended runs benchClients clients, each with its own
// connection, taking turns on one lock that each holds for benchHold, for
// benchRound per iteration (run with -benchtime 1x): acquisitions per
// second, the wait from calling Lock to holding it (p50, p99), fairness
// (the least served client's count over the most served one's) and
// requests per acquisition. It fails if two clients are ever inside the
// critical section at once. The ratio sub-benchmark reports distsync's
// figures over zk.Lock's from the same run.
func BenchmarkZooKeeperContended(b *testing.B) {
	zkWarmUp(b)
	acq := map[string]float64{}
	p50 := map[string]float64{}
	for _, impl := range zkImpls {
		b.Run(impl.name, func(b *testing.B) {
			name := benchName("zk-contended")
			locks := make([]lockFunc, benchClients)
			for i := range locks {
				locks[i] = impl.open(b, name)
			}
			r := contended{counts: make([]int, benchClients)}
			reqs := zkRequests.Load()
			for range b.N {
				contendRound(b, locks, &r)
			}
			slices.Sort(r.waits)
			acq[impl.name] = r.acqPerSec()
			p50[impl.name] = ms(percentile(r.waits, 0.50))
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(r.acqPerSec(), "acq/s")
			b.ReportMetric(p50[impl.name], "wait-p50-ms")
			b.ReportMetric(ms(percentile(r.waits, 0.99)), "wait-p99-ms")
			b.ReportMetric(float64(slices.Min(r.counts))/float64(slices.Max(r.counts)), "fairness")
			b.ReportMetric(float64(zkRequests.Load()-reqs)/float64(r.total), "reqs/acq")
			b.Logf("%d acquisitions in %v (+%d after it), per client %v, max wait %v",
				len(r.waits), r.window, r.total-len(r.waits), r.counts, r.waits[len(r.waits)-1].Round(time.Microsecond))
		})
	}
	b.Run("ratio", func(b *testing.B) {
		ours, theirs := acq["distsync"], acq["zk.Lock"]
		if ours == 0 || theirs == 0 {
			b.Fatal("needs both distsync and zk.Lock in the same run (-bench ZooKeeperContended)")
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ours/theirs, "acq/s-ratio")
		b.ReportMetric(p50["zk.Lock"]/p50["distsync"], "wait-p50-ratio")
		if b.N == 1 {
			b.Logf("distsync/zk.Lock: %.2fx the acquisitions per second (%.0f vs %.0f), median wait %.2f ms vs %.2f ms",
				ours/theirs, ours, theirs, p50["distsync"], p50["zk.Lock"])
		}
	})
}
