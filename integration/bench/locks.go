package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// contendClients and contendHold are S2's setting.
const (
	contendClients = 8
	contendHold    = time.Millisecond
)

var s1 = &scenario{
	id:    "S1",
	title: "Uncontended lock + release",
	about: "One client per library locks and releases a lock nobody else wants, over and over: the latency " +
		"floor of one Lock+Release and the requests it costs. The libraries of a backend run in one job, " +
		"taking turns of 20 cycles each (the first of a turn rotating), so that a burst of load from elsewhere on the " +
		"machine falls on all of them alike instead of on whichever ran at the time. Lower is better.",
	headline: metric{"us", "µs per Lock+Release", "%.0f", -1},
	metrics: []metric{
		{"reqs", "requests/op", "%.2f", -1},
	},
	jobs: func(p benchParams) []job {
		backends, groups := byBackend(libs)
		var jobs []job
		for _, b := range backends {
			j := job{backend: b, timeout: time.Duration(len(groups[b])) * time.Minute,
				together: func(rs []*run, es []entry) []result { return uncontended(rs, es, p.uncontendedCycles) }}
			for _, l := range groups[b] {
				j.entries = append(j.entries, entry{name: l.name, ours: l.ours, note: l.note,
					cycle: func(r *run) (func() error, error) { return lockCycle(r, l) }})
			}
			jobs = append(jobs, j)
		}
		return jobs
	},
}

// lockJobs makes one job per backend, with an entry per library of that
// backend, running the function run returns for it.
func lockJobs(label string, timeout time.Duration, run func(l lib) func(r *run) result) []job {
	backends, groups := byBackend(libs)
	var jobs []job
	for _, b := range backends {
		j := job{backend: b, label: label, timeout: timeout}
		for _, l := range groups[b] {
			j.entries = append(j.entries, entry{name: l.name, ours: l.ours, note: l.note, run: run(l)})
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// lockCycle opens one locker of l on a name of its own and returns one
// Lock+Release of it.
func lockCycle(r *run, l lib) (func() error, error) {
	ls, err := l.open(r, nextName("uncontended"), 1)
	if err != nil {
		return nil, err
	}
	return func() error {
		unlock, err := ls[0](r.ctx)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if err := unlock(r.ctx); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
		return nil
	}, nil
}

// s1Turn is how many cycles one library runs before the next takes its
// turn in S1.
const s1Turn = 20

// uncontended runs the entries' Lock+Release cycles in turns of s1Turn
// each, the first of a turn rotating, until each has run cycles of them
// after 10 untimed ones (they open streams and create parent nodes). An
// entry that fails drops out; the others go on.
func uncontended(rs []*run, es []entry, cycles int) []result {
	out := make([]result, len(es))
	steps := make([]func() error, len(es))
	for i, e := range es {
		step, err := e.cycle(rs[i])
		if err != nil {
			out[i] = failed(err)
			continue
		}
		for range 10 {
			if err = step(); err != nil {
				break
			}
		}
		if err != nil {
			out[i] = failed(err)
			continue
		}
		steps[i] = step
		rs[i].reqs.reset()
	}
	took := make([]time.Duration, len(es))
	for turn := 0; turn*s1Turn < cycles; turn++ {
		n := min(s1Turn, cycles-turn*s1Turn)
		for k := range es {
			i := (turn + k) % len(es)
			if steps[i] == nil {
				continue
			}
			t0 := time.Now()
			for range n {
				if err := steps[i](); err != nil {
					out[i] = failed(err)
					steps[i] = nil
					break
				}
			}
			took[i] += time.Since(t0)
		}
	}
	for i := range es {
		if steps[i] == nil {
			continue
		}
		out[i] = result{values: map[string]float64{
			"us":   float64(took[i].Microseconds()) / float64(cycles),
			"reqs": float64(rs[i].reqs.load()) / float64(cycles),
		}}
	}
	return out
}

var s2 = &scenario{
	id:    "S2",
	title: "8 clients on one lock, 1 ms critical section",
	about: "Eight clients, each with its own connection and session, take turns on one lock and hold it 1 ms. " +
		"Acquisitions per second (higher is better); the wait from calling Lock to holding the lock; " +
		"per-client acquisitions (least..most) and their skew (most/least − 1); requests per acquisition " +
		"(a polling library's failed attempts included); Lock calls that gave up.",
	headline: metric{"acq", "acquisitions/s", "%.0f", +1},
	metrics: []metric{
		{"p50", "wait p50 ms", "%.1f", -1},
		{"p99", "wait p99 ms", "%.1f", -1},
		{"max", "wait max ms", "%.0f", -1},
		{"clients", "per client", "", 0},
		{"skew", "skew %", "%.0f", -1},
		{"reqs", "requests/acq", "%.1f", -1},
		{"failed", "gave up", "%.0f", -1},
	},
	jobs: func(p benchParams) []job {
		return lockJobs("", p.window+time.Minute, func(l lib) func(r *run) result {
			return func(r *run) result { return contended(r, l, p.window) }
		})
	},
}

// exclusion checks that at most limit holders are ever inside at once.
type exclusion struct {
	limit  int32
	inside atomic.Int32
	over   atomic.Int32 // the most ever inside at once, if above limit
}

func (x *exclusion) enter() {
	if in := x.inside.Add(1); in > x.limit {
		x.over.Store(in)
	}
}

func (x *exclusion) leave() { x.inside.Add(-1) }

func (x *exclusion) err() error {
	if v := x.over.Load(); v != 0 {
		return fmt.Errorf("safety violated: %d holders inside at once (limit %d)", v, x.limit)
	}
	return nil
}

func contended(r *run, l lib, window time.Duration) result {
	ls, err := l.open(r, nextName("contended"), contendClients)
	if err != nil {
		return failed(err)
	}
	return contend(r, ls, window, contendHold, 1)
}

// contend runs a loop per locker for window: lock, hold for hold, unlock;
// it fails if more than limit are ever inside at once. Acquisitions whose
// Lock returned after the window are not counted in the throughput, waits
// or per-client counts (the queue drains without newcomers) but their
// requests are in the counter, so they count in requests/acq.
func contend(r *run, ls []locker, window, hold time.Duration, limit int32) result {
	var (
		x      = exclusion{limit: limit}
		mu     sync.Mutex
		waits  []time.Duration
		counts = make([]int, len(ls))
		total  int // acquisitions, those after the window too
		fails  int
		errs   = make([]error, len(ls))
		wg     sync.WaitGroup
		holds  []time.Duration // how long each counted holder slept: hold plus the timer's lateness
	)
	r.reqs.reset()
	end := time.Now().Add(window)
	for i, lock := range ls {
		wg.Go(func() {
			var mine, myHolds []time.Duration
			n, extra, gaveUp := 0, 0, 0
			for time.Now().Before(end) {
				t0 := time.Now()
				unlock, err := lock(r.ctx)
				if err != nil {
					if r.ctx.Err() != nil {
						errs[i] = fmt.Errorf("client %d: lock: %w", i, err)
						break
					}
					gaveUp++ // a polling library ran out of tries
					continue
				}
				got := time.Now()
				x.enter()
				time.Sleep(hold)
				held := time.Since(got)
				x.leave()
				if err := unlock(r.ctx); err != nil {
					errs[i] = fmt.Errorf("client %d: unlock: %w", i, err)
					break
				}
				if got.Before(end) {
					mine = append(mine, got.Sub(t0))
					myHolds = append(myHolds, held)
					n++
				} else {
					extra++
				}
			}
			mu.Lock()
			waits = append(waits, mine...)
			holds = append(holds, myHolds...)
			counts[i] = n
			total += n + extra
			fails += gaveUp
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(x.err(), errors.Join(errs...)); err != nil {
		return failed(err)
	}
	if len(waits) == 0 {
		return failedf("no acquisition in %v", window)
	}
	slices.Sort(waits)
	least, most := slices.Min(counts), slices.Max(counts)
	skew := 100 * (float64(most)/float64(max(least, 1)) - 1)
	return result{
		values: map[string]float64{
			"acq":    float64(len(waits)) / window.Seconds(),
			"p50":    ms(percentile(waits, 0.50)),
			"p99":    ms(percentile(waits, 0.99)),
			"max":    ms(waits[len(waits)-1]),
			"skew":   skew,
			"reqs":   float64(r.reqs.load()) / float64(total),
			"failed": float64(fails),
			"hold":   ms(mean(holds)),
		},
		texts: map[string]string{"clients": fmt.Sprintf("%d..%d", least, most)},
	}
}

var s5 = &scenario{
	id:    "S5",
	title: "Scaling: waiters queued on one lock, drained",
	about: "A holder takes the lock; n waiters, each with its own session, queue behind it (for libraries " +
		"that queue, until the keys or nodes of all n are there and their clients have sent nothing for 100 ms; " +
		"for polling ones, until every waiter has started and 300 ms more). The holder releases and each waiter releases as soon as it holds the lock: " +
		"handoffs per second (higher is better), requests per handoff (release included; it should not grow " +
		"with n), the client heap and stack per waiter (its session and its share of the connections " +
		"included), and waiters that gave up. On ZooKeeper a waiter's session is a connection, and go-zookeeper " +
		"allocates two 1.5 MiB buffers per connection: that is the ~3 MiB per waiter of both ZooKeeper libraries. " +
		"Each library runs twice per round, in the order A B B A (so that load rising or falling over the job " +
		"weighs on both alike), and its figures are the mean of its two runs.",
	headline: metric{"hps", "handoffs/s", "%.0f", +1},
	metrics: []metric{
		{"reqs", "requests/handoff", "%.1f", -1},
		{"kib", "KiB/waiter", "%.1f", -1},
		{"failed", "gave up", "%.0f", -1},
	},
	jobs: func(p benchParams) []job {
		var jobs []job
		for _, n := range p.scaleSizes {
			jobs = append(jobs, lockJobs(fmt.Sprintf("%d waiters", n), 4*p.drainTimeout, func(l lib) func(r *run) result {
				return func(r *run) result { return drain(r, l, n, p.drainTimeout) }
			})...)
		}
		for i := range jobs {
			jobs[i].together = mirrored
		}
		return jobs
	},
}

// mirrored runs each entry twice, each time on fresh clients closed right
// after: in their order, then in the reverse order (A B B A), so that load
// that rises or falls over the job weighs on every library alike. A
// value is the mean of the two runs; a failure of either fails the entry.
func mirrored(rs []*run, es []entry) []result {
	runs := make([][]result, len(es))
	order := make([]int, 0, 2*len(es))
	for i := range es {
		order = append(order, i)
	}
	for i := range es {
		order = append(order, len(es)-1-i)
	}
	for _, i := range order {
		func() {
			sub := &run{env: rs[i].env, ctx: rs[i].ctx}
			defer sub.close()
			runs[i] = append(runs[i], es[i].run(sub))
		}()
	}
	out := make([]result, len(es))
	for i, pair := range runs {
		out[i] = meanResult(pair)
	}
	return out
}

// meanResult is the mean of the values of results, with the texts of the
// first; the first error if any failed.
func meanResult(results []result) result {
	out := result{values: map[string]float64{}, texts: results[0].texts}
	for _, res := range results {
		if res.err != nil {
			return res
		}
		for k, v := range res.values {
			out.values[k] += v / float64(len(results))
		}
	}
	return out
}

// heapInUse returns the heap and stack the process has in use, after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

func drain(r *run, l lib, n int, timeout time.Duration) result {
	name := nextName("drain")
	before := heapInUse()
	ls, err := l.open(r, name, n+1)
	if err != nil {
		return failed(err)
	}
	unlockHolder, err := ls[0](r.ctx)
	if err != nil {
		return failedf("holder: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	var (
		x       = exclusion{limit: 1}
		started sync.WaitGroup
		wg      sync.WaitGroup
		mu      sync.Mutex
		last    time.Time
		got     int
		gaveUp  int
		errs    = make([]error, n)
	)
	started.Add(n)
	for i, lock := range ls[1:] {
		wg.Go(func() {
			started.Done()
			unlock, err := lock(ctx)
			if err != nil {
				if ctx.Err() != nil {
					errs[i] = err
				} else {
					mu.Lock()
					gaveUp++
					mu.Unlock()
				}
				return
			}
			x.enter()
			x.leave()
			at := time.Now()
			if err := unlock(ctx); err != nil {
				errs[i] = fmt.Errorf("unlock: %w", err)
			}
			mu.Lock()
			got++
			if at.After(last) {
				last = at
			}
			mu.Unlock()
		})
	}
	started.Wait()
	if err := waitQueued(ctx, r, l, name, n+1); err != nil {
		cancel()
		r.close() // unblocks libraries whose Lock takes no context
		wg.Wait()
		return failed(err)
	}
	mem := heapInUse()
	r.reqs.reset()
	t0 := time.Now()
	if err := unlockHolder(ctx); err != nil {
		return failedf("holder release: %w", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.close() // unblocks libraries whose Lock takes no context
		<-done
		mu.Lock()
		defer mu.Unlock()
		return failedf("%d of %d waiters acquired within %v", got, n, timeout)
	}
	if err := errors.Join(x.err(), errors.Join(errs...)); err != nil {
		return failed(err)
	}
	if got == 0 {
		return failedf("no waiter acquired (%d gave up)", gaveUp)
	}
	return result{values: map[string]float64{
		"hps":    float64(got) / last.Sub(t0).Seconds(),
		"reqs":   float64(r.reqs.load()) / float64(got),
		"kib":    (float64(mem) - float64(before)) / float64(n+1) / 1024,
		"failed": float64(gaveUp),
	}}
}

// untilCount polls count every interval until it returns want for name.
func untilCount(ctx context.Context, r *run, count func(context.Context, *run, string) (int, error), name string, want int, every time.Duration) error {
	for {
		got, err := count(ctx, r, name)
		if err != nil {
			return fmt.Errorf("count those of %q: %w", name, err)
		}
		if got == want {
			return nil
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return fmt.Errorf("%d of %d on %q: %w", got, want, name, ctx.Err())
		}
	}
}

// waitQueued waits until name has want holders and waiters and the
// clients have sent no request for quietFor (the waiters have set up their
// watches), for a library that queues; or 300 ms, for one that polls and
// never goes quiet.
func waitQueued(ctx context.Context, r *run, l lib, name string, want int) error {
	const quietFor = 100 * time.Millisecond
	if l.queued == nil {
		select {
		case <-time.After(300 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := untilCount(ctx, r, l.queued, name, want, 5*time.Millisecond); err != nil {
		return fmt.Errorf("holders and waiters: %w", err)
	}
	for n := r.reqs.load(); ; {
		select {
		case <-time.After(quietFor):
		case <-ctx.Done():
			return fmt.Errorf("the waiters' clients did not go quiet: %w", ctx.Err())
		}
		m := r.reqs.load()
		if m == n {
			return nil
		}
		n = m
	}
}
