package mutex

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease is a held lock. Lock and TryLock return it as a distsync.Lease;
// assert it to reach the etcd key and revision:
//
//	l := lease.(*mutex.Lease)
//	client.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut(k, v)).Commit()
//
// It follows its key from the acquisition to its end. It is lost when the
// key is deleted, by anyone or with the session lease (revoked or
// expired). It is lost too when the Session is closed, or when the session
// lease's renewal has not been confirmed for three quarters of its TTL.
// distsync.LostReason tells which: LossDeleted, LossSessionEnded or
// LossRenewal, and LossForceReleased when an operator's
// etcdsync.Session.ForceRelease deleted the key. It is safe for
// concurrent use and must not be copied.
type Lease struct {
	l *etcdq.Lease
}

var _ distsync.Lease = (*Lease)(nil)

// lease keeps a nil *etcdq.Lease from becoming a non-nil distsync.Lease.
func lease(l *etcdq.Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, err
	}
	return &Lease{l: l}, nil
}

// Token returns the fencing token: the create revision of the key, which
// etcd makes strictly greater for every later acquisition of any key.
func (l *Lease) Token() uint64 { return l.l.Token() }

// Done returns a channel closed when the lease ends: released or lost.
func (l *Lease) Done() <-chan struct{} { return l.l.Done() }

// Err returns nil while the lease is held, an error wrapping
// distsync.ErrReleased after Release, or one wrapping distsync.ErrLost
// with the cause. Once non-nil it never changes.
func (l *Lease) Err() error { return l.l.Err() }

// Release deletes the lease's key if it is still the one this lease
// created (never a later holder's) and ends the lease. It is idempotent;
// later calls return the first call's result. An error wraps
// distsync.ErrUnavailable: etcd did not confirm the deletion, which goes
// on in the background until it succeeds or the session lease ends.
func (l *Lease) Release(ctx context.Context) error { return l.l.Release(ctx) }

// Key returns the etcd key that holds this lease.
func (l *Lease) Key() string { return l.l.Key() }

// Revision returns the create revision of Key, equal to Token.
func (l *Lease) Revision() int64 { return l.l.Revision() }

// IsOwner returns a Txn comparison that holds only while this lease's key
// exists as created: put it in the If of a Txn to make a write conditional
// on still holding the lease.
func (l *Lease) IsOwner() clientv3.Cmp { return l.l.IsOwner() }
