package distsynctest

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/leaseend"
)

// memLease is the Lease of a Memory entry: a lock, a read lock or permits.
type memLease struct {
	leaseend.Lifecycle
	e     *entry
	token uint64
}

var _ distsync.Lease = (*memLease)(nil)

// Token returns the fencing token, issued when the acquisition enqueued.
func (l *memLease) Token() uint64 { return l.token }

// Release removes the lease's entry, serving the next waiter, and ends the
// lease with ErrReleased (or leaves the loss it had). It is idempotent and
// returns nil: nothing in memory can fail to be removed.
func (l *memLease) Release(ctx context.Context) error {
	return l.Lifecycle.Release(ctx, distsync.Errorf(distsync.ErrReleased, nil, "token %d", l.token), func(context.Context) error {
		m := l.e.q.m
		m.mu.Lock()
		defer m.mu.Unlock()
		if !l.e.gone {
			l.e.q.remove(l.e)
			l.e.q.settle()
		}
		return nil
	}, func() {})
}

// deleteHolder removes the lease's entry from outside, as an operator
// deleting its key would: the lease ends with LossDeleted and the next
// waiter is served. It fails with ErrNotFound when the entry is gone.
func (l *memLease) deleteHolder() error {
	q := l.e.q
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	if l.e.gone {
		return distsync.Errorf(distsync.ErrNotFound, nil, "%q: token %d is gone already", q.name, l.token)
	}
	lost := distsync.Lost(distsync.LossDeleted, nil, "%q: token %d deleted", q.name, l.token)
	q.end(l.e, lost, lost)
	q.settle()
	return nil
}

// memLeadership is the Leadership of a Memory election: a memLease whose
// token is the term, plus Proclaim.
type memLeadership struct{ *memLease }

var _ distsync.Leadership = memLeadership{}

// Proclaim changes the value observers see while leadership is held. It
// fails with the lease's Err (ErrLost or ErrReleased) once it has ended,
// or with ErrUnavailable while the session is disconnected.
func (l memLeadership) Proclaim(ctx context.Context, value []byte) error {
	q := l.e.q
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if l.Releasing() || l.e.gone {
		return distsync.Errorf(distsync.ErrReleased, nil, "token %d", l.token)
	}
	if err := l.e.s.usableLocked(ctx, l.e.q.name, "proclaim"); err != nil {
		return err
	}
	l.e.value = append([]byte(nil), value...)
	q.publish()
	return nil
}
