package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redis"
	"github.com/distsync/distsync/fallback/zookeeper"
	"github.com/distsync/distsync/semaphore"
)

// S3's setting: the ideal throughput is semLimit/semHold = 400/s.
const (
	semLimit   = 4
	semClients = 16
	semHold    = 10 * time.Millisecond
)

var s3 = &scenario{
	id:    "S3",
	title: "Semaphore, limit 4, 16 clients, 10 ms critical section",
	about: "Sixteen clients, each with its own session, share a semaphore of limit 4 and hold a permit 10 ms. " +
		"None of the reference libraries has a semaphore, so the comparison is with the ideal, " +
		"limit / hold = 400 acquisitions/s, which no real backend reaches: every handoff costs a round trip.",
	headline: metric{"ofIdeal", "% of ideal", "%.1f", +1},
	noRef:    true,
	metrics: []metric{
		{"acq", "acquisitions/s", "%.0f", +1},
		{"p50", "wait p50 ms", "%.1f", -1},
		{"p99", "wait p99 ms", "%.1f", -1},
		{"reqs", "requests/acq", "%.1f", -1},
	},
	jobs: func(p benchParams) []job {
		mk := func(backend string, open func(r *run, name string) (acquirers, error)) job {
			return job{backend: backend, timeout: p.window + time.Minute, entries: []entry{{
				name: "distsync", ours: true,
				run: func(r *run) result { return semRound(r, open, p.window) },
			}}}
		}
		return []job{
			mk("etcd", openEtcdSems),
			mk("Redis", openRedisSems),
			mk("ZooKeeper", openZKSems),
		}
	},
}

// acquirers are the clients' Acquire functions, one per client.
type acquirers []func(context.Context) (distsync.Lease, error)

func openEtcdSems(r *run, name string) (acquirers, error) {
	clis, err := r.etcdClients(semClients)
	if err != nil {
		return nil, err
	}
	as := make(acquirers, semClients)
	for i := range as {
		s, err := semaphore.NewWithClient(r.ctx, clis[i%len(clis)], name, semLimit, semaphore.WithTTL(lockTTL))
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		as[i] = s.Acquire
	}
	return as, nil
}

func openRedisSems(r *run, name string) (acquirers, error) {
	cs := r.redisClients(semClients)
	as := make(acquirers, semClients)
	for i := range as {
		s, err := redis.NewSemaphoreWithClient(r.ctx, cs[i%len(cs)], name, semLimit, redis.WithTTL(lockTTL))
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		as[i] = s.Acquire
	}
	return as, nil
}

func openZKSems(r *run, name string) (acquirers, error) {
	as := make(acquirers, semClients)
	for i := range as {
		sess, err := r.zkSession()
		if err != nil {
			return nil, err
		}
		s, err := zookeeper.NewSemaphore(r.ctx, sess, name, semLimit)
		if err != nil {
			return nil, err
		}
		as[i] = s.Acquire
	}
	return as, nil
}

func semRound(r *run, open func(r *run, name string) (acquirers, error), window time.Duration) result {
	as, err := open(r, nextName("semaphore"))
	if err != nil {
		return failed(err)
	}
	var (
		x     = exclusion{limit: semLimit}
		mu    sync.Mutex
		waits []time.Duration
		total int
		errs  = make([]error, len(as))
		wg    sync.WaitGroup
	)
	r.reqs.reset()
	end := time.Now().Add(window)
	for i, acquire := range as {
		wg.Go(func() {
			var mine []time.Duration
			n := 0
			for time.Now().Before(end) {
				t0 := time.Now()
				l, err := acquire(r.ctx)
				if err != nil {
					errs[i] = fmt.Errorf("client %d: acquire: %w", i, err)
					break
				}
				got := time.Now()
				x.enter()
				time.Sleep(semHold)
				x.leave()
				if err := l.Release(r.ctx); err != nil {
					errs[i] = fmt.Errorf("client %d: release: %w", i, err)
					break
				}
				n++
				if got.Before(end) {
					mine = append(mine, got.Sub(t0))
				}
			}
			mu.Lock()
			waits = append(waits, mine...)
			total += n
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
	acq := float64(len(waits)) / window.Seconds()
	return result{values: map[string]float64{
		"ofIdeal": 100 * acq / (semLimit / semHold.Seconds()),
		"acq":     acq,
		"p50":     ms(percentile(waits, 0.50)),
		"p99":     ms(percentile(waits, 0.99)),
		"reqs":    float64(r.reqs.load()) / float64(total),
	}}
}
