package zksync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// cleanupTimeout bounds the foreground attempt to delete a node after a
// failure or a Release; past it the deletion goes on in the background.
const cleanupTimeout = 5 * time.Second

// A queue is the waiter queue of one name: protected ephemeral sequential
// children of the name's node, served in sequence order. Every primitive is
// a queue plus a rule saying which older children block a new one.
type queue struct {
	s    *Session
	path string // the name's node
	// parentData is the data of the name's node when this queue creates
	// it; checkParent, if set, validates the data of an existing one.
	parentData  []byte
	checkParent func(ctx context.Context, data []byte, version int32) error
}

func newQueue(s *Session, name string) (*queue, error) {
	if s == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil zookeeper session")
	}
	p, err := NodePath(s.o.root, name)
	if err != nil {
		return nil, err
	}
	return &queue{s: s, path: p}, nil
}

// A node is a parsed child of the name's node.
type node struct {
	name string
	seq  int64
	kind string // "lock", "read", "write", "permit", "latch", ...
}

// seqDigits is the width of the sequence number ZooKeeper appends.
const seqDigits = 10

// parseNode reads a child name: "_c_<guid>-<kind>-NNNNNNNNNN" as written by
// this package, go-zookeeper's zk.Lock and Curator; any name ending in a
// sequence number is accepted (its kind is the text after the last '-'
// before the number). Other names do not take part in the queue.
func parseNode(name string) (node, bool) {
	if len(name) < seqDigits {
		return node{}, false
	}
	seq, err := strconv.ParseInt(name[len(name)-seqDigits:], 10, 64)
	if err != nil || seq < 0 {
		return node{}, false
	}
	rest := strings.TrimSuffix(name[:len(name)-seqDigits], "-")
	kind := rest[strings.LastIndexByte(rest, '-')+1:]
	return node{name: name, seq: seq, kind: kind}, true
}

// sortNodes parses and sorts children by sequence number.
func sortNodes(children []string) []node {
	nodes := make([]node, 0, len(children))
	for _, c := range children {
		if n, ok := parseNode(c); ok {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b node) int { return int(a.seq - b.seq) })
	return nodes
}

// A class is a kind of acquisition: the kind in its nodes' names and the
// rule saying which older nodes block it. blockers gets the sorted nodes
// and the index of the acquisition's own node (len(nodes) for one not yet
// created) and returns the nodes to wait for: none when it holds. It must
// return only older nodes, and a set that a deletion below it does not
// change, so that watching exactly those nodes misses no grant.
type class struct {
	kind     string
	blockers func(nodes []node, me int) []node
	// oneSession makes the end of the session a waiter's node was created
	// in fail the acquisition with ErrLost, instead of queueing again in
	// the new session: a candidate that lost its place must say so.
	oneSession bool
}

// exclusive waits for the next older node of any kind: a mutex, a writer,
// a candidate.
func exclusive(kind string) class {
	return class{kind: kind, blockers: func(nodes []node, me int) []node {
		if me == 0 {
			return nil
		}
		return nodes[me-1 : me]
	}}
}

// shared waits for the next older node that is not of its own kind: a
// reader waits for the next older writer only.
func shared(kind string) class {
	return class{kind: kind, blockers: func(nodes []node, me int) []node {
		for i := me - 1; i >= 0; i-- {
			if nodes[i].kind != kind {
				return nodes[i : i+1]
			}
		}
		return nil
	}}
}

// counting holds when fewer than limit nodes are older, and otherwise waits
// for its limit next older nodes: a deletion among them may admit it, and
// one below them leaves them and the wait unchanged.
func counting(kind string, limit int) class {
	return class{kind: kind, blockers: func(nodes []node, me int) []node {
		if me < limit {
			return nil
		}
		return nodes[me-limit : me]
	}}
}

// errSessionChanged means the node was created in a session that has
// ended; the acquisition starts over in the new one.
var errSessionChanged = errors.New("zookeeper session changed")

// acquire creates a node of class c with value as data and waits until it
// holds. With try, it fails with ErrWouldBlock instead of waiting. On any
// failure the node is deleted before acquire returns. When ctx ends,
// acquire waits for the requests in flight and the deletion for at most
// distsync.CancelGrace; past it the deletion goes on in the background
// until ZooKeeper answers or the session ends.
func (q *queue) acquire(ctx context.Context, c class, value []byte, try bool) (*Lease, error) {
	ctx = withGrace(ctx)
	if try {
		// A cheap look first: a held name costs a read, not a write.
		children, err := call(ctx, q.s, func() ([]string, error) {
			ch, _, err := q.s.conn.Children(q.path)
			return ch, err
		}, nil)
		if errors.Is(err, zk.ErrNoNode) {
			children, err = nil, nil
		}
		if err != nil {
			return nil, q.fail(ctx, err, "list waiters")
		}
		nodes := sortNodes(children)
		if len(c.blockers(nodes, len(nodes))) > 0 {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.path)
		}
	}
	for {
		w, err := q.enqueue(ctx, c, value)
		if errors.Is(err, errSessionChanged) {
			if c.oneSession {
				return nil, distsync.Errorf(distsync.ErrLost, err, "new waiter node ended with its session")
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		l, err := q.wait(ctx, c, w, try)
		if errors.Is(err, errSessionChanged) {
			if c.oneSession {
				return nil, distsync.Errorf(distsync.ErrLost, err, "waiter node %s ended with its session 0x%x", w.path, w.sid)
			}
			continue
		}
		return l, err
	}
}

// fail turns a go-zookeeper error into a contract error.
func (q *queue) fail(ctx context.Context, err error, format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	switch {
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), ignoreCtx(ctx, err)), "%s", op)
	case errors.Is(err, distsync.ErrClosed), errors.Is(err, distsync.ErrLost), errors.Is(err, distsync.ErrWouldBlock):
		return err
	case errors.Is(err, zk.ErrClosing), q.closed():
		return distsync.Errorf(distsync.ErrClosed, err, "%s", op)
	default:
		return distsync.Errorf(distsync.ErrUnavailable, err, "%s", op)
	}
}

// closed reports whether the Session was closed (a call on it then fails
// with the connection's error, which is not a backend failure).
func (q *queue) closed() bool {
	_, _, _, closed := q.s.state()
	return closed
}

// ignoreCtx drops err when it is ctx's own error, so it is not joined twice.
func ignoreCtx(ctx context.Context, err error) error {
	if err == context.Cause(ctx) || err == ctx.Err() {
		return nil
	}
	return err
}

// connLost reports whether err means the request's outcome is unknown or
// it was not sent because the connection is down: worth retrying once the
// connection is back.
func connLost(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}

// epochEnded is the error of a wait whose epoch ended: errSessionChanged,
// or ErrClosed when the Session was closed.
func (q *queue) epochEnded(ctx context.Context) error {
	if q.closed() {
		return q.fail(ctx, distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed"), "wait")
	}
	return errSessionChanged
}

// follow returns ctx, also cancelled (with cause errSessionChanged) when e
// ends, and the function that stops following; with a nil e, ctx itself.
func follow(ctx context.Context, e *epoch) (context.Context, func()) {
	if e == nil {
		return ctx, func() {}
	}
	fctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-e.done:
			cancel(errSessionChanged)
		case <-done:
		}
	}()
	return fctx, func() {
		close(done)
		cancel(context.Canceled)
	}
}

// reconnected waits until the connection has a session again and returns
// its ID.
func (q *queue) reconnected(ctx context.Context) (int64, error) {
	return q.reconnectedIn(ctx, nil)
}

// reconnectedIn is reconnected that fails with errSessionChanged as soon
// as e ends; with a nil e it is reconnected.
func (q *queue) reconnectedIn(ctx context.Context, e *epoch) (int64, error) {
	for {
		sid, connected, changed, closed := q.s.state()
		switch {
		case closed:
			return 0, distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed")
		case connected:
			return sid, nil
		}
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-e.ended():
			return 0, errSessionChanged
		case <-changed:
		}
	}
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// enqueue creates this acquisition's node and sets a watch on it, and lists
// the queue in the same round trip (listing; nil if that read failed), so
// that an acquisition that holds at once costs two round trips, like
// zk.Lock's create and list, not three. After a connection loss during the
// create, whose outcome is unknown, it looks for its node by the GUID in
// the name and adopts it if the connection's session owns it. If ctx ends
// while a create is in flight, the create's node is deleted once its answer
// arrives: before enqueue returns if that is within the grace (see call),
// else in the background. For a class bound to one session, the waiter
// follows the epoch the node was created in from then on (see wait).
func (q *queue) enqueue(ctx context.Context, c class, value []byte) (waiter, error) {
	var (
		path, sid = "", int64(0)
		err       error
	)
	guid := newGUID()
	prefix := q.path + "/" + "_c_" + guid + "-" + c.kind + "-"
	madeParents := false
	for path == "" {
		if sid, err = q.reconnected(ctx); err != nil {
			return waiter{}, q.fail(ctx, err, "connect")
		}
		owner := sid // the abandon callback may run after enqueue returned
		created, err := call(ctx, q.s, func() (string, error) {
			return q.s.conn.Create(prefix, value, zk.FlagEphemeral|zk.FlagSequence, q.s.o.acl)
		}, func(created string, err error) { q.abandon(owner, guid, created, err) })
		switch {
		case err == nil:
			// Also when ctx ended meanwhile: the next step fails at
			// once, and the node is deleted below.
			path = created
		case ctx.Err() != nil:
			// The answer came within the grace; a connection loss
			// leaves the outcome unknown, and the node is looked for
			// in the background.
			q.abandon(owner, guid, "", err)
			return waiter{}, q.fail(ctx, err, "create waiter node")
		case errors.Is(err, zk.ErrNoNode) && !madeParents:
			if err := q.ensureParents(ctx); err != nil {
				return waiter{}, q.fail(ctx, err, "create %q", q.path)
			}
			madeParents = true
		case connLost(err):
			// The create may have been applied: find our node by its
			// GUID once connected again.
			found, ferr := q.findGUID(ctx, guid)
			if ferr != nil {
				if ctx.Err() != nil {
					q.abandon(owner, guid, "", zk.ErrConnectionClosed)
				}
				return waiter{}, q.fail(ctx, ferr, "look for waiter node after a connection loss")
			}
			path = found
		default:
			return waiter{}, q.fail(ctx, err, "create waiter node")
		}
	}
	w := waiter{path: path, sid: sid}
	if c.oneSession {
		// Bound to one session: follow it as a Lease does (see
		// Lease.follow), from the creation on. The wait ends when the
		// epoch ends, at once, not when go-zookeeper has reconnected
		// and the requests and watches fail.
		if w.bound = q.s.current(); w.bound == nil || w.bound.sid != sid {
			q.s.removeLater(path, sid)
			return waiter{}, q.epochEnded(ctx)
		}
	}
	fctx, stop := follow(ctx, w.bound)
	defer stop()
	var exists bool
	b := newBackoff()
	for {
		exists, w.stat, w.own, w.listing, err = q.existsAndList(fctx, path)
		if err != nil && ctx.Err() == nil && w.bound.over() {
			q.s.removeLater(path, sid)
			return waiter{}, q.epochEnded(ctx)
		}
		if err == nil || !connLost(err) || ctx.Err() != nil {
			break
		}
		// The node is there, or gone with its session: wait and see.
		cur, rerr := q.reconnectedIn(ctx, w.bound)
		if errors.Is(rerr, errSessionChanged) {
			q.s.removeLater(path, sid)
			return waiter{}, q.epochEnded(ctx)
		}
		if rerr != nil {
			err = errors.Join(rerr, err)
			break
		}
		if cur != sid {
			return waiter{}, errSessionChanged
		}
		select {
		case <-ctx.Done():
		case <-w.bound.ended():
		case <-time.After(b.next()):
		}
	}
	switch {
	case err != nil:
		_ = q.remove(ctx, path, sid)
		return waiter{}, q.fail(ctx, err, "watch waiter node")
	case !exists:
		// Only the end of its session deletes a fresh node unasked.
		return waiter{}, errSessionChanged
	case w.stat.EphemeralOwner != sid:
		q.s.removeLater(path, w.stat.EphemeralOwner)
		return waiter{}, errSessionChanged
	}
	return w, nil
}

// A waiter is an acquisition's node, as enqueue created it.
type waiter struct {
	path    string
	sid     int64           // the session that owns the node
	stat    *zk.Stat        // the node's, when created
	own     <-chan zk.Event // a watch on the node
	listing []string        // the queue, read just after; nil if that read failed
	// bound, for a class bound to one session, is the epoch the node was
	// created in: the acquisition fails when it ends.
	bound *epoch
}

// existsW reports whether the node at path exists and, if it does, sets a
// watch that fires when it is deleted or its data changes. It reads with
// GetW, not ExistsW: an ExistsW on a missing node leaves a watch for its
// creation on the server and in go-zookeeper, and a node of ours is never
// created again, so that watch would stay for the session's life.
func (q *queue) existsW(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	type res struct {
		ok   bool
		stat *zk.Stat
		ch   <-chan zk.Event
	}
	r, err := call(ctx, q.s, func() (res, error) {
		ok, stat, ch, err := getW(q.s.conn, path)
		return res{ok, stat, ch}, err
	}, nil)
	return r.ok, r.stat, r.ch, err
}

// getW is ExistsW that sets no watch on a missing node (see existsW).
func getW(conn *zk.Conn, path string) (ok bool, stat *zk.Stat, ch <-chan zk.Event, err error) {
	_, stat, ch, err = conn.GetW(path)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil, nil, nil
	}
	if err != nil {
		return false, nil, nil, err
	}
	return true, stat, ch, nil
}

// existsAndList is existsW on path and a listing of the queue, both
// requests in flight at once. The listing is nil if it failed. Either order
// of the two on the server is safe: a node in the listing existed when it
// was read, and a deletion after that either precedes the exists (which
// then reports it) or fires the watch.
func (q *queue) existsAndList(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, []string, error) {
	type res struct {
		ok       bool
		stat     *zk.Stat
		ch       <-chan zk.Event
		children []string
	}
	r, err := call(ctx, q.s, func() (res, error) {
		var (
			r    res
			cerr error
			done = make(chan struct{})
		)
		go func() {
			defer close(done)
			r.children, _, cerr = q.s.conn.Children(q.path)
		}()
		var err error
		r.ok, r.stat, r.ch, err = getW(q.s.conn, path)
		<-done
		if cerr != nil {
			r.children = nil
		}
		return r, err
	}, nil)
	return r.ok, r.stat, r.ch, r.children, err
}

// findGUID returns the path of the node whose name holds guid, or "" if
// there is none, after the connection is back. Sync first makes the
// server catch up with anything the lost connection's create wrote.
func (q *queue) findGUID(ctx context.Context, guid string) (string, error) {
	b := newBackoff()
	for {
		if _, err := q.reconnected(ctx); err != nil {
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
			for _, c := range children {
				if strings.HasPrefix(c, "_c_"+guid+"-") {
					return q.path + "/" + c, nil
				}
			}
			return "", nil
		case errors.Is(err, zk.ErrNoNode):
			return "", nil
		case !connLost(err):
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(b.next()):
		}
	}
}

// abandon cleans up after a create whose caller left: it deletes the
// node the create made, or, when the outcome is unknown, the node with guid.
func (q *queue) abandon(sid int64, guid, created string, err error) {
	switch {
	case err == nil:
		q.s.removeLater(created, sid)
	case connLost(err):
		q.s.cleanupLater(sid, func() error {
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

// remove deletes path, a node of session sid, waiting for at most
// cleanupTimeout, and until ctx's grace deadline once ctx has ended (see
// cleanupContext), and going on in the background after that. It returns
// an error wrapping ErrUnavailable when the deletion was not confirmed.
func (q *queue) remove(ctx context.Context, path string, sid int64) error {
	if cur, _, _, _ := q.s.state(); cur != sid {
		return nil // the session ended and its nodes with it
	}
	ctx, cancelGrace := cleanupContext(ctx)
	defer cancelGrace()
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	_, err := call(ctx, q.s, func() (struct{}, error) {
		return struct{}{}, q.s.conn.Delete(path, -1)
	}, nil)
	if err == nil || errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	q.s.removeLater(path, sid)
	return distsync.Errorf(distsync.ErrUnavailable, err, "delete %q not confirmed; retrying in the background", path)
}

// ensureParents creates the root and the name's node as container nodes
// (the server deletes them once they are empty), with parentData on the
// name's node, and checks the data of an existing one with checkParent.
func (q *queue) ensureParents(ctx context.Context) error {
	segs := strings.Split(q.path[1:], "/")
	for i := range segs {
		p := "/" + strings.Join(segs[:i+1], "/")
		var data []byte
		if i == len(segs)-1 {
			data = q.parentData
		}
		_, err := call(ctx, q.s, func() (string, error) {
			return q.s.conn.CreateContainer(p, data, zk.FlagContainer, q.s.o.acl)
		}, nil)
		if errors.Is(err, zk.ErrNodeExists) {
			err = nil
			if i == len(segs)-1 && q.checkParent != nil {
				err = q.checkExisting(ctx)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkExisting runs checkParent on the data of the name's node.
func (q *queue) checkExisting(ctx context.Context) error {
	type res struct {
		data []byte
		stat *zk.Stat
	}
	r, err := call(ctx, q.s, func() (res, error) {
		data, stat, err := q.s.conn.Get(q.path)
		return res{data, stat}, err
	}, nil)
	if err != nil {
		return err
	}
	return q.checkParent(ctx, r.data, r.stat.Version)
}

// wait blocks until w's node holds, watching only the nodes that block it
// and its own node; w's listing, if not nil, is the first look. For a
// class bound to one session it also follows w's epoch, and fails with
// errSessionChanged (the node deleted in the background if its session
// lives on) as soon as that ends.
func (q *queue) wait(ctx context.Context, c class, w waiter, try bool) (l *Lease, err error) {
	path, sid, stat, own, listing, bound := w.path, w.sid, w.stat, w.own, w.listing, w.bound
	name := path[strings.LastIndexByte(path, '/')+1:]
	defer func() {
		if err != nil && ctx.Err() != nil && !try {
			// The grant may have raced the cancellation: a waiter that
			// holds already takes the lock rather than pass it on.
			if held := q.lastLook(ctx, c, path, name, sid, stat, own); held != nil {
				l, err = held, nil
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, errSessionChanged):
			// The node is gone with its session, or, if the epoch
			// ended with a mere disconnection, goes once it is back.
			q.s.removeLater(path, sid)
		default:
			if rerr := q.remove(ctx, path, sid); rerr != nil && ctx.Err() == nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	b := newBackoff()
	// Requests follow the epoch too: one sent while disconnected would
	// wait for go-zookeeper's reconnection.
	fctx, stop := follow(ctx, bound)
	defer stop()
	retry := func(err error) error {
		if ctx.Err() == nil && bound.over() {
			return q.epochEnded(ctx)
		}
		if !connLost(err) {
			return q.fail(ctx, err, "wait")
		}
		cur, rerr := q.reconnectedIn(ctx, bound)
		if errors.Is(rerr, errSessionChanged) {
			return rerr
		}
		if rerr != nil {
			return q.fail(ctx, errors.Join(rerr, err), "wait")
		}
		if cur != sid {
			return errSessionChanged
		}
		select {
		case <-ctx.Done():
			return q.fail(ctx, err, "wait")
		case <-bound.ended():
			return q.epochEnded(ctx)
		case <-time.After(b.next()):
			return nil
		}
	}
	for {
		if own == nil {
			exists, _, ch, err := q.existsW(fctx, path)
			if err != nil {
				if err := retry(err); err != nil {
					return nil, err
				}
				continue
			}
			if !exists {
				return nil, q.gone(sid, name)
			}
			own = ch
		}
		children, err := listing, error(nil)
		listing = nil
		if children == nil {
			children, err = call(fctx, q.s, func() ([]string, error) {
				ch, _, err := q.s.conn.Children(q.path)
				return ch, err
			}, nil)
		}
		if err != nil {
			if err := retry(err); err != nil {
				return nil, err
			}
			continue
		}
		nodes := sortNodes(children)
		me := slices.IndexFunc(nodes, func(n node) bool { return n.name == name })
		if me < 0 {
			return nil, q.gone(sid, name)
		}
		blockers := c.blockers(nodes, me)
		if len(blockers) == 0 {
			e := q.s.current()
			if bound != nil && e != bound {
				return nil, q.epochEnded(ctx)
			}
			if e == nil || e.sid != sid {
				// Disconnected just now: hold only once the session is
				// back (the node may be gone with it).
				if err := retry(zk.ErrConnectionClosed); err != nil {
					return nil, err
				}
				continue
			}
			return newLease(q, path, sid, stat, e, own), nil
		}
		if try {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.path)
		}
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(own)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(bound.ended())},
		}
		gone := false
		for _, bn := range blockers {
			exists, _, ch, err := q.s.watchShared(fctx, q.path+"/"+bn.name)
			if err != nil {
				if err := retry(err); err != nil {
					return nil, err
				}
				gone = true
				break
			}
			if !exists {
				gone = true
				break
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if gone {
			continue
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return nil, q.fail(ctx, context.Cause(ctx), "wait for %s", blockers[0].name)
		case 1:
			own = nil // deleted, changed or not watched any more: look again
		case 2:
			return nil, q.epochEnded(ctx)
		}
		// A blocker went away (or its watch ended): look again.
	}
}

// gone is the error for a waiter node that disappeared: deleted by someone,
// or with its session.
func (q *queue) gone(sid int64, name string) error {
	if cur, _, _, _ := q.s.state(); cur != sid {
		return errSessionChanged
	}
	return distsync.Errorf(distsync.ErrLost, nil, "waiter node %s/%s was deleted", q.path, name)
}

// lastLook is one more look at the queue after ctx ended, within ctx's
// grace: it returns the Lease if the node holds after all, else nil.
func (q *queue) lastLook(ctx context.Context, c class, path, name string, sid int64, stat *zk.Stat, own <-chan zk.Event) *Lease {
	lctx, cancel := cleanupContext(ctx)
	defer cancel()
	children, err := call(lctx, q.s, func() ([]string, error) {
		ch, _, err := q.s.conn.Children(q.path)
		return ch, err
	}, nil)
	if err != nil {
		return nil
	}
	nodes := sortNodes(children)
	me := slices.IndexFunc(nodes, func(n node) bool { return n.name == name })
	if me < 0 || len(c.blockers(nodes, me)) > 0 {
		return nil
	}
	if e := q.s.current(); e != nil && e.sid == sid {
		return newLease(q, path, sid, stat, e, own)
	}
	return nil
}
