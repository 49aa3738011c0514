package zksync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/distsync/distsync"
)

// A queue is the waiter queue of one name: protected ephemeral sequential
// children of the name's node, served in sequence order. Every primitive is
// a queue plus a class saying which older children block a new one. An
// acquisition creates its node (enqueue, create.go), then waits until no
// older node blocks it (wait, wait.go).
type queue struct {
	s    *Session
	name string // the user's name, for errors
	path string // the name's node
	// create, if set, creates an acquisition's node in place of a plain
	// create, and the name's node with it if need be: a Semaphore stores
	// its limit so (see semlimit.go). With cache it may rely on the last
	// read of the name's node, and then says so (cached).
	create func(ctx context.Context, prefix, guid string, value []byte, cache bool) (path string, cached bool, err error)
	// plain is set once ZooKeeper refused the rewrite of the name's
	// node that tells a new node's czxid (see createNode).
	plain atomic.Bool
	// lastStored is the last read of the name's node (a semaphore's
	// stored limit), for look.
	lastStored atomic.Pointer[nodeRead]
}

// acquire creates a node of class c with value as data and waits until it
// holds. With try, it fails with ErrWouldBlock instead of waiting. On any
// failure the node is deleted before acquire returns. When ctx ends,
// acquire waits for the requests in flight and the deletion for at most
// distsync.CancelGrace; past it the deletion goes on in the background
// until ZooKeeper answers or the session ends. When the session the node
// belongs to ends first, acquire fails with ErrLost.
func (q *queue) acquire(ctx context.Context, c class, value []byte, try bool) (*Lease, error) {
	ctx = withGrace(ctx)
	if err := q.s.usable(); err != nil {
		return nil, err
	}
	if try {
		// A cheap look first: a held name costs a read, not a write.
		lk, err := q.look(ctx, "", c.limit != nil)
		if err != nil {
			return nil, q.fail(ctx, err, "list waiters")
		}
		var limit int64
		if c.limit != nil {
			// A limit that disagrees is told before a full semaphore.
			if !lk.stored.ok || lk.stored.stat.NumChildren == 0 {
				lk.stored = nodeRead{} // idle: this value's own
			}
			if limit, err = q.checkLimit(c, lk.stored); errors.Is(err, errLimitStale) {
				limit, err = c.limit(nodeRead{})
			}
			if err != nil {
				return nil, err
			}
		}
		nodes := sortNodes(lk.children)
		if len(c.blockers(nodes, len(nodes), limit)) > 0 {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.name)
		}
	}
	w, err := q.enqueue(ctx, c, value, true)
	if err != nil {
		return nil, q.ended(ctx, err)
	}
	l, err := q.wait(ctx, c, w, try)
	if errors.Is(err, errCachedStale) {
		// The node was made on an old read of the name's node, and
		// the first look found another limit: wait deleted it. Make
		// it again on a fresh read (see Semaphore.create).
		if w, err = q.enqueue(ctx, c, value, false); err != nil {
			return nil, q.ended(ctx, err)
		}
		l, err = q.wait(ctx, c, w, try)
	}
	if err != nil {
		return nil, q.ended(ctx, err)
	}
	return l, nil
}

// fail turns a go-zookeeper error into a contract error naming the name.
func (q *queue) fail(ctx context.Context, err error, format string, args ...any) error {
	return q.s.classify(ctx, err, distsync.ErrNotAcquired, fmt.Sprintf("%q: ", q.name)+fmt.Sprintf(format, args...))
}

// sessionEnded is the error of a waiter whose session z ended.
func sessionEnded(z *zsession) error {
	if z == nil || z.err == nil {
		return errSessionEnded
	}
	return fmt.Errorf("%w: %w", errSessionEnded, z.err)
}

// ended turns errSessionEnded into the contract's error: ErrLost, or
// ErrClosed when the Session was closed, or ErrNotAcquired when ctx ended
// too. Other errors pass through.
func (q *queue) ended(ctx context.Context, err error) error {
	switch {
	case !errors.Is(err, errSessionEnded):
		return err
	case ctx.Err() != nil:
		return q.fail(ctx, err, "wait")
	case errors.Is(q.s.usable(), distsync.ErrClosed):
		return errClosed()
	}
	return distsync.Lost(distsync.LossSessionEnded, err, "%q: waiting acquisition (the next call queues in the new session)", q.name)
}

// identity is the data of a lock or permit node: the Session's holder
// identity (see WithIdentity).
func (q *queue) identity() []byte { return []byte(q.s.o.id) }
