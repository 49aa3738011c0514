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
)

// redisLocker is one client's lock on a name, for the side-by-side
// benchmarks: lock returns the unlock function.
type redisLocker func(ctx context.Context) (unlock func(), err error)

// redisImpls are the Redis locks compared: distsync, redsync with its
// default options, and bsm/redislock with LinearBackoff(10ms) (its
// default is not to retry).
var redisImpls = []struct {
	name string
	open func(b *testing.B, c *goredis.Client, name string) redisLocker
}{
	{"distsync", func(b *testing.B, c *goredis.Client, name string) redisLocker {
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
	{"redsync", func(b *testing.B, c *goredis.Client, name string) redisLocker {
		mu := redsync.New(rsgoredis.NewPool(c)).NewMutex(name)
		return func(ctx context.Context) (func(), error) {
			if err := mu.LockContext(ctx); err != nil {
				return nil, err
			}
			return func() { _, _ = mu.UnlockContext(ctx) }, nil
		}
	}},
	{"redislock", func(b *testing.B, c *goredis.Client, name string) redisLocker {
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
}

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
// lock: ns/op is one lock plus one unlock.
func BenchmarkRedisUncontended(b *testing.B) {
	for _, impl := range redisImpls {
		b.Run(impl.name, func(b *testing.B) {
			c := newBenchRedisClient(b)
			lock := impl.open(b, c, b.Name())
			ctx := context.Background()
			// Warm up: scripts loaded, connections open.
			if unlock, err := lock(ctx); err == nil {
				unlock()
			}
			before, reqs := redisCommands(b, c), benchRequests.n.Load()
			b.ResetTimer()
			for range b.N {
				unlock, err := lock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				unlock()
			}
			b.StopTimer()
			b.ReportMetric(float64(benchRequests.n.Load()-reqs-1)/float64(b.N), "reqs/op")
			b.ReportMetric(float64(redisCommands(b, c)-before-1)/float64(b.N), "srvcmds/op")
		})
	}
}

// BenchmarkRedisContended runs 8 clients, each with its own connection
// pool, contending for one lock with a 1 ms critical section for a fixed
// 5 s (run with -benchtime 1x): acquisitions per second, the wait for the
// lock (p50, p99, max), the spread of per-client counts (max/min), client
// requests per acquisition (reqs/acq: a script call is one) and commands
// the server processed per acquisition (srvcmds/acq: Redis counts each
// command a Lua script calls).
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
			b.ReportMetric(float64(n)/elapsed.Seconds(), "acq/s")
			b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(waits[n-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(maxC)/float64(max(minC, 1)), "skew")
			b.ReportMetric(rq, "reqs/acq")
			b.ReportMetric(cmds, "srvcmds/acq")
			b.Log(fmt.Sprintf("%s: %d acquisitions, per client %v, %d failed lock calls", impl.name, n, counts, fails))
		})
	}
}
