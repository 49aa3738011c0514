// Package cronjob is the example of distsync's test kit: a cron job that
// runs on many hosts at once and must do its work on one of them only, and
// stop the moment it loses its lock. Its tests (cronjob_test.go) run it on an
// embedded etcd with distsynctest.Etcd, inject a lost lock with
// distsynctest.DeleteHolder and distsynctest.Expire, and repeat the fast
// checks on distsynctest.Memory.
package cronjob

import (
	"context"
	"errors"

	"github.com/distsync/distsync"
)

// ErrSkipped is returned by RunOnce when another host holds the lock.
var ErrSkipped = errors.New("cronjob: another host runs the job")

// RunOnce runs work under the lock called name, if nobody holds it. It
// returns ErrSkipped without running work when the lock is held elsewhere.
// work gets a context that is cancelled when the lock is lost, and the
// lease, whose fencing token it passes to what it writes, so that the
// writes of a host that lost its lock are refused. When the lock is lost,
// RunOnce returns an error wrapping distsync.ErrLost, whatever work
// returned.
func RunOnce(ctx context.Context, s distsync.Session, name string, work func(ctx context.Context, l distsync.Lease) error) error {
	m, err := s.Mutex(name)
	if err != nil {
		return err
	}
	l, err := m.TryLock(ctx)
	if errors.Is(err, distsync.ErrWouldBlock) {
		return ErrSkipped
	}
	if err != nil {
		return err
	}
	defer l.Release(context.WithoutCancel(ctx))
	wctx, cancel := distsync.LeaseContext(ctx, l)
	defer cancel()
	err = work(wctx, l)
	if lerr := l.Err(); errors.Is(lerr, distsync.ErrLost) {
		return lerr
	}
	return err
}
