package zksync

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// Waiting. A waiter watches only what can let it in: the nodes that block
// it (shared with other waiters of the session, see shareWatch), its own
// node (deleted from outside, its watch ended, or touched by a SetLimit)
// and its session's end. A wake-up is followed by a new look at the queue
// (a semaphore waiter's look reads the stored limit too), except at the
// deletion of a blocker of a lock, a writer or a semaphore waiter:
//
//   - a lock or writer right behind the oldest node holds (class.chain);
//   - a semaphore waiter near the head counts again without the deleted
//     node (see semWatch). Nodes older than its own only ever go, so the
//     nodes of its last look less those it saw deleted weigh at least
//     what is really ahead: if that fits, it holds. As it watches every
//     node ahead, the count is exact, and it holds at the deletion that
//     lets it in. Else it watches what keeps it out by that count,
//     reading only the nodes it does not watch yet; a node that read
//     finds gone then sends it back to a look (one whose deletion its
//     watch has brought meanwhile is counted, see watchBlockers). A
//     waiter further back looks again at any deletion it sees.
//
// Both check their own node's watch first: a SetLimit's touch or a
// ForceRelease's marker that comes before a deletion is in by then, and
// sends the waiter back to a look. A grant counted on a deletion that came
// after a SetLimit stored a lower limit, but before it touched this
// waiter's node, is one that SetLimit overlapped: SetLimit keeps the
// permits held.

// A look is one read of the queue, its requests in flight at once: the
// listing, and, when asked, the waiter's own node with a watch on it and
// the name's node (a semaphore's stored limit). Either order of the reads
// on the server is safe: a node in the listing existed when it was read,
// and a deletion after that either precedes the read of the own node
// (which then reports it) or fires the watch.
type look struct {
	children []string
	own      nodeRead
	ownCh    <-chan zk.Event
	stored   nodeRead
	// kids, set by lookFresh only, is a watch on the children, which
	// stands for the own node's watch until it fires.
	kids <-chan zk.Event
	// fresh says that the look is the create's answer (see createNode):
	// nothing is watched yet, and own is what a read would find.
	fresh bool
}

// look reads the queue; own, if not "", is the waiter's node to read and
// watch, and stored asks for the name's node too (without a watch: a
// waiter sets one only when it blocks). The name's node's data is read
// only when the listing's Stat of that node shows a version not read yet
// (see queue.lastStored): the data of one version of one node never
// changes, so a semaphore's steady look is the listing alone.
func (q *queue) look(ctx context.Context, own string, stored bool) (look, error) {
	var (
		lk               look
		wg               sync.WaitGroup
		parent           *zk.Stat
		cerr, serr, oerr error
	)
	list := func() {
		type res struct {
			children []string
			stat     *zk.Stat
		}
		r, err := call(ctx, q.s, func() (res, error) {
			ch, stat, err := q.s.conn.Children(q.path)
			if errors.Is(err, zk.ErrNoNode) {
				return res{}, nil
			}
			return res{ch, stat}, err
		}, nil)
		lk.children, parent, cerr = r.children, r.stat, err
	}
	if own == "" && !stored {
		// The listing alone, as a waiter woken by a deletion looks: on
		// this goroutine, which saves a hand-off on the grant's path.
		list()
		return lk, cerr
	}
	readStored := func() {
		lk.stored, serr = q.readStored(ctx)
	}
	last := q.lastStored.Load()
	if stored && last == nil {
		wg.Go(readStored) // nothing to compare with: read it with the listing
	}
	wg.Go(list)
	if own != "" {
		lk.own, lk.ownCh, oerr = q.s.existsW(ctx, own)
	}
	wg.Wait()
	if stored && last != nil && cerr == nil {
		switch {
		case parent == nil:
			// No node: nothing stored.
		case last.stat.Czxid == parent.Czxid && last.stat.Version == parent.Version:
			lk.stored = nodeRead{true, last.data, parent}
		default:
			readStored()
		}
	}
	return lk, errors.Join(oerr, cerr, serr)
}

// readStored reads the name's node, and keeps what it read for the next
// look (see look).
func (q *queue) readStored(ctx context.Context) (nodeRead, error) {
	r, err := call(ctx, q.s, func() (nodeRead, error) {
		data, stat, err := q.s.conn.Get(q.path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil
		}
		return nodeRead{true, data, stat}, err
	}, nil)
	if err == nil && r.ok {
		q.lastStored.Store(&r)
	}
	return r, err
}

// wait blocks until w's node holds, watching only the nodes that block it,
// its own node and its session; w's first look is its first look. It fails
// with errSessionEnded (wrapped) as soon as the node's session ends. On
// failure the node is deleted (in the background once ctx's grace is over).
func (q *queue) wait(ctx context.Context, c class, w waiter, try bool) (l *Lease, err error) {
	path, sid, z := w.path, w.sid, w.bound
	name := path[strings.LastIndexByte(path, '/')+1:]
	stat, own := w.first.own.stat, w.first.ownCh
	first := &w.first
	changed := false // the own node's data changed since it was read
	defer func() {
		if err != nil && ctx.Err() != nil && !try {
			// The grant may have raced the cancellation: a waiter that
			// holds already takes the lock rather than pass it on.
			if held := q.lastLook(ctx, c, path, name, sid, stat, own, z); held != nil {
				l, err = held, nil
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, errSessionEnded):
			// The node is gone with its session (or, after Close, is
			// deleted by Close).
		default:
			// err says why; a deletion that is not confirmed goes on in
			// the background.
			_ = q.s.remove(ctx, q.name, path, sid)
		}
	}()
	var b backoff.Backoff
	// Requests follow the session too: one sent while disconnected would
	// wait for go-zookeeper's reconnection, which may bring a new session.
	fctx, stop := follow(ctx, z)
	defer stop()
	retry := func(err error) error {
		if ctx.Err() == nil && z.over() {
			return sessionEnded(z)
		}
		if !connLost(err) {
			return q.fail(ctx, err, "wait")
		}
		q.s.o.rec.Debug(ctx, "waiting out a connection loss", opAttrs(q.name, "wait", err)...)
		cur, rerr := q.s.reconnected(ctx, z)
		if errors.Is(rerr, errSessionEnded) {
			return sessionEnded(z)
		}
		if rerr != nil {
			return q.fail(ctx, errors.Join(rerr, err), "wait")
		}
		if cur != sid {
			return sessionEnded(z)
		}
		t := time.NewTimer(b.Next())
		defer t.Stop()
		select {
		case <-ctx.Done():
			return q.fail(ctx, err, "wait")
		case <-z.ended():
			return sessionEnded(z)
		case <-t.C:
			return nil
		}
	}
	// A semaphore waiter counts between looks (see counted): known is
	// the queue up to and with its node, as its last look showed it, less
	// the nodes whose deletion it saw since; klimit is the limit that look
	// checked.
	var (
		known   []node
		klimit  int64
		counted bool // this pass decides on known, without a look
	)
	// hold is a grant decided without a look: a lock or writer whose
	// blocker, the oldest node at the last look, was deleted (this one is
	// the oldest now, as no node older than it can come, class.chain), or
	// a semaphore waiter that fits once the deletions it saw are counted.
	// It holds unless its own node changed first, whose event would be in
	// by now: then again says to look again.
	hold := func() (l *Lease, again bool) {
		select {
		case oev, ok := <-own:
			if ok && oev.Type == zk.EventNodeDataChanged {
				changed = true
			}
			own = nil
			return nil, true
		default:
		}
		if e := q.s.current(); e != nil && e.zs == z {
			return newLease(q, path, sid, stat, e, leaseWatch{own: own}), false
		}
		return nil, false
	}
	for {
		lk := look{}
		var (
			nodes []node
			me    int
			limit int64
		)
		decided := counted // on known, without a look
		initial := first != nil
		if counted {
			counted, err = false, nil
			nodes, me, limit = known, len(known)-1, klimit
		} else {
			read := own == nil // this look reads the own node
			if first != nil {
				lk, first, read = *first, nil, true
			} else {
				ownPath := ""
				if own == nil {
					ownPath = path
				}
				if lk, err = q.look(fctx, ownPath, c.limit != nil); err != nil {
					if err := retry(err); err != nil {
						return nil, err
					}
					continue
				}
				if own == nil {
					if !lk.own.ok {
						return nil, q.gone(z, path, changed)
					}
					own = lk.ownCh
				}
			}
			if read {
				if isForced(lk.own.data) {
					return nil, errForced(q.name, path)
				}
				changed = false
			}
			nodes = sortNodes(lk.children)
			if me = index(nodes, name); me < 0 {
				return nil, q.gone(z, path, changed)
			}
			limit, err = q.checkLimit(c, lk.stored)
			known = nil
			if c.limit != nil && err == nil {
				known, klimit = nodes[:me+1], limit
			}
		}
		var blockers []node
		switch {
		case errors.Is(err, errLimitStale):
			// Decide nothing: the SetLimit touches our node next.
		case initial && w.cached && errors.Is(err, distsync.ErrLimitMismatch):
			return nil, errors.Join(errCachedStale, err)
		case err != nil:
			return nil, err
		default:
			blockers = c.blockers(nodes, me, limit)
		}
		if len(blockers) == 0 && err == nil {
			if decided {
				if l, again := hold(); l != nil {
					return l, nil
				} else if again {
					continue
				}
			}
			e := q.s.current()
			if e == nil || e.zs != z {
				// Disconnected just now: hold only once the session is
				// back (the node may be gone with it).
				if err := retry(zk.ErrConnectionClosed); err != nil {
					return nil, err
				}
				continue
			}
			return newLease(q, path, sid, stat, e, leaseWatch{own: own, fresh: own == nil && lk.fresh}), nil
		}
		if try && err == nil {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.name)
		}
		if own == nil {
			// A fresh node (see createNode) is watched before it waits.
			r, ch, err := q.s.existsW(fctx, path)
			switch {
			case err != nil:
				if err := retry(err); err != nil {
					return nil, err
				}
				continue
			case !r.ok:
				return nil, q.gone(z, path, changed)
			case isForced(r.data):
				return nil, errForced(q.name, path)
			}
			own = ch
		}
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(own)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(z.ended())},
		}
		if c.chain && me == 1 {
			// The blocker's deletion may have come during the look.
			if ch := q.s.sharedWatch(q.path + "/" + blockers[0].name); ch != nil {
				select {
				case ev, ok := <-ch:
					if ok && ev.Type == zk.EventNodeDeleted {
						if l, again := hold(); l != nil {
							return l, nil
						} else if again {
							continue
						}
					}
				default:
				}
			}
		}
		watched := blockers
		if c.chain && me >= 2 && len(blockers) == 1 {
			// Also the node before the blocker: at its deletion this
			// waiter looks again, and learns that its blocker is the
			// oldest node before the blocker goes.
			watched = []node{nodes[me-2], blockers[0]}
		}
		far := false // a semaphore waiter that looks at any deletion
		if known != nil && len(blockers) > 0 {
			watched, far = semWatch(nodes, me, limit, c.weight, blockers)
		}
		chans, gone, err := q.watchBlockers(fctx, watched)
		if err != nil {
			if err := retry(err); err != nil {
				return nil, err
			}
			continue
		}
		if gone != nil {
			if known != nil && (!decided || chans == nil) {
				// Count without the nodes the look just showed and
				// that are gone now, or whose deletion a watch of
				// this waiter just brought (chans is then nil, see
				// watchBlockers). After a count, a node found gone
				// by a read says that known is stale: look.
				for i, g := range gone {
					if g {
						known = without(known, watched[i].name)
					}
				}
				counted = true
			}
			continue
		}
		for _, ch := range chans {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if len(blockers) > 0 && q.s.o.rec.Enabled(ctx, slog.LevelDebug) {
			q.s.o.rec.Debug(ctx, "waiting", slog.String("name", q.name), slog.String("node", name),
				slog.String("behind", blockers[len(blockers)-1].name))
		}
		chosen, recv, ok := reflect.Select(cases)
		if chosen == len(cases)-1 && c.chain && me == 1 {
			if ev, _ := recv.Interface().(zk.Event); ok && ev.Type == zk.EventNodeDeleted {
				if l, again := hold(); l != nil || again {
					if l != nil {
						return l, nil
					}
					continue
				}
			}
		}
		if chosen >= 3 && known != nil && own != nil {
			// A semaphore blocker's deletion: count again without it,
			// and without any other blocker whose deletion is in.
			ev, _ := recv.Interface().(zk.Event)
			if counted = ok && ev.Type == zk.EventNodeDeleted && !far; counted {
				known, counted = countDeleted(known, watched, chans, chosen-3)
			}
			continue
		}
		switch chosen {
		case 0:
			return nil, q.fail(ctx, context.Cause(ctx), "wait")
		case 1:
			// Deleted, changed or not watched any more: look again. A
			// change is a SetLimit's touch or ForceRelease's marker.
			if ev, _ := recv.Interface().(zk.Event); ok && ev.Type == zk.EventNodeDataChanged {
				changed = true
			}
			own = nil
		case 2:
			return nil, sessionEnded(z)
		}
		// A blocker went away or a watch ended: look again.
	}
}

// watchBlockers returns a watch on each of blockers, nodes the last
// listing showed, in their order, or, when any of them is gone already,
// which are (gone; the watches are then not all set). A node this Session
// watches already, by a watch that has not fired, costs no request: the
// listing came after that watch was set or the watch after the listing,
// and either way the watch fires at the node's deletion (a deletion
// before the listing's answer fires it before that answer). Nor does a
// node whose deletion that watch has just brought: it is gone, and the
// others are not read (a waiter whose look raced a release counts or
// looks again at once, without a round trip on that grant's path). The
// others are read, all at once.
func (q *queue) watchBlockers(ctx context.Context, blockers []node) (chans []<-chan zk.Event, gone []bool, err error) {
	chans = make([]<-chan zk.Event, len(blockers))
	var need []int
	for i, bn := range blockers {
		ch, deleted := q.s.armed(q.path + "/" + bn.name)
		switch {
		case deleted:
			if gone == nil {
				gone = make([]bool, len(blockers))
			}
			gone[i] = true
		case ch != nil:
			chans[i] = ch
		default:
			need = append(need, i)
		}
	}
	if gone != nil {
		return nil, gone, nil
	}
	errs := make([]error, len(blockers))
	get := func(i int) {
		var r nodeRead
		r, chans[i], errs[i] = q.s.getShared(ctx, q.path+"/"+blockers[i].name)
		if errs[i] == nil && !r.ok {
			chans[i] = nil
		}
	}
	if len(need) == 1 {
		get(need[0])
	} else {
		var wg sync.WaitGroup
		for _, i := range need {
			wg.Go(func() { get(i) })
		}
		wg.Wait()
	}
	if err = errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	for i, ch := range chans {
		if ch == nil {
			if gone == nil {
				gone = make([]bool, len(blockers))
			}
			gone[i] = true
		}
	}
	return chans, gone, nil
}

// checkLimit returns the limit a semaphore class counts with, checked
// against the stored one; 0 for other classes.
func (q *queue) checkLimit(c class, stored nodeRead) (int64, error) {
	if c.limit == nil {
		return 0, nil
	}
	limit, err := c.limit(stored)
	if err != nil {
		return 0, err
	}
	if c.weight > limit {
		return 0, distsync.Errorf(distsync.ErrInvalidConfig, nil, "%d permits asked for, the limit of %q is now %d", c.weight, q.name, limit)
	}
	return limit, nil
}

// gone is the error for a waiter node that disappeared: deleted by someone,
// or with its session. changed says its data was changed just before, as
// ForceRelease does.
func (q *queue) gone(z *zsession, path string, changed bool) error {
	if cur, _, _, _ := q.s.state(); z.over() || cur != z.sid {
		return sessionEnded(z)
	}
	if changed {
		return errForced(q.name, path)
	}
	return distsync.Lost(distsync.LossDeleted, nil, "%q: waiter node %s was deleted", q.name, path)
}

// lastLook is one more look at the queue after ctx ended, within ctx's
// grace: it returns the Lease if the node holds after all, else nil.
func (q *queue) lastLook(ctx context.Context, c class, path, name string, sid int64, stat *zk.Stat, own <-chan zk.Event, z *zsession) *Lease {
	lctx, cancel := cleanupContext(ctx)
	defer cancel()
	lk, err := q.look(lctx, "", c.limit != nil)
	if err != nil {
		return nil
	}
	nodes := sortNodes(lk.children)
	me := index(nodes, name)
	if me < 0 {
		return nil
	}
	limit, err := q.checkLimit(c, lk.stored)
	if err != nil || len(c.blockers(nodes, me, limit)) > 0 {
		return nil
	}
	if e := q.s.current(); e != nil && e.zs == z && e.zs.sid == sid {
		return newLease(q, path, sid, stat, e, leaseWatch{own: own})
	}
	return nil
}
