package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
)

const (
	// turns is how many times each worker takes the lock in the script.
	turns = 3
	// work is how long a worker holds the lock in the script.
	work = 20 * time.Millisecond
	// probeWait is the deadline of the prober's wait, which it misses.
	probeWait = 100 * time.Millisecond
	// poll is the period of the script's checks of its own endpoints.
	poll = 20 * time.Millisecond
	// scrapeWait bounds the wait for the families that take time to
	// appear (a lease renewal, the leader's gauge); past it the script
	// prints what there is.
	scrapeWait = 2 * ttl
)

// workers are the Mutex "jobs" as three Sessions see it.
type workers struct {
	one, two, prober distsync.Mutex
}

// script plays the -once scenario and writes its report to out. base is
// the service's URL; leading is closed once the Elector leads.
func (w workers) script(ctx context.Context, out *lineWriter, base string, leading <-chan struct{}) (err error) {
	// Contention: both workers take turns on the lock, each waiting while
	// the other holds it.
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, m := range []distsync.Mutex{w.one, w.two} {
		wg.Go(func() { errs[i] = takeTurns(ctx, m) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// worker-1 holds the lock for the rest of the script.
	held, err := w.one.Lock(ctx)
	if err != nil {
		return err
	}
	// worker-2 waits for it, then releases it at once.
	waited := make(chan error, 1)
	go func() {
		l, err := w.two.Lock(ctx)
		if err == nil {
			err = l.Release(ctx)
		}
		waited <- err
	}()
	defer func() {
		err = errors.Join(err, held.Release(context.WithoutCancel(ctx)), <-waited)
	}()

	// The prober fails both ways: TryLock would block, and a wait ends
	// with its deadline.
	got, err := probe(ctx, w.prober, false)
	if !errors.Is(got, distsync.ErrWouldBlock) {
		return errors.Join(fmt.Errorf("prober: TryLock of a held lock: got %v, want %v", got, distsync.ErrWouldBlock), err)
	}
	out.printf("prober: TryLock: %v\n", got)
	got, err = probe(ctx, w.prober, true)
	if !errors.Is(got, distsync.ErrNotAcquired) || ctx.Err() != nil {
		return errors.Join(fmt.Errorf("prober: Lock of a held lock: got %v, want %v", got, distsync.ErrNotAcquired), err)
	}
	out.printf("prober: Lock with a %v deadline: %v\n", probeWait, got)

	body, err := inspectWhen(ctx, base, func(st statusView) bool {
		return len(st.Holders) == 1 && st.Holders[0].Identity == "worker-1" &&
			len(st.Waiters) == 1 && st.Waiters[0].Identity == "worker-2"
	})
	if err != nil {
		return err
	}
	out.printf("GET /inspect?name=%s (worker-1 holds the lock, worker-2 waits):\n%s", lockName, body)

	select {
	case <-leading:
	case <-ctx.Done():
		return fmt.Errorf("waiting to lead: %w", ctx.Err())
	}
	code, body, err := get(ctx, base+"/healthz")
	if err != nil {
		return err
	}
	out.printf("GET /healthz: %d %s", code, body)

	metrics, err := scrapeWhen(ctx, base, "distsync_renewal_duration_seconds_count", "distsync_election_leader{")
	if err != nil {
		return err
	}
	out.printf("GET /metrics (distsync_* only):\n")
	sc := bufio.NewScanner(strings.NewReader(metrics))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "distsync_") || strings.HasPrefix(line, "# HELP distsync_") || strings.HasPrefix(line, "# TYPE distsync_") {
			out.printf("%s\n", line)
		}
	}
	return sc.Err()
}

// takeTurns takes m turns times, holding it for work each time.
func takeTurns(ctx context.Context, m distsync.Mutex) error {
	for range turns {
		l, err := m.Lock(ctx)
		if err != nil {
			return err
		}
		select { // the work, which ends early when ctx does
		case <-time.After(work):
		case <-ctx.Done():
		}
		if err := l.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

// probe tries m, with TryLock or, when wait, with Lock bounded by
// probeWait. It returns the acquisition's error; when it acquired m, it
// releases it and returns the Release's error as err.
func probe(ctx context.Context, m distsync.Mutex, wait bool) (got, err error) {
	var l distsync.Lease
	if wait {
		wctx, cancel := context.WithTimeout(ctx, probeWait)
		defer cancel()
		l, got = m.Lock(wctx)
	} else {
		l, got = m.TryLock(ctx)
	}
	if got != nil {
		return got, nil
	}
	return nil, l.Release(ctx)
}

// inspectWhen fetches /inspect of the lock until ok accepts it, and
// returns that body. The queue changes asynchronously (a waiter's key is
// written after its Lock started, a cancelled waiter's removed after its
// Lock returned), hence the polling.
func inspectWhen(ctx context.Context, base string, ok func(statusView) bool) (string, error) {
	for {
		code, body, err := get(ctx, base+"/inspect?name="+lockName)
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("GET /inspect: %d %s", code, body)
		}
		var st statusView
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return "", fmt.Errorf("GET /inspect: %w", err)
		}
		if ok(st) {
			return body, nil
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the queue, last seen %s: %w", body, ctx.Err())
		}
	}
}

// scrapeWhen fetches /metrics until it holds every one of want, or for
// scrapeWait at most, and returns the last body.
func scrapeWhen(ctx context.Context, base string, want ...string) (string, error) {
	deadline := time.Now().Add(scrapeWait)
	for {
		code, body, err := get(ctx, base+"/metrics")
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("GET /metrics: %d %s", code, body)
		}
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, w)
		}
		if !missing || time.Now().After(deadline) {
			return body, nil
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// busy is the service without -once: the workers take the lock in turn,
// holding it for a random while, and the prober tries it every two
// seconds, until ctx ends.
func (w workers) busy(ctx context.Context, logger *slog.Logger) {
	var wg sync.WaitGroup
	for _, m := range []distsync.Mutex{w.one, w.two} {
		wg.Go(func() { loop(ctx, m, logger) })
	}
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// Both fail while a worker holds the lock, and are recorded
			// whatever their outcome.
			for _, wait := range []bool{false, true} {
				if _, err := probe(ctx, w.prober, wait); err != nil && ctx.Err() == nil {
					logger.Warn("prober: release", slog.Any("error", err))
				}
			}
		}
	})
	wg.Wait()
}

// loop takes m, holds it for 50 to 250 ms and releases it, until ctx
// ends.
func loop(ctx context.Context, m distsync.Mutex, logger *slog.Logger) {
	for ctx.Err() == nil {
		l, err := m.Lock(ctx)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("worker: lock", slog.Any("error", err))
				sleep(ctx, time.Second)
			}
			continue
		}
		select {
		case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
		case <-l.Done():
		case <-ctx.Done():
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		if err := l.Release(rctx); err != nil {
			logger.Warn("worker: release", slog.Any("error", err))
		}
		cancel()
		sleep(ctx, time.Duration(rand.IntN(100))*time.Millisecond)
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
