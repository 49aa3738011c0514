// Quickstart shows distsync's etcd Mutex on an etcd member it starts itself,
// so that it runs with no setup:
//
//	go run ./examples/quickstart
//
// Three workers, each with a Session of its own as separate processes would
// have, take turns on one lock and print the fencing token of each turn.
// Then the lease under a worker's Session is revoked while it holds the
// lock, as etcd does when a holder stops renewing it: the worker learns of
// the loss from its Lease, and its Session goes on with a new lease, so the
// next Lock works. The output looks like:
//
//	worker 3 holds the lock, fencing token 2
//	worker 1 holds the lock, fencing token 3
//	worker 2 holds the lock, fencing token 4
//	worker 3 holds the lock, fencing token 6
//	worker 1 holds the lock, fencing token 8
//	worker 2 holds the lock, fencing token 10
//	worker 1 holds the lock, fencing token 14
//	worker 1 lost the lock: Done closed, errors.Is(err, distsync.ErrLost) = true
//	  distsync: lease lost: key "quickstart/37e4a2186f74221e_96218adedb645580" was deleted
//	worker 1 holds the lock again, fencing token 16
//
// The tokens are etcd revisions: they grow with every acquisition, with gaps
// where other writes (the waiters' own keys) took revisions in between.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/mutex"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	lockName = "quickstart"
	workers  = 3
	turns    = 2
	// ttl is the Session's TTL: if a worker crashed while holding the
	// lock, the lock would pass on about this long after.
	ttl = 5 * time.Second
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run is the whole example, writing its report to w.
func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A real program connects to its etcd cluster with clientv3.New. The
	// example starts a member of its own instead, on free loopback ports
	// with its data in a temporary directory that Stop removes.
	etcd, err := distsynctest.StartEtcd()
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   etcd.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return err
	}
	// Deferred after Stop, so it runs first: the server then has no open
	// streams to wait for.
	defer cli.Close()

	out := &lineWriter{w: w}
	if err := takeTurns(ctx, out, cli); err != nil {
		return err
	}
	return loseLock(ctx, out, cli)
}

// takeTurns runs the workers at once, each taking the lock turns times.
func takeTurns(ctx context.Context, out *lineWriter, cli *clientv3.Client) error {
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { errs[i] = worker(ctx, out, cli, i+1) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func worker(ctx context.Context, out *lineWriter, cli *clientv3.Client, id int) (err error) {
	s, err := etcdsync.NewSession(ctx, cli, etcdsync.WithTTL(ttl))
	if err != nil {
		return err
	}
	// Close ends the worker's Session, and with it anything still held.
	defer func() { err = errors.Join(err, s.Close()) }()
	m, err := s.Mutex(lockName)
	if err != nil {
		return err
	}

	for range turns {
		lease, err := m.Lock(ctx)
		if err != nil {
			return err
		}
		// The token grows with every acquisition of the lock. A resource
		// that remembers the highest token it has accepted can refuse
		// writes from a holder that has since lost the lock.
		out.printf("worker %d holds the lock, fencing token %d\n", id, lease.Token())
		time.Sleep(20 * time.Millisecond) // the work the lock protects
		if err := lease.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

// loseLock takes the lock, has the lease under its Session revoked from
// outside, reports how the Lease tells of the loss, and takes the lock
// again on the same Session.
func loseLock(ctx context.Context, out *lineWriter, cli *clientv3.Client) (err error) {
	s, err := etcdsync.NewSession(ctx, cli, etcdsync.WithTTL(ttl))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	m, err := s.Mutex(lockName)
	if err != nil {
		return err
	}
	lease, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	out.printf("worker 1 holds the lock, fencing token %d\n", lease.Token())

	// Revoking the etcd lease that the lock's key is bound to deletes the
	// key, as its expiry would if the worker stopped renewing it (a crash,
	// a partition, a long pause). Another worker could take the lock right
	// away. An operator finds the lease from the key.
	resp, err := cli.Get(ctx, lease.(*mutex.Lease).Key())
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("the lock's key is gone already")
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		return err
	}
	select {
	case <-lease.Done():
	case <-ctx.Done():
		return fmt.Errorf("the lost lock was not reported: %w", ctx.Err())
	}
	err = lease.Err()
	out.printf("worker 1 lost the lock: Done closed, errors.Is(err, distsync.ErrLost) = %t\n", errors.Is(err, distsync.ErrLost))
	out.printf("  %v\n", err)

	// The Session goes on with a new lease: the same Mutex works again.
	again, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	out.printf("worker 1 holds the lock again, fencing token %d\n", again.Token())
	return again.Release(ctx)
}

// lineWriter serializes the workers' lines. The lock already orders the
// lines written while it is held, but the race detector cannot see an order
// that passes through etcd.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) printf(format string, args ...any) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	fmt.Fprintf(lw.w, format, args...)
}
