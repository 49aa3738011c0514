package integration

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/rwmutex"
	"github.com/distsync/distsync/semaphore"
)

const (
	// semLimit, semClients and semHold are the semaphore benchmark's
	// setting: the ideal throughput is semLimit/semHold = 400/s.
	semLimit   = 4
	semClients = 16
	semHold    = 10 * time.Millisecond
	// rwReaders readers and one writer loop on an RWMutex, each holding
	// its lease for rwHold.
	rwReaders = 8
	rwHold    = 2 * time.Millisecond
)

// loopRound runs one acquire/hold/release loop per acquire function for
// benchRound and returns the waits (Lock call to lease) of each loop. It
// fails b if check reports a violation.
func loopRound(b *testing.B, acquires []func(context.Context) (distsync.Lease, error), hold func(i int)) [][]time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), benchRound+benchTimeout)
	defer cancel()
	waits := make([][]time.Duration, len(acquires))
	errs := make([]error, len(acquires))
	end := time.Now().Add(benchRound)
	var wg sync.WaitGroup
	for i, acquire := range acquires {
		wg.Go(func() {
			for time.Now().Before(end) {
				t0 := time.Now()
				l, err := acquire(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				if time.Now().Before(end) {
					waits[i] = append(waits[i], time.Since(t0))
				}
				hold(i)
				if err := l.Release(ctx); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return waits
}

// BenchmarkSemaphore measures semClients clients sharing a semaphore of
// limit semLimit, each holding a permit for semHold: acquisitions per
// second against the ideal limit/hold, and the wait for a permit. It fails
// if more than the limit ever hold at once.
func BenchmarkSemaphore(b *testing.B) {
	name := benchName("semaphore")
	acquires := make([]func(context.Context) (distsync.Lease, error), semClients)
	for i := range acquires {
		s, err := semaphore.NewWithClient(b.Context(), etcdServer.Client(b), name, semLimit, semaphore.WithTTL(benchTTL))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		acquires[i] = s.Acquire
	}
	counter := holdCounter{limit: semLimit}
	var all []time.Duration
	for range b.N {
		for _, w := range loopRound(b, acquires, func(int) { counter.hold(semHold) }) {
			all = append(all, w...)
		}
	}
	if n := counter.over.Load(); n != 0 {
		b.Fatalf("more than %d holders %d times", semLimit, n)
	}
	slices.Sort(all)
	acq := float64(len(all)) / (time.Duration(b.N) * benchRound).Seconds()
	ideal := float64(semLimit) / semHold.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(acq, "acq/s")
	b.ReportMetric(acq/ideal, "of-ideal")
	b.ReportMetric(ms(percentile(all, 0.50)), "wait-p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "wait-p99-ms")
	b.Logf("%d acquisitions, %.0f/s = %.1f%% of the ideal %.0f/s (limit %d / %v hold)", len(all), acq, 100*acq/ideal, ideal, semLimit, semHold)
}

// BenchmarkRWMutex measures rwReaders readers and one writer looping on an
// RWMutex, each holding its lease for rwHold: read and write acquisitions
// per second and the writer's wait, which arrival order keeps bounded
// however busy the readers are. It fails if the writer ever overlaps anyone.
func BenchmarkRWMutex(b *testing.B) {
	name := benchName("rwmutex")
	acquires := make([]func(context.Context) (distsync.Lease, error), rwReaders+1)
	for i := range acquires {
		rw, err := rwmutex.NewWithClient(b.Context(), etcdServer.Client(b), name, rwmutex.WithTTL(benchTTL))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = rw.Close() })
		acquires[i] = rw.RLock
		if i == rwReaders {
			acquires[i] = rw.Lock
		}
	}
	var d rwDetector
	var reads, writes []time.Duration
	var rounds atomic.Int64
	for range b.N {
		waits := loopRound(b, acquires, func(i int) {
			if i == rwReaders {
				d.write(rwHold)
			} else {
				d.read(rwHold)
			}
		})
		for _, w := range waits[:rwReaders] {
			reads = append(reads, w...)
		}
		writes = append(writes, waits[rwReaders]...)
		rounds.Add(1)
	}
	if n := d.violations.Load(); n != 0 {
		b.Fatalf("writer overlapped others %d times", n)
	}
	slices.Sort(writes)
	window := (time.Duration(rounds.Load()) * benchRound).Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(len(reads))/window, "reads/s")
	b.ReportMetric(float64(len(writes))/window, "writes/s")
	b.ReportMetric(ms(percentile(writes, 0.50)), "write-wait-p50-ms")
	b.ReportMetric(ms(percentile(writes, 0.99)), "write-wait-p99-ms")
}
