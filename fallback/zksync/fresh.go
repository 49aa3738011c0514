package zksync

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// Fresh nodes. A node whose create told its czxid and showed it alone
// under the name (see createNode) holds at once, with no look and no
// watch. Its Lease's follower then lists the children with a watch on
// them (lookFresh): that one request covers the node, since its deletion
// and ForceRelease's marker both change the children. A Lease released
// before the follower got to it sends nothing.

// freshRead is what a read of a node just created by session sid, with
// czxid and data, would find.
func freshRead(sid, czxid int64, data []byte) nodeRead {
	return nodeRead{true, data, &zk.Stat{Czxid: czxid, Mzxid: czxid, EphemeralOwner: sid}}
}

// lookFresh is the first look of a fresh lease's follower, at a node whose
// create told its czxid (see createNode): the listing alone, with a watch
// on the children that fires at the next creation or deletion of any of
// them, this node's included. The listing's Stat is the name's node's: a
// Pzxid equal to czxid says that no child was created or deleted since
// this node was. Nothing else writes to a fresh node but ForceRelease, whose marker
// comes with a child's creation and deletion (see forceRemove). So the
// node is as created, and the child watch covers it until the lease's
// follower watches the node itself. Any other Pzxid makes it read and
// watch the node, as look does; sid is the session that made it.
func (q *queue) lookFresh(ctx context.Context, path string, sid, czxid int64, value []byte) (look, error) {
	type res struct {
		children []string
		stat     *zk.Stat
		ch       <-chan zk.Event
	}
	r, err := call(ctx, q.s, func() (res, error) {
		children, stat, ch, err := q.s.conn.ChildrenW(q.path)
		return res{children, stat, ch}, err
	}, nil)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return look{}, nil // our node is gone with its parent
	case err != nil:
		return look{}, err
	case r.stat.Pzxid != czxid:
		lk := look{children: r.children}
		lk.own, lk.ownCh, err = q.s.existsW(ctx, path)
		return lk, err
	}
	return look{children: r.children, own: freshRead(sid, czxid, value), kids: r.ch}, nil
}
