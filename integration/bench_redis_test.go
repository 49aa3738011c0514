package integration

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"
	dsredis "github.com/distsync/distsync/fallback/redis"
	"github.com/go-redsync/redsync/v4"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
)

// The Redis benchmarks compare distsync's Redis Mutex with redsync,
// bsm/redislock and rueidislock in one run against one redis-server:
//
//	go test -run '^$' -bench Redis -benchtime 1x -count 1 ./integration/
//
// Each iteration is a fixed amount of work (a batch of lock cycles, a 5 s
// contended round), so -benchtime 1x gives stable numbers.

// redisLocker is one client's lock on a name, for the side-by-side
// benchmarks: lock returns the unlock function.
type redisLocker func(ctx context.Context) (unlock func(), err error)

// redisImpls are the Redis locks compared: distsync, redsync with its
// default options, bsm/redislock with LinearBackoff(10ms) (its default is
// not to retry), and rueidislock with its defaults (3 keys, majority 2,
// woken by client-side-caching invalidations) but a 10 s validity like the
// others' TTL. rueidislock uses its own client (rueidis), so the go-redis
// request counter does not see it: only its server commands are counted.
var redisImpls = []struct {
	name    string
	counted bool // its requests go through the go-redis client c
	open    func(b *testing.B, c *goredis.Client, name string) redisLocker
}{
	{"distsync", true, func(b *testing.B, c *goredis.Client, name string) redisLocker {
		m, err := dsredis.NewMutexWithClient(context.Background(), c, name, dsredis.WithTTL(10*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = m.Close() })
		return func(ctx context.Context) (func(), error) {
			l, err := m.Lock(ctx)
			if err != nil {
				return nil, err
			}
			return func() { _ = l.Release(ctx) }, nil
		}
	}},
	{"redsync", true, func(b *testing.B, c *goredis.Client, name string) redisLocker {
		mu := redsync.New(rsgoredis.NewPool(c)).NewMutex(name)
		return func(ctx context.Context) (func(), error) {
			if err := mu.LockContext(ctx); err != nil {
				return nil, err
			}
			return func() { _, _ = mu.UnlockContext(ctx) }, nil
		}
	}},
	{"redislock", true, func(b *testing.B, c *goredis.Client, name string) redisLocker {
		locker := redislock.New(c)
		opts := &redislock.Options{RetryStrategy: redislock.LinearBackoff(10 * time.Millisecond)}
		return func(ctx context.Context) (func(), error) {
			l, err := locker.Obtain(ctx, name, 10*time.Second, opts)
			if err != nil {
				return nil, err
			}
			return func() { _ = l.Release(ctx) }, nil
		}
	}},
	{"rueidislock", false, func(b *testing.B, _ *goredis.Client, name string) redisLocker {
		locker, err := rueidislock.NewLocker(rueidislock.LockerOption{
			ClientOption: rueidis.ClientOption{InitAddress: []string{redisServer.Addr()}},
			KeyValidity:  10 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(locker.Close)
		return func(ctx context.Context) (func(), error) {
			_, cancel, err := locker.WithContext(ctx, name)
			if err != nil {
				return nil, err
			}
			return cancel, nil
		}
	}},
}

// redisUncontendedBatch is the number of lock+unlock cycles per iteration
// of BenchmarkRedisUncontended: enough for a stable ns/op under
// -benchtime 1x.
const redisUncontendedBatch = 300

// redisCommands returns the server's total_commands_processed.
func redisCommands(b *testing.B, c *goredis.Client) int64 {
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO")
	return 0
}

// redisCPU returns the CPU time the server has used (user plus system).
func redisCPU(b *testing.B, c *goredis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sec float64
	for line := range strings.SplitSeq(info, "\r\n") {
		for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				x, _ := strconv.ParseFloat(v, 64)
				sec += x
			}
		}
	}
	return time.Duration(sec * float64(time.Second))
}

// requestCounter is a go-redis hook counting the requests a client sends
// (a script call is one; pub/sub traffic is not counted).
type requestCounter struct{ n atomic.Int64 }

func (h *requestCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *requestCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *requestCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

var benchRequests requestCounter

func newBenchRedisClient(b *testing.B) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr(), ContextTimeoutEnabled: true})
	c.AddHook(&benchRequests)
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkRedisUncontended is one client locking and unlocking a free
// lock, redisUncontendedBatch times per iteration: ns/op is one lock plus
// one unlock, reqs/op the client's requests (a script call is one) and
// srvcmds/op the commands the server processed (each command a Lua script
// calls counts).
func BenchmarkRedisUncontended(b *testing.B) {
	for _, impl := range redisImpls {
		b.Run(impl.name, func(b *testing.B) {
			c := newBenchRedisClient(b)
			lock := impl.open(b, c, b.Name())
			ctx := context.Background()
			cycle := func() {
				unlock, err := lock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				unlock()
			}
			// Warm up: scripts loaded, connections open.
			for range 5 {
				cycle()
			}
			before, reqs := redisCommands(b, c), benchRequests.n.Load()
			b.ResetTimer()
			for range b.N {
				for range redisUncontendedBatch {
					cycle()
				}
			}
			b.StopTimer()
			ops := float64(b.N * redisUncontendedBatch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/op")
			if impl.counted {
				// reqs was read after the first INFO, and this runs before
				// the second: no INFO is in the difference.
				b.ReportMetric(float64(benchRequests.n.Load()-reqs)/ops, "reqs/op")
			}
			// The server counts the first INFO, not the second.
			b.ReportMetric(float64(redisCommands(b, c)-before-1)/ops, "srvcmds/op")
		})
	}
}

// BenchmarkRedisContended runs 8 clients, each with its own connection
// pool, contending for one lock with a 1 ms critical section for a fixed
// 5 s (run with -benchtime 1x): acquisitions per second, the wait for the
// lock (p50, p99, max), the spread of per-client counts (max/min), client
// requests per acquisition (reqs/acq: a script call is one), commands the
// server processed per acquisition (srvcmds/acq: Redis counts each command
// a Lua script calls) and the server's CPU time per acquisition
// (srvcpu-us/acq).
func BenchmarkRedisContended(b *testing.B) {
	const clients, hold, run = 8, time.Millisecond, 5 * time.Second
	for _, impl := range redisImpls {
		b.Run(impl.name, func(b *testing.B) {
			var (
				mu     sync.Mutex
				waits  []time.Duration
				counts = make([]int, clients)
				wg     sync.WaitGroup
				fails  int
			)
			locks := make([]redisLocker, clients)
			for i := range locks {
				locks[i] = impl.open(b, newBenchRedisClient(b), b.Name())
			}
			stats := newBenchRedisClient(b)
			cpu := redisCPU(b, stats)
			before, reqs := redisCommands(b, stats), benchRequests.n.Load()
			ctx, cancel := context.WithTimeout(context.Background(), run)
			defer cancel()
			start := time.Now()
			for i, lock := range locks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						t0 := time.Now()
						unlock, err := lock(ctx)
						if err != nil {
							if ctx.Err() == nil {
								mu.Lock()
								fails++
								mu.Unlock()
							}
							continue
						}
						w := time.Since(t0)
						time.Sleep(hold)
						unlock()
						mu.Lock()
						waits = append(waits, w)
						counts[i]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			n := len(waits)
			if n == 0 {
				b.Fatal("no acquisition")
			}
			slices.Sort(waits)
			pct := func(p float64) time.Duration { return waits[min(n-1, int(p*float64(n)))] }
			minC, maxC := slices.Min(counts), slices.Max(counts)
			cmds := float64(redisCommands(b, stats)-before-1) / float64(n)
			rq := float64(benchRequests.n.Load()-reqs-1) / float64(n)
			cpuPerAcq := (redisCPU(b, stats) - cpu) / time.Duration(n)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "acq/s")
			b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(waits[n-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(maxC)/float64(max(minC, 1)), "skew")
			if impl.counted {
				b.ReportMetric(rq, "reqs/acq")
			}
			b.ReportMetric(cmds, "srvcmds/acq")
			b.ReportMetric(float64(cpuPerAcq.Nanoseconds())/1000, "srvcpu-us/acq")
			b.Log(fmt.Sprintf("%s: %d acquisitions, per client %v, %d failed lock calls", impl.name, n, counts, fails))
		})
	}
}
