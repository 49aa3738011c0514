package zksync

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// Creating an acquisition's node, with recovery. A create whose answer is
// lost (the connection dropped) may have been applied: the node is then
// found by the GUID in its name, and adopted if the connection's session
// owns it. A create whose caller has left (its context ended) is undone,
// in the background if need be. Any failure after the node was created
// deletes it: an orphaned node would block the name for the session's life.

// A waiter is an acquisition's node, as enqueue created it.
type waiter struct {
	path  string
	sid   int64     // the session that owns the node
	bound *zsession // that session: its end ends the acquisition
	first look      // the first look at the queue, with the node's watch
	// cached says that a Semaphore made the node on an old read of the
	// name's node (see Semaphore.create): a limit other than its own at
	// the first look may be a replacement since, not a mismatch.
	cached bool
}

// enqueue creates this acquisition's node and sets a watch on it, and lists
// the queue in the same round trip, so that an acquisition that holds at
// once costs two round trips, like zk.Lock's create and list, not three.
// After a connection loss during the create it looks for its node by GUID.
// If ctx ends while a create is in flight, the create's node is deleted
// once its answer arrives: before enqueue returns if that is within the
// grace (see call), else in the background. From the creation on, the
// waiter follows its node's session: it fails with errSessionEnded when
// that session ends.
func (q *queue) enqueue(ctx context.Context, c class, value []byte, cache bool) (waiter, error) {
	var (
		path, sid = "", int64(0)
		czxid     int64 // the node's, when its create told it
		alone     bool  // with czxid: the node was the only child
		cached    bool  // made on an old read of the name's node
		err       error
	)
	guid := newGUID()
	prefix := nodePrefix(q.path, guid, c.kind)
	parents := 0
	for path == "" {
		if sid, err = q.s.reconnected(ctx, nil); err != nil {
			return waiter{}, q.fail(ctx, err, "connect")
		}
		owner := sid // the abandon callback may run after enqueue returned
		made, err := call(ctx, q.s, func() (createdNode, error) {
			n, err := q.createNode(ctx, prefix, guid, value, cache)
			if err == nil {
				q.s.track(n.path, owner)
				if q.s.conn.SessionID() != owner {
					// Made in a later session: the own-node read
					// below checks the owner.
					n.czxid, n.alone = 0, false
				}
			}
			return n, err
		}, func(n createdNode, err error) { q.abandon(owner, guid, n.path, err) })
		switch {
		case err == nil:
			// Also when ctx ended meanwhile: the next step fails at
			// once, and the node is deleted below.
			path, czxid, alone, cached = made.path, made.czxid, made.alone, made.cached
		case ctx.Err() != nil:
			// The answer came within the grace; a connection loss
			// leaves the outcome unknown, and the node is looked for
			// in the background.
			q.abandon(owner, guid, "", err)
			return waiter{}, q.fail(ctx, err, "create waiter node")
		case errors.Is(err, zk.ErrNoNode) && parents < 3:
			// The name's node is missing (or was reaped since it was
			// made: it is a container).
			if err := q.ensureParents(ctx); err != nil {
				return waiter{}, q.fail(ctx, err, "create node %s", q.path)
			}
			parents++
		case connLost(err):
			// The create may have been applied: find our node by its
			// GUID once connected again.
			q.s.o.rec.Debug(ctx, "create interrupted by a connection loss: looking for the node", opAttrs(q.name, "create waiter node", err)...)
			found, ferr := q.findGUID(ctx, guid)
			if ferr != nil {
				if ctx.Err() != nil {
					q.abandon(owner, guid, "", zk.ErrConnectionClosed)
				}
				return waiter{}, q.fail(ctx, ferr, "look for waiter node after a connection loss")
			}
			if found != "" {
				q.s.track(found, owner)
			}
			path = found
		default:
			return waiter{}, q.fail(ctx, err, "create waiter node")
		}
	}
	w := waiter{path: path, sid: sid, cached: cached}
	if w.bound = q.s.session(); w.bound == nil || w.bound.sid != sid {
		q.s.removeLater(path, sid)
		return waiter{}, sessionEnded(nil)
	}
	z := w.bound
	// Requests follow the session: one sent while disconnected would wait
	// for go-zookeeper's reconnection, which may bring a new session.
	fctx, stop := follow(ctx, z)
	defer stop()
	var b backoff.Backoff
	for {
		if alone {
			// The create saw the queue: no look (see Lease.follow).
			w.first = look{children: []string{path[len(q.path)+1:]}, own: freshRead(sid, czxid, value), fresh: true}
			break
		}
		// Others hold or wait: most likely this one waits, and watches
		// its node at once.
		w.first, err = q.look(fctx, path, c.limit != nil)
		if err != nil && ctx.Err() == nil && z.over() {
			return waiter{}, sessionEnded(z)
		}
		if err == nil || !connLost(err) || ctx.Err() != nil {
			break
		}
		// The node is there, or gone with its session: wait and see.
		q.s.o.rec.Debug(ctx, "waiting out a connection loss", opAttrs(q.name, "watch waiter node", err)...)
		cur, rerr := q.s.reconnected(ctx, z)
		if errors.Is(rerr, errSessionEnded) {
			return waiter{}, sessionEnded(z)
		}
		if rerr != nil {
			err = errors.Join(rerr, err)
			break
		}
		if cur != sid {
			return waiter{}, sessionEnded(z)
		}
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
		case <-z.ended():
		case <-t.C:
		}
		t.Stop()
	}
	switch {
	case err != nil:
		_ = q.s.remove(ctx, q.name, path, sid)
		return waiter{}, q.fail(ctx, err, "watch waiter node")
	case !w.first.own.ok:
		return waiter{}, q.gone(z, path, false)
	case w.first.own.stat.EphemeralOwner != sid:
		q.s.removeLater(path, w.first.own.stat.EphemeralOwner)
		return waiter{}, sessionEnded(z)
	}
	return w, nil
}

// A createdNode is what createNode made: the node's path and, when the
// create told it, its czxid (else 0).
type createdNode struct {
	path  string
	czxid int64
	alone bool // with czxid: it was the name's only child, so it holds
	// cached: made by q.create on an old read of the name's node.
	cached bool
}

// createNode creates the node of an acquisition: a protected ephemeral
// sequential child of the name's node, or what q.create makes.
//
// A plain create answers with the path only, and go-zookeeper has no
// create2, which would add the node's Stat. So the create is sent in a
// Multi with an unconditional rewrite of the name's node's (empty) data:
// every operation of a Multi is one transaction, with one zxid, so the
// rewrite's Mzxid is the new node's czxid, its fencing token. That spares
// a read of the node. The rewrite's Stat also counts the children: a node
// that is the only one holds, and the listing is spared too. When the rewrite is refused (ZooKeeper's ACL of the
// name's node lacks write), the queue goes back to a plain create and a
// read of the node for good.
func (q *queue) createNode(ctx context.Context, prefix, guid string, value []byte, cache bool) (createdNode, error) {
	if q.create != nil {
		p, cached, err := q.create(ctx, prefix, guid, value, cache)
		return createdNode{path: p, cached: cached}, err
	}
	flags := int32(zk.FlagEphemeral | zk.FlagSequence)
	if !q.plain.Load() {
		res, err := q.s.conn.Multi(
			&zk.CreateRequest{Path: prefix, Data: value, Acl: q.s.o.acl, Flags: flags},
			&zk.SetDataRequest{Path: q.path, Data: nil, Version: -1})
		switch {
		case err == nil && len(res) == 2 && res[1].Stat != nil:
			st := res[1].Stat
			return createdNode{path: res[0].String, czxid: st.Mzxid, alone: st.NumChildren == 1}, nil
		case errors.Is(err, zk.ErrNoAuth) && ctx.Err() == nil:
			q.plain.Store(true) // the rewrite was refused: nothing was made
		default:
			return createdNode{}, err
		}
	}
	p, err := q.s.conn.Create(prefix, value, flags, q.s.o.acl)
	return createdNode{path: p}, err
}

// findGUID returns the path of the node whose name holds guid, or "" if
// there is none, after the connection is back. Sync first makes the
// server catch up with anything the lost connection's create wrote.
func (q *queue) findGUID(ctx context.Context, guid string) (string, error) {
	var b backoff.Backoff
	for {
		if _, err := q.s.reconnected(ctx, nil); err != nil {
			return "", err
		}
		children, err := call(ctx, q.s, func() ([]string, error) {
			if _, err := q.s.conn.Sync(q.path); err != nil {
				return nil, err
			}
			ch, _, err := q.s.conn.Children(q.path)
			return ch, err
		}, nil)
		switch {
		case err == nil:
			if c := findPrefix(children, guidPrefix(guid)); c != "" {
				return q.path + "/" + c, nil
			}
			return "", nil
		case errors.Is(err, zk.ErrNoNode):
			return "", nil
		case !connLost(err):
			return "", err
		}
		if !b.Sleep(ctx) {
			return "", context.Cause(ctx)
		}
	}
}

// findPrefix returns the child that starts with prefix, or "".
func findPrefix(children []string, prefix string) string {
	for _, c := range children {
		if strings.HasPrefix(c, prefix) {
			return c
		}
	}
	return ""
}

// abandon cleans up after a create whose caller left: it deletes the
// node the create made, or, when the outcome is unknown, the node with guid.
func (q *queue) abandon(sid int64, guid, created string, err error) {
	switch {
	case err == nil:
		q.s.removeLater(created, sid)
	case connLost(err):
		q.s.cleanupLater(sid, "delete the node of an abandoned create under "+q.path, func() error {
			path, err := q.findGUID(context.Background(), guid)
			if err != nil || path == "" {
				return err
			}
			if err := q.s.conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			return nil
		})
	}
}

// ensureParents creates the root and the name's node as container nodes:
// the server deletes them once they are empty. For a queue with its own
// create (a Semaphore), which makes the name's node itself, only the
// ancestors.
func (q *queue) ensureParents(ctx context.Context) error {
	segs := strings.Split(q.path[1:], "/")
	if q.create != nil {
		segs = segs[:len(segs)-1]
	}
	for i := range segs {
		p := "/" + strings.Join(segs[:i+1], "/")
		_, err := call(ctx, q.s, func() (string, error) {
			return q.s.conn.CreateContainer(p, nil, zk.FlagContainer, q.s.o.acl)
		}, nil)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}
