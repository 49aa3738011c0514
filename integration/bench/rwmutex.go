package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
)

// S7's setting: rwReaders readers and one writer loop on an RWMutex, each
// holding its lease for rwHold.
const (
	rwReaders = 8
	rwHold    = 2 * time.Millisecond
)

var s7 = &scenario{
	id:    "S7",
	title: "RWMutex, 8 readers and 1 writer, 2 ms hold",
	about: "Eight readers and one writer, each with its own session, loop on one RWMutex and hold it 2 ms. " +
		"Arrival order keeps the writer's wait bounded however busy the readers are: its p99 wait is the " +
		"headline (lower is better). No reference library has a distributed RWMutex (etcd's recipes one takes " +
		"no context and is not maintained), so there is no ratio. The run fails if the writer ever overlaps anyone.",
	headline: metric{"wp99", "writer wait p99 ms", "%.1f", -1},
	noRef:    true,
	metrics: []metric{
		{"wp50", "writer wait p50 ms", "%.1f", -1},
		{"reads", "reads/s", "%.0f", +1},
		{"writes", "writes/s", "%.0f", +1},
		{"reqs", "requests/acq", "%.1f", -1},
	},
	jobs: func(p benchParams) []job {
		mk := func(backend string, open func(r *run, name string, n int) ([]distsync.RWMutex, error)) job {
			return job{backend: backend, timeout: p.window + time.Minute, entries: []entry{{
				name: "distsync", ours: true,
				run: func(r *run) result { return rwRound(r, open, p.window) },
			}}}
		}
		return []job{mk("etcd", openEtcdRW), mk("Redis", openRedisRW), mk("ZooKeeper", openZKRW)}
	},
}

func openEtcdRW(r *run, name string, n int) ([]distsync.RWMutex, error) {
	clis, err := r.etcdClients(n)
	if err != nil {
		return nil, err
	}
	rws := make([]distsync.RWMutex, n)
	for i := range rws {
		s, err := etcdsync.NewSession(r.ctx, clis[i%len(clis)], etcdsync.WithTTL(lockTTL))
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		rw, err := s.RWMutex(name)
		if err != nil {
			return nil, err
		}
		rws[i] = rw
	}
	return rws, nil
}

func openRedisRW(r *run, name string, n int) ([]distsync.RWMutex, error) {
	cs := r.redisClients(n)
	rws := make([]distsync.RWMutex, n)
	for i := range rws {
		s, err := redissync.NewSession(r.ctx, cs[i%len(cs)], redissync.WithTTL(lockTTL))
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		rw, err := s.RWMutex(name)
		if err != nil {
			return nil, err
		}
		rws[i] = rw
	}
	return rws, nil
}

func openZKRW(r *run, name string, n int) ([]distsync.RWMutex, error) {
	rws := make([]distsync.RWMutex, n)
	for i := range rws {
		s, err := r.zkSession()
		if err != nil {
			return nil, err
		}
		rw, err := s.RWMutex(name)
		if err != nil {
			return nil, err
		}
		rws[i] = rw
	}
	return rws, nil
}

// rwCheck counts writers that overlapped anyone.
type rwCheck struct{ readers, writers, violations atomic.Int64 }

func (c *rwCheck) read() {
	c.readers.Add(1)
	if c.writers.Load() > 0 {
		c.violations.Add(1)
	}
	time.Sleep(rwHold)
	c.readers.Add(-1)
}

func (c *rwCheck) write() {
	if c.writers.Add(1) > 1 || c.readers.Load() > 0 {
		c.violations.Add(1)
	}
	time.Sleep(rwHold)
	if c.readers.Load() > 0 {
		c.violations.Add(1)
	}
	c.writers.Add(-1)
}

func rwRound(r *run, open func(r *run, name string, n int) ([]distsync.RWMutex, error), window time.Duration) result {
	rws, err := open(r, nextName("rwmutex"), rwReaders+1)
	if err != nil {
		return failed(err)
	}
	var (
		check         rwCheck
		mu            sync.Mutex
		writes        []time.Duration
		reads, total  int
		errs          = make([]error, len(rws))
		wg            sync.WaitGroup
		end           = time.Now()
		writerIndex   = rwReaders
		acquireAndRun = func(i int) (time.Duration, error) {
			t0 := time.Now()
			var l distsync.Lease
			var err error
			if i == writerIndex {
				l, err = rws[i].Lock(r.ctx)
			} else {
				l, err = rws[i].RLock(r.ctx)
			}
			if err != nil {
				return 0, fmt.Errorf("client %d: lock: %w", i, err)
			}
			w := time.Since(t0)
			if i == writerIndex {
				check.write()
			} else {
				check.read()
			}
			if err := l.Release(r.ctx); err != nil {
				return 0, fmt.Errorf("client %d: release: %w", i, err)
			}
			return w, nil
		}
	)
	r.reqs.reset()
	end = time.Now().Add(window)
	for i := range rws {
		wg.Go(func() {
			var mine []time.Duration
			n := 0
			for time.Now().Before(end) {
				w, err := acquireAndRun(i)
				if err != nil {
					errs[i] = err
					break
				}
				n++
				mine = append(mine, w)
			}
			mu.Lock()
			defer mu.Unlock()
			total += n
			if i == writerIndex {
				writes = append(writes, mine...)
			} else {
				reads += len(mine)
			}
		})
	}
	wg.Wait()
	if v := check.violations.Load(); v != 0 {
		errs = append(errs, fmt.Errorf("safety violated: the writer overlapped others %d times", v))
	}
	if err := errors.Join(errs...); err != nil {
		return failed(err)
	}
	if len(writes) == 0 {
		return failedf("the writer never acquired in %v", window)
	}
	slices.Sort(writes)
	return result{values: map[string]float64{
		"wp99":   ms(percentile(writes, 0.99)),
		"wp50":   ms(percentile(writes, 0.50)),
		"reads":  float64(reads) / window.Seconds(),
		"writes": float64(len(writes)) / window.Seconds(),
		"reqs":   float64(r.reqs.load()) / float64(total),
	}}
}
