package zksync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// Inspect reads the name's node: its children, in sequence order, and each
// child's data and stat. The kind in a child's name says what it holds or
// waits for. Whether it holds follows the rule its acquisition waits by
// (see class), so Inspect agrees with the waiters themselves.

// An entry is one child of a name's node as Inspect read it.
type entry struct {
	node
	data []byte
	stat *zk.Stat
}

// Inspect reads who holds and who waits for name, of whichever primitive
// kind: see distsync.Session.Inspect. It lists the name's node and reads
// every child, in one round trip plus one for the children's reads, which
// go out together. Holders and waiters are in queue (sequence) order. A
// Holder's Token is its node's czxid: the fencing token its Lease has or
// will have. Its Identity is the node's data: the acquiring Session's
// identity, or, for an election candidate, its value (its campaign value
// or what it last proclaimed). Since is the node's creation time by the
// server's clock. TTL is zero: an ephemeral node lives as long as its
// ZooKeeper session. A node of a kind distsync does not make (a foreign
// recipe's) is shown as exclusive, and one ForceRelease is removing is
// left out. A lost connection is waited out until ctx ends.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	q, err := s.queue(name)
	if err != nil {
		return distsync.Status{}, err
	}
	entries, stored, err := s.readQueue(ctx, q)
	if err != nil {
		return distsync.Status{}, err
	}
	// A node ForceRelease has marked is on its way out.
	entries = slices.DeleteFunc(entries, func(e entry) bool { return isForced(e.data) })
	return status(name, entries, stored), nil
}

// readQueue reads q's node and its children, sorted by sequence. A child
// deleted between the listing and its read is left out. A lost connection
// is waited out within ctx.
func (s *Session) readQueue(ctx context.Context, q *queue) ([]entry, nodeRead, error) {
	if err := s.usable(); err != nil {
		return nil, nodeRead{}, err
	}
	var b backoff.Backoff
	for {
		entries, stored, err := s.readQueueOnce(ctx, q)
		if err == nil {
			return entries, stored, nil
		}
		if err := s.waitOut(ctx, &b, err, q.name, "inspect"); err != nil {
			return nil, nodeRead{}, err
		}
	}
}

func (s *Session) readQueueOnce(ctx context.Context, q *queue) ([]entry, nodeRead, error) {
	lk, err := q.look(ctx, "", true)
	if err != nil {
		return nil, nodeRead{}, err
	}
	nodes := sortNodes(lk.children)
	entries := make([]entry, len(nodes))
	errs := make([]error, len(nodes))
	_, err = call(ctx, s, func() (struct{}, error) {
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				data, stat, err := s.conn.Get(q.path + "/" + n.name)
				switch {
				case errors.Is(err, zk.ErrNoNode):
				case err != nil:
					errs[i] = err
				default:
					entries[i] = entry{n, data, stat}
				}
			})
		}
		wg.Wait()
		return struct{}{}, nil
	}, nil)
	if err = errors.Join(err, errors.Join(errs...)); err != nil {
		return nil, nodeRead{}, err
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.stat != nil {
			kept = append(kept, e)
		}
	}
	return kept, lk.stored, nil
}

// waitOut decides what to do after err, a failed read for op on name: it
// returns nil, after a pause, to read again when the connection was lost
// and ctx lasts; else the contract error.
func (s *Session) waitOut(ctx context.Context, b *backoff.Backoff, err error, name, op string) error {
	fail := func(err error) error {
		return s.classify(ctx, err, distsync.ErrUnavailable, fmt.Sprintf("%s %q", op, name))
	}
	if !connLost(err) || ctx.Err() != nil {
		return fail(err)
	}
	s.o.rec.Debug(ctx, "retrying after a connection loss", opAttrs(name, op, err)...)
	if _, rerr := s.reconnected(ctx, nil); rerr != nil {
		return fail(errors.Join(rerr, err))
	}
	if !b.Sleep(ctx) {
		return fail(err)
	}
	return nil
}

// status is what entries, the children of name's node, and stored, the
// node itself, say about name.
func status(name string, entries []entry, stored nodeRead) distsync.Status {
	st := distsync.Status{Name: name}
	nodes := make([]node, len(entries))
	permits := false
	for i, e := range entries {
		nodes[i] = e.node
		permits = permits || isPermit(e.kind)
	}
	if permits && stored.ok {
		st.Limit, _ = strconv.ParseInt(string(stored.data), 10, 64)
	}
	for i, e := range entries {
		mode, c := modeOf(e.node)
		h := distsync.Holder{
			Token:    uint64(e.stat.Czxid),
			Identity: string(e.data),
			Mode:     mode,
			Weight:   e.weight,
			Since:    time.UnixMilli(e.stat.Ctime),
		}
		if len(c.blockers(nodes, i, st.Limit)) == 0 {
			st.Holders = append(st.Holders, h)
		} else {
			st.Waiters = append(st.Waiters, h)
		}
	}
	return st
}

// modeOf returns what node n holds or waits for, and the class its
// acquisition waits by. A kind distsync does not make waits like a Mutex.
func modeOf(n node) (distsync.Mode, class) {
	switch {
	case n.kind == readKind:
		return distsync.ModeRead, shared(readKind)
	case n.kind == writeKind:
		return distsync.ModeWrite, exclusive(writeKind)
	case isPermit(n.kind):
		return distsync.ModePermit, weighted(n.weight, nil)
	}
	return distsync.ModeExclusive, exclusive(n.kind)
}

// isPermit reports whether kind is a semaphore acquisition's.
func isPermit(kind string) bool {
	return kind == permitKind || strings.HasPrefix(kind, permitKind+".")
}

// primitiveOf names the primitive a node of kind belongs to, for logs.
func primitiveOf(kind string) string {
	switch {
	case kind == readKind, kind == writeKind:
		return "rwmutex"
	case isPermit(kind):
		return "semaphore"
	case kind == latchKind:
		return "election"
	}
	return "mutex"
}
