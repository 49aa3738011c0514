package zksync

import "context"

// FreshLook creates a lock node under the node of name as Lock does, runs
// between (if not nil) with the name's node, then takes the first look of
// a fresh lease's follower at the queue. It reports the node, the czxid the look found for it, and
// whether the look stood for a read of the node (the fast path of
// lookFresh). The node is deleted before it returns.
func FreshLook(ctx context.Context, s *Session, name string, between func(parent string)) (path string, czxid int64, fast bool, err error) {
	q, err := s.queue(name)
	if err != nil {
		return "", 0, false, err
	}
	if err := q.ensureParents(ctx); err != nil {
		return "", 0, false, err
	}
	sid, _, _, _ := s.state()
	guid := newGUID()
	n, err := q.createNode(ctx, nodePrefix(q.path, guid, lockKind), guid, q.identity(), false)
	if err != nil {
		return "", 0, false, err
	}
	defer func() { _ = s.conn.Delete(n.path, -1) }()
	if n.czxid == 0 {
		return n.path, 0, false, nil
	}
	if between != nil {
		between(q.path)
	}
	lk, err := q.lookFresh(ctx, n.path, sid, n.czxid, q.identity())
	if err != nil || !lk.own.ok {
		return n.path, 0, false, err
	}
	return n.path, lk.own.stat.Czxid, lk.kids != nil, nil
}

// ForcedMarker is the data ForceRelease writes over a node before it
// deletes it.
var ForcedMarker = forcedMarker

// WatchShared reads the node at path with the Session's shared watch on
// it, as a waiter does, and reports whether it exists.
func WatchShared(ctx context.Context, s *Session, path string) (bool, error) {
	r, _, err := s.getShared(ctx, path)
	return r.ok, err
}

// Armed is Session.armed: whether the shared watch on path is set and has
// not fired, and whether it fired just now with the node's deletion.
func Armed(s *Session, path string) (watching, deleted bool) {
	ch, deleted := s.armed(path)
	return ch != nil, deleted
}
