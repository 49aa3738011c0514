package integration

// Benchmarks of the etcd Mutex side by side with etcd's own
// concurrency.Mutex, in one run against the shared embedded member, so that
// every number has its reference next to it:
//
//	go test -run '^$' -bench . -benchtime 1x -count 1 ./integration/
//
// The contended and loss benchmarks measure a fixed amount of work per
// iteration (a 3 s round, 20 losses) because a single lock cycle says
// nothing about queueing; -benchtime 1x runs each once. They suppress ns/op,
// which would only be the length of the round, and report their own
// metrics. The uncontended benchmark runs a batch of lock cycles per
// iteration for the same reason and reports ns/op per cycle.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/mutex"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

const (
	// benchUncontendedBatch is the number of Lock+Release cycles per
	// iteration of BenchmarkMutexUncontended: enough for a stable ns/op
	// under -benchtime 1x.
	benchUncontendedBatch = 200

	// benchClients is the number of clients contending in
	// BenchmarkMutexContended, each with its own connection and session.
	benchClients = 8
	// benchHold is the critical section of BenchmarkMutexContended.
	benchHold = time.Millisecond
	// benchRound is how long one iteration of BenchmarkMutexContended
	// contends. At etcd concurrency.Mutex's ~80 acquisitions/s it still
	// gives a few hundred waits to take percentiles of.
	benchRound = 3 * time.Second

	// benchLossSamples is the number of losses per iteration of
	// BenchmarkLossDetection.
	benchLossSamples = 20

	// benchTTL is the session TTL of every benchmark session. It only
	// matters if a client stalls; nothing here waits for an expiry.
	benchTTL = 10 * time.Second
	// benchTimeout bounds any single blocking call, so that a stuck
	// benchmark fails instead of hanging the run.
	benchTimeout = 30 * time.Second
)

// benchSeq makes lock names unique across sub-benchmarks and the repeated
// runs of one benchmark: the shared member keeps the keys of earlier runs
// until their sessions are revoked.
var benchSeq atomic.Int64

func benchName(kind string) string {
	return fmt.Sprintf("bench-%s-%d", kind, benchSeq.Add(1))
}

// rpcCounter counts the requests clients send, through gRPC interceptors:
// every unary RPC (Txn, Range, DeleteRange, LeaseGrant, ...) and every watch
// created on a watch stream. Watches are counted apart because a created
// watch costs the server more than a unary read and is the thing each
// implementation spends differently. The session's lease keep-alive stream
// is not counted: its traffic is per session and time, not per lock.
type rpcCounter struct {
	unary   atomic.Int64
	watches atomic.Int64

	mu       sync.Mutex
	byMethod map[string]int64 // unary RPCs per method, for the log line
}

func (c *rpcCounter) unaryInterceptor(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.unary.Add(1)
	c.mu.Lock()
	if c.byMethod == nil {
		c.byMethod = make(map[string]int64)
	}
	c.byMethod[method[strings.LastIndexByte(method, '/')+1:]]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *rpcCounter) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc,
	cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &countingStream{ClientStream: s, c: c}, nil
}

// countingStream counts the watch-create requests sent on a stream. Only
// the watch stream carries *pb.WatchRequest, so the keep-alive stream passes
// through uncounted.
type countingStream struct {
	grpc.ClientStream
	c *rpcCounter
}

func (s *countingStream) SendMsg(m any) error {
	if wr, ok := m.(*pb.WatchRequest); ok && wr.GetCreateRequest() != nil {
		s.c.watches.Add(1)
	}
	return s.ClientStream.SendMsg(m)
}

// reset zeroes the counts, after setup and before what is measured.
func (c *rpcCounter) reset() {
	c.unary.Store(0)
	c.watches.Store(0)
	c.mu.Lock()
	clear(c.byMethod)
	c.mu.Unlock()
}

// methods returns the unary counts per method, sorted by name, as
// "Range=3 Txn=2", to tell where an unexpected count comes from.
func (c *rpcCounter) methods() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(c.byMethod)) {
		parts = append(parts, fmt.Sprintf("%s=%d", m, c.byMethod[m]))
	}
	return strings.Join(parts, " ")
}

// countingClient returns a new client of the shared member whose requests
// c counts, closed when b's run ends.
func countingClient(b *testing.B, c *rpcCounter) *clientv3.Client {
	b.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   etcdServer.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(c.unaryInterceptor),
			grpc.WithChainStreamInterceptor(c.streamInterceptor),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

// lockFunc takes the benchmarked lock once and returns the function that
// releases it.
type lockFunc func(ctx context.Context) (unlock func(context.Context) error, err error)

// distsyncLocker returns a lockFunc on a distsync Mutex with a session of
// its own on cli; the session ends when b's run ends.
func distsyncLocker(b *testing.B, cli *clientv3.Client, name string) lockFunc {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()
	m, err := mutex.NewWithClient(ctx, cli, name, mutex.WithTTL(benchTTL))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := m.Close(); err != nil {
			b.Errorf("close distsync mutex: %v", err)
		}
	})
	return func(ctx context.Context) (func(context.Context) error, error) {
		l, err := m.Lock(ctx)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}
}

// concurrencyLocker returns a lockFunc on etcd's concurrency.Mutex with a
// session of its own on cli; the session ends when b's run ends. The
// concurrency.Mutex is not safe for concurrent use, so each lockFunc must be
// called by one goroutine at a time.
func concurrencyLocker(b *testing.B, cli *clientv3.Client, name string) lockFunc {
	b.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(benchTTL/time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("close concurrency session: %v", err)
		}
	})
	m := concurrency.NewMutex(s, name)
	return func(ctx context.Context) (func(context.Context) error, error) {
		if err := m.Lock(ctx); err != nil {
			return nil, err
		}
		return m.Unlock, nil
	}
}

// benchImpls are the implementations compared, ours first.
var benchImpls = []struct {
	name   string
	locker func(b *testing.B, cli *clientv3.Client, name string) lockFunc
}{
	{"distsync", distsyncLocker},
	{"concurrency", concurrencyLocker},
}

// BenchmarkMutexUncontended measures one client locking and releasing a
// lock nobody else wants: the latency floor and the requests one cycle
// costs. An op is one Lock+Release.
func BenchmarkMutexUncontended(b *testing.B) {
	for _, impl := range benchImpls {
		b.Run(impl.name, func(b *testing.B) {
			var rc rpcCounter
			lock := impl.locker(b, countingClient(b, &rc), benchName("uncontended"))
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
			// Warm up: open the watch stream and the connection's
			// windows, so the first cycle's setup is not measured.
			for range 5 {
				cycle()
			}
			rc.reset()
			b.ResetTimer()
			for range b.N {
				for range benchUncontendedBatch {
					cycle()
				}
			}
			b.StopTimer()
			ops := float64(b.N * benchUncontendedBatch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/op")
			b.ReportMetric(float64(rc.unary.Load())/ops, "rpcs/op")
			b.ReportMetric(float64(rc.watches.Load())/ops, "watches/op")
			b.Logf("unary RPCs over %.0f cycles: %s", ops, rc.methods())
		})
	}
}

// contended is the outcome of BenchmarkMutexContended for one
// implementation, summed over its iterations.
type contended struct {
	window  time.Duration   // total time acquisitions were counted in
	waits   []time.Duration // Lock call to return, for acquisitions in the window
	counts  []int           // acquisitions in the window, per client
	total   int             // all acquisitions, the ones after the window too
	rpcs    int64           // unary RPCs for all acquisitions
	watches int64           // watches created for all acquisitions
}

func (r *contended) acqPerSec() float64 { return float64(len(r.waits)) / r.window.Seconds() }

// BenchmarkMutexContended measures benchClients clients, each with its own
// connection and session, taking turns on one lock that each holds for
// benchHold: throughput, the wait from calling Lock to holding the lock,
// fairness (the least served client's acquisitions over the most served
// one's), and requests per acquisition. It fails if two clients are ever
// inside the critical section at once. The ratio sub-benchmark reports
// distsync's throughput over concurrency.Mutex's from the same run.
func BenchmarkMutexContended(b *testing.B) {
	acq := make(map[string]float64)
	p50 := make(map[string]float64)
	for _, impl := range benchImpls {
		b.Run(impl.name, func(b *testing.B) {
			var rc rpcCounter
			name := benchName("contended")
			locks := make([]lockFunc, benchClients)
			for i := range locks {
				locks[i] = impl.locker(b, countingClient(b, &rc), name)
			}
			r := contended{counts: make([]int, benchClients)}
			rc.reset()
			for range b.N {
				contendRound(b, locks, &r)
			}
			r.rpcs, r.watches = rc.unary.Load(), rc.watches.Load()

			slices.Sort(r.waits)
			acq[impl.name] = r.acqPerSec()
			p50[impl.name] = ms(percentile(r.waits, 0.50))
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(r.acqPerSec(), "acq/s")
			b.ReportMetric(p50[impl.name], "wait-p50-ms")
			b.ReportMetric(ms(percentile(r.waits, 0.99)), "wait-p99-ms")
			b.ReportMetric(float64(slices.Min(r.counts))/float64(slices.Max(r.counts)), "fairness")
			b.ReportMetric(float64(r.rpcs)/float64(r.total), "rpcs/acq")
			b.ReportMetric(float64(r.watches)/float64(r.total), "watches/acq")
			b.Logf("%d acquisitions in %v (+%d after it), per client %v, max wait %v; unary RPCs: %s",
				len(r.waits), r.window, r.total-len(r.waits), r.counts,
				r.waits[len(r.waits)-1].Round(time.Microsecond), rc.methods())
		})
	}
	b.Run("ratio", func(b *testing.B) {
		ours, theirs := acq["distsync"], acq["concurrency"]
		if ours == 0 || theirs == 0 {
			b.Skip("needs both distsync and concurrency in the same run")
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ours/theirs, "acq/s-ratio")
		b.ReportMetric(p50["concurrency"]/p50["distsync"], "wait-p50-ratio")
		if b.N > 1 {
			// Without -benchtime 1x the framework reruns this trivial
			// body with growing b.N; the first run has said it all.
			return
		}
		b.Logf("distsync/concurrency: %.1fx the acquisitions per second (%.0f vs %.0f), 1/%.1f the median wait (%.1f ms vs %.1f ms)",
			ours/theirs, ours, theirs, p50["concurrency"]/p50["distsync"], p50["distsync"], p50["concurrency"])
	})
}

// contendRound runs one benchRound of contention among locks and adds its
// outcome to r. Acquisitions whose Lock returned after the round's end are
// counted in r.total (their requests are in the counts) but not in the
// throughput, waits or fairness, since the queue drains without newcomers.
func contendRound(b *testing.B, locks []lockFunc, r *contended) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), benchRound+benchTimeout)
	defer cancel()

	var (
		inside    atomic.Int32 // clients in the critical section
		violation atomic.Int32 // the most ever seen inside at once, if above 1
		mu        sync.Mutex   // guards what the clients add to r
		errs      = make([]error, len(locks))
		start     = make(chan struct{})
		end       time.Time // set before start is closed, read after
		wg        sync.WaitGroup
	)
	for i, lock := range locks {
		wg.Go(func() {
			<-start
			var waits []time.Duration
			n, extra := 0, 0
			for !time.Now().After(end) {
				t0 := time.Now()
				unlock, err := lock(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("client %d: lock: %w", i, err)
					break
				}
				got := time.Now()
				if in := inside.Add(1); in > 1 {
					violation.Store(in)
				}
				time.Sleep(benchHold)
				inside.Add(-1)
				if err := unlock(ctx); err != nil {
					errs[i] = fmt.Errorf("client %d: unlock: %w", i, err)
					break
				}
				if got.After(end) {
					extra++
				} else {
					waits = append(waits, got.Sub(t0))
					n++
				}
			}
			mu.Lock()
			r.waits = append(r.waits, waits...)
			r.counts[i] += n
			r.total += n + extra
			mu.Unlock()
		})
	}
	end = time.Now().Add(benchRound)
	close(start)
	wg.Wait()
	r.window += benchRound

	if v := violation.Load(); v != 0 {
		b.Fatalf("mutual exclusion violated: %d clients inside the critical section at once", v)
	}
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLossDetection measures how long a held distsync lock takes to
// report its loss when another client revokes the holder's session lease
// (as an expiry would) or deletes the holder's key: from just before the
// Revoke or Delete call until Lease.Done closes. Each iteration takes
// benchLossSamples samples and checks that Err wraps distsync.ErrLost.
func BenchmarkLossDetection(b *testing.B) {
	b.Run("revoke", func(b *testing.B) {
		holder, other := etcdServer.Client(b), etcdServer.Client(b)
		benchLoss(b, func(ctx context.Context) (distsync.Lease, func() error, func()) {
			// Revoking ends the session, so each sample needs a new one.
			m, err := mutex.NewWithClient(ctx, holder, benchName("loss-revoke"), mutex.WithTTL(benchTTL))
			if err != nil {
				b.Fatal(err)
			}
			l, err := m.Lock(ctx)
			if err != nil {
				_ = m.Close()
				b.Fatal(err)
			}
			revoke := func() error {
				_, err := other.Revoke(ctx, m.Session().Lease())
				return err
			}
			// Closing revokes the lease again, which fails: it is gone.
			return l, revoke, func() { _ = m.Close() }
		})
	})
	b.Run("delete", func(b *testing.B) {
		holder, other := etcdServer.Client(b), etcdServer.Client(b)
		ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
		defer cancel()
		m, err := mutex.NewWithClient(ctx, holder, benchName("loss-delete"), mutex.WithTTL(benchTTL))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := m.Close(); err != nil {
				b.Errorf("close distsync mutex: %v", err)
			}
		})
		benchLoss(b, func(ctx context.Context) (distsync.Lease, func() error, func()) {
			l, err := m.Lock(ctx)
			if err != nil {
				b.Fatal(err)
			}
			del := func() error {
				_, err := other.Delete(ctx, l.(*mutex.Lease).Key())
				return err
			}
			// Release after a loss changes nothing (the key is gone)
			// but ends the lease's bookkeeping.
			return l, del, func() { _ = l.Release(ctx) }
		})
	})
}

// benchLoss takes the samples of BenchmarkLossDetection. hold returns a
// held lease, the function that takes it away from outside, and the
// function that cleans up after the sample.
func benchLoss(b *testing.B, hold func(ctx context.Context) (l distsync.Lease, takeAway func() error, cleanup func())) {
	b.Helper()
	var samples []time.Duration
	for range b.N {
		for range benchLossSamples {
			ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
			l, takeAway, cleanup := hold(ctx)
			t0 := time.Now()
			if err := takeAway(); err != nil {
				b.Fatal(err)
			}
			select {
			case <-l.Done():
				samples = append(samples, time.Since(t0))
			case <-ctx.Done():
				b.Fatalf("Done not closed %v after the lock was taken away", time.Since(t0))
			}
			if err := l.Err(); !errors.Is(err, distsync.ErrLost) {
				b.Fatalf("Err after loss = %v, want it to wrap %v", err, distsync.ErrLost)
			}
			cleanup()
			cancel()
		}
	}
	slices.Sort(samples)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(samples, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(samples, 0.99)), "p99-ms")
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
