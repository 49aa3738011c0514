package integration

// Failover benchmarks of the etcd Election side by side with etcd's own
// concurrency.Election, in one run against the shared embedded member:
//
//	go test -run '^$' -bench ElectionFailover -benchtime 1x -count 1 ./integration/
//
// A handover is timed from the moment the leader resigns (graceful) or
// its process dies (crash: its client closes without revoking the session
// lease) until the next candidate's Campaign returns. Each iteration takes a
// fixed number of samples (-benchtime 1x runs one) and reports percentiles;
// ns/op is suppressed.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

const (
	// benchGracefulSamples is the number of resignations per iteration
	// of BenchmarkElectionFailover/graceful.
	benchGracefulSamples = 40
	// benchGracefulGapStep spreads how long the successor has been queued
	// when the leader resigns over 0 to 195 ms: etcd serves a watch that
	// started at a past revision from a loop that runs every 100 ms, so a
	// successor that queued less than that before the handover can wait
	// for the loop.
	benchGracefulGapStep = 5 * time.Millisecond

	// benchCrashLanes run at once per implementation in
	// BenchmarkElectionFailover/crash, each benchCrashPerLane crashes in a
	// row on a name of its own, so that 20 crashes of ~2 s each take ~10 s
	// per implementation; both implementations run at the same time.
	benchCrashLanes   = 4
	benchCrashPerLane = 5
	// benchCrashTTL is the session TTL in the crash benchmark: etcd's
	// minimum, the fastest failover etcd allows.
	benchCrashTTL = 2 * time.Second
)

// failoverCandidate is one candidate of the failover benchmark, with a
// client of its own, as a separate process would have.
type failoverCandidate interface {
	campaign(ctx context.Context, value string) error // blocks until leading
	resign(ctx context.Context) error
	crash() // the process dies: its client closes, nothing is revoked
}

type failoverImpl struct {
	name string
	new  func(b *testing.B, name string, ttl time.Duration) failoverCandidate
}

var failoverImpls = []failoverImpl{
	{"distsync", newDistsyncCandidate},
	{"concurrency", newConcurrencyCandidate},
}

// benchClient returns a client of the shared member that the candidate
// owns; it is closed by crash or when b's run ends.
func benchClient(b *testing.B) *clientv3.Client {
	b.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdServer.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

type distsyncCandidate struct {
	cli *clientv3.Client
	e   *election.Election
	l   distsync.Leadership
}

func newDistsyncCandidate(b *testing.B, name string, ttl time.Duration) failoverCandidate {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()
	cli := benchClient(b)
	e, err := election.NewWithClient(ctx, cli, name, election.WithTTL(ttl))
	if err != nil {
		b.Fatal(err)
	}
	// After a crash the revoke fails (the client is closed); the lease
	// has expired by then.
	b.Cleanup(func() { _ = e.Close() })
	return &distsyncCandidate{cli: cli, e: e}
}

func (c *distsyncCandidate) campaign(ctx context.Context, value string) (err error) {
	c.l, err = c.e.Campaign(ctx, []byte(value))
	return err
}

func (c *distsyncCandidate) resign(ctx context.Context) error { return c.l.Release(ctx) }
func (c *distsyncCandidate) crash()                           { c.cli.Close() }

type concurrencyCandidate struct {
	cli *clientv3.Client
	e   *concurrency.Election
}

func newConcurrencyCandidate(b *testing.B, name string, ttl time.Duration) failoverCandidate {
	b.Helper()
	cli := benchClient(b)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ttl/time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return &concurrencyCandidate{cli: cli, e: concurrency.NewElection(s, name)}
}

func (c *concurrencyCandidate) campaign(ctx context.Context, value string) error {
	return c.e.Campaign(ctx, value)
}

func (c *concurrencyCandidate) resign(ctx context.Context) error { return c.e.Resign(ctx) }
func (c *concurrencyCandidate) crash()                           { c.cli.Close() }

// waitQueued waits until name has n candidate keys. Both implementations
// keep their keys under "name/" for the plain names used here.
func waitQueued(ctx context.Context, cli *clientv3.Client, name string, n int64) error {
	for {
		resp, err := cli.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return fmt.Errorf("waiting for %d candidates of %q: %w", n, name, err)
		}
		if resp.Count == n {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// handover makes next campaign, waits until it is queued (and then gap
// more), ends cur's leadership with end and returns the time from the end
// until next leads. It may run outside b's goroutine, so it returns errors
// rather than failing b.
func handover(ctx context.Context, watcher *clientv3.Client, name string, cur, next failoverCandidate, gap time.Duration, end func(failoverCandidate) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, benchTimeout)
	defer cancel()
	led := make(chan error, 1)
	var at time.Time
	go func() {
		err := next.campaign(ctx, "next")
		at = time.Now()
		led <- err
	}()
	if err := waitQueued(ctx, watcher, name, 2); err != nil {
		cancel()
		<-led
		return 0, err
	}
	time.Sleep(gap)
	t0 := time.Now()
	if err := end(cur); err != nil {
		cancel()
		<-led
		return 0, err
	}
	if err := <-led; err != nil {
		return 0, err
	}
	return at.Sub(t0), nil
}

// BenchmarkElectionFailover measures how fast leadership passes on, for
// distsync's Election and etcd's concurrency.Election: after a
// resignation (graceful) and after the leader's process died without
// revoking its session lease (crash, TTL 2 s).
func BenchmarkElectionFailover(b *testing.B) {
	b.Run("graceful", func(b *testing.B) {
		for _, impl := range failoverImpls {
			b.Run(impl.name, func(b *testing.B) { benchGraceful(b, impl) })
		}
	})
	b.Run("crash", benchCrash)
}

// benchGraceful alternates two candidates: the leader resigns while the
// other waits, then campaigns again behind it.
func benchGraceful(b *testing.B, impl failoverImpl) {
	name := benchName("failover-graceful")
	watcher := etcdServer.Client(b)
	cur, next := impl.new(b, name, benchTTL), impl.new(b, name, benchTTL)
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()
	if err := cur.campaign(ctx, "first"); err != nil {
		b.Fatal(err)
	}
	var all, fresh, settled []time.Duration
	for range b.N {
		for i := range benchGracefulSamples {
			gap := time.Duration(i%40) * benchGracefulGapStep
			d, err := handover(b.Context(), watcher, name, cur, next, gap, func(c failoverCandidate) error { return c.resign(ctx) })
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, d)
			if gap < 100*time.Millisecond {
				fresh = append(fresh, d)
			} else {
				settled = append(settled, d)
			}
			cur, next = next, cur
		}
	}
	if err := cur.resign(ctx); err != nil {
		b.Fatal(err)
	}
	for _, s := range [][]time.Duration{all, fresh, settled} {
		slices.Sort(s)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(fresh, 0.99)), "queued<100ms-p99-ms")
	b.ReportMetric(ms(percentile(settled, 0.99)), "queued>=100ms-p99-ms")
	b.Logf("%d resignations: p50 %v, p99 %v, max %v; successor queued <100 ms before: p50 %v p99 %v; >=100 ms: p50 %v p99 %v",
		len(all), percentile(all, 0.5).Round(time.Microsecond), percentile(all, 0.99).Round(time.Microsecond), all[len(all)-1].Round(time.Microsecond),
		percentile(fresh, 0.5).Round(time.Microsecond), percentile(fresh, 0.99).Round(time.Microsecond),
		percentile(settled, 0.5).Round(time.Microsecond), percentile(settled, 0.99).Round(time.Microsecond))
}

// benchCrash runs benchCrashLanes lanes per implementation, all at once:
// in each, a successor queues behind the leader, the leader's client is
// closed, and the successor becomes the next leader to crash.
func benchCrash(b *testing.B) {
	samples := make(map[string][]time.Duration)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make(chan error, len(failoverImpls)*benchCrashLanes)
	)
	start := time.Now()
	for range b.N {
		for _, impl := range failoverImpls {
			for range benchCrashLanes {
				name := benchName("failover-crash-" + impl.name)
				// Candidates are made here, in b's goroutine, which
				// may fail b.
				cands := make([]failoverCandidate, benchCrashPerLane+1)
				for i := range cands {
					cands[i] = impl.new(b, name, benchCrashTTL)
				}
				watcher := etcdServer.Client(b)
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(b.Context(), 2*benchTimeout)
					defer cancel()
					if err := cands[0].campaign(ctx, "first"); err != nil {
						errs <- err
						return
					}
					for i := range benchCrashPerLane {
						d, err := handover(b.Context(), watcher, name, cands[i], cands[i+1], 0, func(c failoverCandidate) error {
							c.crash()
							return nil
						})
						if err != nil {
							errs <- fmt.Errorf("%s crash %d: %w", impl.name, i, err)
							return
						}
						mu.Lock()
						samples[impl.name] = append(samples[impl.name], d)
						mu.Unlock()
					}
					if err := cands[benchCrashPerLane].resign(ctx); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	for _, impl := range failoverImpls {
		s := samples[impl.name]
		slices.Sort(s)
		b.ReportMetric(ms(percentile(s, 0.50)), impl.name+"-p50-ms")
		b.ReportMetric(ms(percentile(s, 0.99)), impl.name+"-p99-ms")
		b.Logf("%s: %d crashes (TTL %v): p50 %v, p99 %v, min %v, max %v", impl.name, len(s), benchCrashTTL,
			percentile(s, 0.5).Round(time.Millisecond), percentile(s, 0.99).Round(time.Millisecond),
			s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	}
	b.Logf("all crash lanes took %v", time.Since(start).Round(time.Millisecond))
}
