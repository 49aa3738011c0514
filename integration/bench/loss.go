package main

import (
	"context"
	"errors"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/mutex"
)

// lossSamples is the number of losses S6 times per case; lossHeld is how
// long the lock is held before it is taken away.
const (
	lossSamples = 20
	lossHeld    = 10 * time.Millisecond
)

var s6 = &scenario{
	id:    "S6",
	title: "Loss signal (etcd)",
	about: "How long a held lock takes to tell its holder it is lost (Lease.Done closes, Err wraps ErrLost) when " +
		"another client revokes the holder's session lease, as an expiry would, or deletes its key: from just " +
		"before the Revoke or Delete call, made 10 ms after the lock was taken, or at once (\"delete at once\"): " +
		"a lock taken without waiting starts watching its key 1 ms after it was taken, which saves a watch on " +
		"locks held for less. The reference libraries have no loss signal to compare with: concurrency.Mutex's " +
		"holder learns nothing until its next request fails. Lower is better.",
	headline: metric{"p99", "p99 ms", "%.2f", -1},
	noRef:    true,
	metrics: []metric{
		{"p50", "p50 ms", "%.2f", -1},
		{"max", "max ms", "%.2f", -1},
		{"n", "samples", "%.0f", 0},
	},
	jobs: func(benchParams) []job {
		return []job{
			{backend: "etcd", label: "revoke", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result { return lossByRevoke(r, lossHeld) }}}},
			{backend: "etcd", label: "delete", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result { return lossByDelete(r, lossHeld) }}}},
			{backend: "etcd", label: "delete at once", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result { return lossByDelete(r, 0) }}}},
		}
	},
}

// lossByRevoke holds a lock on a new session per sample and revokes the
// session's lease from another client.
func lossByRevoke(r *run, held time.Duration) result {
	clis, err := r.etcdClients(1)
	if err != nil {
		return failed(err)
	}
	var ds []time.Duration
	for range lossSamples {
		s, err := etcdsync.NewSession(r.ctx, clis[0], etcdsync.WithTTL(lockTTL))
		if err != nil {
			return failed(err)
		}
		m, err := s.Mutex(nextName("loss-revoke"))
		if err != nil {
			_ = s.Close()
			return failed(err)
		}
		d, err := timeLoss(r.ctx, m.(*mutex.Mutex), held, func(l distsync.Lease) error {
			id, err := etcdq.Of(s).CurrentLease(r.ctx)
			if err == nil {
				_, err = r.env.etcdCli.Revoke(r.ctx, id)
			}
			return err
		})
		_ = s.Close() // the lease is gone: its revoke fails, harmlessly
		if err != nil {
			return failed(err)
		}
		ds = append(ds, d)
	}
	return durations(ds)
}

// lossByDelete holds a lock and deletes its key from another client.
func lossByDelete(r *run, held time.Duration) result {
	clis, err := r.etcdClients(1)
	if err != nil {
		return failed(err)
	}
	s, err := etcdsync.NewSession(r.ctx, clis[0], etcdsync.WithTTL(lockTTL))
	if err != nil {
		return failed(err)
	}
	r.onClose(func() { _ = s.Close() })
	m, err := s.Mutex(nextName("loss-delete"))
	if err != nil {
		return failed(err)
	}
	var ds []time.Duration
	for range lossSamples {
		d, err := timeLoss(r.ctx, m.(*mutex.Mutex), held, func(l distsync.Lease) error {
			_, err := r.env.etcdCli.Delete(r.ctx, l.(*mutex.Lease).Key())
			return err
		})
		if err != nil {
			return failed(err)
		}
		ds = append(ds, d)
	}
	return durations(ds)
}

// timeLoss locks m, holds it for held, takes it away and returns how long
// Done took to close; it checks that Err wraps ErrLost.
func timeLoss(ctx context.Context, m *mutex.Mutex, held time.Duration, takeAway func(distsync.Lease) error) (time.Duration, error) {
	l, err := m.Lock(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Release(ctx) }()
	time.Sleep(held)
	t0 := time.Now()
	if err := takeAway(l); err != nil {
		return 0, err
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		return 0, errors.New("Done not closed 10 s after the lock was taken away")
	}
	d := time.Since(t0)
	if err := l.Err(); !errors.Is(err, distsync.ErrLost) {
		return 0, errors.Join(errors.New("Err after the loss does not wrap ErrLost"), err)
	}
	return d, nil
}
