package etcdq

import (
	"context"
	"strings"

	"github.com/distsync/distsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// How a holder learns that an operator removed its key (ForceRelease).
//
// ForceRelease deletes the key and, in the same Txn, puts a marker key
// "N/\x00forced/<child>" on the holder's own session lease, holding the
// identity of the Session that forced it. The holder's follower (or the
// waiter's wait) sees its key deleted, as for any deletion. Before it
// reports the loss it deletes the marker and reads it back in one request:
// found, the loss is LossForceReleased (else see deletedErr). Since the two
// writes are one Txn, the marker exists whenever the deletion is seen,
// however the follower learned of it (a watch event or a re-read after a
// broken watch). The key's value is never written, so Proclaim cannot
// trip it. A waiter that gives up as it is force-released deletes the
// marker with its removal (see remove). A marker nobody consumes (its
// holder died, or is no distsync holder) ends with the holder's session
// lease.

// forced is the child of a prefix under which the force-release markers
// live.
const forced = ctl + "forced/"

// forcedKey is the marker key of key: "N/\x00forced/<child>".
func forcedKey(key string) string {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1] + forced + key[i+1:]
}

// deletedErr returns the loss of key, found deleted: LossForceReleased if
// ForceRelease left its marker (which it deletes), else LossSessionEnded
// if e's session lease is gone (revoked: its keys went first, and the
// epoch ends now), else LossDeleted. e is the key's epoch, or nil when
// unknown. what says which key it was ("key", "waiter key"). The requests
// are bounded by ctx and attemptTimeout; when they fail the loss is
// LossDeleted.
func (q *Queue) deletedErr(ctx context.Context, e *epoch, key, what string) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	resp, err := q.c.Delete(ctx, forcedKey(key), clientv3.WithPrevKV())
	if err == nil && len(resp.PrevKvs) == 1 {
		by := string(resp.PrevKvs[0].Value)
		return distsync.Lost(distsync.LossForceReleased, nil, "%q: %s %q was force-released by %s", q.name, what, key, by)
	}
	if e != nil && err == nil {
		ttl, err := q.c.TimeToLive(ctx, e.id)
		if isLeaseGone(err) || err == nil && ttl.TTL < 0 {
			lost := distsync.Lost(distsync.LossSessionEnded, nil, "%q: %s %q was deleted with session lease %x", q.name, what, key, int64(e.id))
			e.finish(lost, false)
			return lost
		}
	}
	return distsync.Lost(distsync.LossDeleted, nil, "%q: %s %q was deleted", q.name, what, key)
}

// waiterDeleted is deletedErr for a waiter's own key, read under the
// epoch's context: the waiter's may have ended.
func (q *Queue) waiterDeleted(e *epoch, key string) error {
	return q.deletedErr(e.ctx, e, key, "waiter key")
}
