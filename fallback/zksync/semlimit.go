package zksync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// How a Semaphore stores its limit: while anyone holds or waits, and only
// then (the rule of distsync.Semaphore).
//
// The limit is the data of the name's node, a container node, so ZooKeeper
// deletes it some time after it empties. What matters is whether the node
// has children, not whether it exists: an idle node's limit is stale, and
// the next user replaces it. Every acquisition runs create, which reads
// the node first, unless the last read this Semaphore kept (see
// queue.lastStored) shows its own limit:
//
//   - no node: create it with our limit and our child in one Multi;
//   - children (in use): a limit other than ours is ErrLimitMismatch, ours
//     gets a plain create of our child;
//   - no children (idle) and our limit: a plain create of our child;
//   - no children and another limit: in one Multi, delete the node at the
//     version read, create it again with our limit, and create our child.
//
// The replacement is race-free because ZooKeeper deletes a node only when
// it has no children: the Multi applies only if the node is still idle, at
// the data version read, at that instant (a node deleted and made again
// with that version meanwhile is idle too, or the delete fails). Writing
// the data at that version instead would not be: a plain create does not
// change the data version, so it could land between the read and the
// write.
//
// Then every look of a waiter (and the first one, before a grant) reads the
// node's data with the listing, and compares it with its own limit. Once
// our child exists, the node is never idle: its data changes only through
// SetLimit. So a plain create that raced a replacement (we read "in use,
// our limit", everyone left, someone replaced it) is caught at the first
// look, before any grant, and fails with ErrLimitMismatch. Two grants
// under different limits would need the data to change while a node
// existed all along: only SetLimit does that, on purpose. It then touches
// (writes again) every node of the queue: each waiter watches its own
// node, so it looks again, and one opened with the old limit fails at
// once. Waiters thus set no watch on the name's node, which would outlive
// them.
//
// An acquisition whose last read showed its own limit skips the read and
// creates its child at once: one round trip less. The first look checks
// the limit as above. Only there, a limit other than its own may also
// mean that the node went idle and was replaced since that read, when
// this acquisition should have replaced it in turn: it deletes its child,
// which never held, and creates it again after a fresh read
// (errCachedStale). So the result is the one a read would have given.

// create creates an acquisition's node as described above. It runs on a
// call's goroutine and stops looping once ctx has ended.
func (sem *Semaphore) create(ctx context.Context, prefix, guid string, value []byte, cache bool) (string, bool, error) {
	s, path := sem.q.s, sem.q.path
	limit := sem.Limit()
	child := &zk.CreateRequest{Path: prefix, Data: value, Acl: s.o.acl, Flags: zk.FlagEphemeral | zk.FlagSequence}
	parent := &zk.CreateRequest{Path: path, Data: []byte(strconv.FormatInt(limit, 10)), Acl: s.o.acl, Flags: zk.FlagContainer}
	if last := sem.q.lastStored.Load(); cache && last != nil && string(last.data) == string(parent.Data) {
		p, err := s.conn.Create(prefix, value, child.Flags, s.o.acl)
		if !errors.Is(err, zk.ErrNoNode) {
			return p, err == nil, err
		}
		// Reaped since: make it below.
	}
	p, err := sem.createRead(ctx, prefix, guid, value, child, parent)
	return p, false, err
}

// createRead is create after a read of the name's node.
func (sem *Semaphore) createRead(ctx context.Context, prefix, guid string, value []byte, child, parent *zk.CreateRequest) (string, error) {
	s, path := sem.q.s, sem.q.path
	limit := sem.Limit()
	for ctx.Err() == nil {
		data, stat, err := s.conn.Get(path)
		if err == nil {
			sem.q.lastStored.Store(&nodeRead{true, data, stat})
		}
		var ops []any
		switch {
		case errors.Is(err, zk.ErrNoNode):
			ops = []any{parent, child}
		case err != nil:
			return "", err
		case stat.NumChildren > 0:
			if err := sem.checkInUse(nodeRead{true, data, stat}, limit); err != nil {
				return "", err
			}
			fallthrough
		case string(data) == string(parent.Data):
			p, err := s.conn.Create(prefix, value, child.Flags, s.o.acl)
			if errors.Is(err, zk.ErrNoNode) {
				continue // reaped since the read
			}
			return p, err
		default:
			ops = []any{&zk.DeleteRequest{Path: path, Version: stat.Version}, parent, child}
		}
		_, err = s.conn.Multi(ops...)
		switch {
		case err == nil, errors.Is(err, zk.ErrAPIError):
			// Applied. go-zookeeper v1.0.4 cannot decode the answer to
			// a container create in a Multi and reports ErrAPIError; a
			// Multi that failed is decoded fine. Either way, our child
			// is found by its GUID.
		case errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrNotEmpty), errors.Is(err, zk.ErrBadVersion),
			errors.Is(err, zk.ErrNoNode) && len(ops) == 3:
			continue // someone else changed the node first: look again
		default:
			return "", err // zk.ErrNoNode: the root is missing
		}
		children, _, err := s.conn.Children(path)
		if err != nil {
			return "", err
		}
		if c := findPrefix(children, guidPrefix(guid)); c != "" {
			return path + "/" + c, nil
		}
		return "", fmt.Errorf("create %s: %w, and no node of ours was made", path, zk.ErrAPIError)
	}
	return "", context.Cause(ctx)
}

// checkInUse compares limit with the limit stored on the semaphore's node,
// as read in r, if the semaphore is in use (its node has children).
func (sem *Semaphore) checkInUse(r nodeRead, limit int64) error {
	if !r.ok || r.stat.NumChildren == 0 {
		return nil // idle: what is stored is stale
	}
	stored, err := strconv.ParseInt(string(r.data), 10, 64)
	if err != nil {
		return distsync.Errorf(distsync.ErrLimitMismatch, nil, "%q is in use and its node %s holds %q, not a semaphore limit", sem.q.name, sem.q.path, r.data)
	}
	if stored != limit {
		return distsync.Errorf(distsync.ErrLimitMismatch, nil, "%q is in use with limit %d, opened with %d", sem.q.name, stored, limit)
	}
	return nil
}

// errCachedStale means that the first look at a node made on an old read
// of the name's node found another limit (see create above).
var errCachedStale = errors.New("limit changed since the read the node was made on")

// errLimitStale means a look read the stored limit before this
// Semaphore's own SetLimit wrote it: the look decides nothing, and the
// SetLimit then touches the waiter's node, which fires its watch.
var errLimitStale = errors.New("stored limit read before this Semaphore's SetLimit")

// stored is the limit check of a waiter's look (see class): the stored
// limit must be this Semaphore's, or the one its SetLimit is storing. r is
// read with the waiter's node in the queue, so the semaphore is in use;
// an r not read (ok false) gives this Semaphore's limit.
func (sem *Semaphore) stored(r nodeRead) (int64, error) {
	limit := sem.Limit()
	if !r.ok {
		return limit, nil
	}
	stored, err := strconv.ParseInt(string(r.data), 10, 64)
	if err == nil && (stored == limit || stored == sem.pending.Load()) {
		return stored, nil
	}
	sem.setMu.Lock()
	w := sem.wrote
	sem.setMu.Unlock()
	if w != nil && r.stat.Czxid == w.Czxid && r.stat.Version < w.Version {
		return 0, errLimitStale
	}
	return 0, distsync.Errorf(distsync.ErrLimitMismatch, nil, "%q holds limit %q, this Semaphore has %d", sem.q.name, r.data, limit)
}

// setLimit stores limit on the semaphore's node, if it exists, and touches
// every node of the queue, so that the waiters look again (see above). It
// returns the node's stat after the write (nil if there is no node or the
// write failed) and the first error.
func (sem *Semaphore) setLimit(limit int64) (*zk.Stat, error) {
	s, path := sem.q.s, sem.q.path
	// An idle semaphore's node may hold a stale limit; writing over it
	// is harmless, the next user replaces it.
	stat, err := s.conn.Set(path, []byte(strconv.FormatInt(limit, 10)), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	children, _, err := s.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return stat, nil
	}
	if err != nil {
		return stat, err
	}
	errs := make([]error, len(children))
	var wg sync.WaitGroup
	for i, c := range children {
		if n, ok := parseNode(c); !ok || !strings.HasPrefix(n.kind, permitKind) {
			continue // not a permit: its data is not ours to write
		}
		wg.Go(func() {
			// Writing a permit's data (its holder's identity) again,
			// at the version read, fires its watches and keeps it.
			// A failed version check means someone else wrote it
			// meanwhile (ForceRelease), which fired them too.
			data, stat, err := s.conn.Get(path + "/" + c)
			if err == nil {
				_, err = s.conn.Set(path+"/"+c, data, stat.Version)
			}
			if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return stat, errors.Join(errs...)
}
