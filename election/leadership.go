package election

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leadership is a held leadership, returned by Campaign as a
// distsync.Leadership; assert it to reach the etcd key and revision:
//
//	l := leadership.(*election.Leadership)
//	client.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut(k, v)).Commit()
//
// It follows the leader key from the Campaign to its end. It is lost when
// the key is deleted, by anyone or with the session lease (revoked or
// expired). It is lost too when the Session is closed, or when the session
// lease's renewal has not been confirmed for three quarters of its TTL.
// distsync.LostReason tells which: LossDeleted, LossSessionEnded or
// LossRenewal, and LossForceReleased when an operator's
// etcdsync.Session.ForceRelease deleted the key. It is safe
// for concurrent use and must not be copied.
type Leadership struct {
	l *etcdq.Lease
	c *clientv3.Client
}

var _ distsync.Leadership = (*Leadership)(nil)

// Token returns the term: the create revision of the leader key, strictly
// greater than the term of every earlier leader of the election (and than
// every token issued earlier by the same etcd cluster).
func (l *Leadership) Token() uint64 { return l.l.Token() }

// Done returns a channel closed when leadership ends: resigned or lost.
func (l *Leadership) Done() <-chan struct{} { return l.l.Done() }

// Err returns nil while leading, an error wrapping distsync.ErrReleased
// after Release, or one wrapping distsync.ErrLost with the cause.
func (l *Leadership) Err() error { return l.l.Err() }

// Release resigns: it deletes the leader key if it is still the one this
// candidacy created (never a later leader's), which hands leadership to the
// next candidate at once, and ends the Leadership. It is idempotent; later
// calls return the first call's result. An error wraps
// distsync.ErrUnavailable: etcd did not confirm the deletion, which goes on
// in the background until it succeeds or the session lease ends (the
// next candidate leads when it does).
func (l *Leadership) Release(ctx context.Context) error { return l.l.Release(ctx) }

// Proclaim changes the value observers see for this leader, in one etcd
// transaction that writes only while this candidacy's key exists as
// created, so a late Proclaim never overwrites a later leader's value. It
// keeps the term. When leadership has ended it writes nothing and fails
// with an error wrapping distsync.ErrLost or distsync.ErrReleased. An
// error wrapping distsync.ErrUnavailable (joined with ctx.Err() when ctx
// ended) means etcd did not answer: the value may or may not have been
// written, and Proclaim may be retried.
func (l *Leadership) Proclaim(ctx context.Context, value []byte) error {
	if err := l.l.Err(); err != nil {
		return err
	}
	resp, err := l.c.Txn(ctx).If(l.l.IsOwner()).
		Then(clientv3.OpPut(l.l.Key(), string(value), clientv3.WithIgnoreLease())).
		Commit()
	if err != nil {
		return etcdq.RPCError(ctx, l.c, err, "proclaim")
	}
	if !resp.Succeeded {
		if err := l.l.Err(); err != nil {
			return err
		}
		// The follower learns of the deletion from its watch; the Txn
		// saw it first.
		return distsync.Lost(distsync.LossDeleted, nil, "proclaim: leader key %q no longer exists", l.l.Key())
	}
	return nil
}

// Key returns the etcd key of this candidacy (the leader key while it
// leads).
func (l *Leadership) Key() string { return l.l.Key() }

// Revision returns the create revision of Key, equal to Token.
func (l *Leadership) Revision() int64 { return l.l.Revision() }

// IsOwner returns a Txn comparison that holds only while this leadership's
// key exists as created: put it in the If of a Txn to make a write
// conditional on still leading.
func (l *Leadership) IsOwner() clientv3.Cmp { return l.l.IsOwner() }
