package zksync

import (
	"bytes"
	"context"
	"errors"
	"log/slog"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// ForceRelease writes forcedMarker over the data of the node it removes,
// then deletes the node; both writes are conditional on the data version
// just read. The node's own watch (a lease's follower, a waiter's wait)
// fires at the first write. It reads the node again and finds the marker,
// or, when the deletion came first, finds the node gone right after a
// change of its data it did not make. Either way it ends with
// distsync.LossForceReleased. A deletion without that change is
// distsync.LossDeleted.

// forcedMarker is the data ForceRelease writes before it deletes a node.
// The control characters keep it apart from every identity (see
// distsync.ValidateIdentity).
var forcedMarker = []byte("\x00distsync: force-released\x00")

// isForced reports whether data is forcedMarker.
func isForced(data []byte) bool { return bytes.Equal(data, forcedMarker) }

// errForced is the loss of a lease, or the failure of a waiting
// acquisition, whose node ForceRelease removed.
func errForced(name, path string) error {
	return distsync.Lost(distsync.LossForceReleased, nil, "%q: node %s was removed by ForceRelease", name, path)
}

// errDeleted is the loss of a lease whose node was deleted; changed says
// that its data was changed by someone else just before, as ForceRelease
// does.
func errDeleted(name, path string, changed bool) error {
	if changed {
		return errForced(name, path)
	}
	return distsync.Lost(distsync.LossDeleted, nil, "%q: node %s was deleted", name, path)
}

// ForceRelease removes the holder or waiter of name whose token is token:
// see distsync.Session.ForceRelease. It reads the queue as Inspect does,
// finds the node whose czxid is token, writes a marker over its data and
// deletes it, each write conditional on the data version read. The node's
// owner learns of it from its watch on its own node at once, within a
// round trip: its Lease ends, or its acquisition fails, with an error
// wrapping distsync.ErrLost whose reason is distsync.LossForceReleased.
// An owner whose connection is down learns of it once reconnected (or
// has lost its lease to the disconnection already). A zk.Lock or a
// Curator recipe holding the node is not told; it may act until it looks.
// The next waiter is served as on a release. The removal is logged at
// Warn. It fails with distsync.ErrNotFound when no child of the name has
// token, and as Inspect does otherwise.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	q, err := s.queue(name)
	if err != nil {
		return err
	}
	entries, _, err := s.readQueue(ctx, q)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if uint64(e.stat.Czxid) == token {
			return s.forceRemove(ctx, q, e, token)
		}
	}
	return errNotFound(name, token)
}

func errNotFound(name string, token uint64) error {
	return distsync.Errorf(distsync.ErrNotFound, nil, "%q has no holder or waiter with token %d", name, token)
}

// forceRemove marks and deletes e, a child of q's node read with token as
// its czxid.
func (s *Session) forceRemove(ctx context.Context, q *queue, e entry, token uint64) error {
	path := q.path + "/" + e.name
	identity := string(e.data)
	data, ver := e.data, e.stat.Version
	var b backoff.Backoff
	// again reads the node afresh after a write that failed or whose
	// outcome is unknown; it returns a contract error to stop with.
	var again func(err error) error
	again = func(err error) error {
		if err != nil && !errors.Is(err, zk.ErrBadVersion) {
			if err := s.waitOut(ctx, &b, err, q.name, "force release"); err != nil {
				return err
			}
		}
		r, err := call(ctx, s, func() (nodeRead, error) {
			d, stat, err := s.conn.Get(path)
			if errors.Is(err, zk.ErrNoNode) {
				return nodeRead{}, nil
			}
			return nodeRead{true, d, stat}, err
		}, nil)
		switch {
		case err != nil:
			return again(err)
		case !r.ok || uint64(r.stat.Czxid) != token:
			return errNotFound(q.name, token)
		}
		data, ver = r.data, r.stat.Version
		return nil
	}
	for {
		if !isForced(data) {
			stat, err := call(ctx, s, func() (*zk.Stat, error) { return s.conn.Set(path, forcedMarker, ver) }, nil)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return errNotFound(q.name, token)
			case err != nil:
				if err := again(err); err != nil {
					return err
				}
				continue
			case uint64(stat.Czxid) != token:
				// A foreign node made at the same path since the read
				// (only names without a GUID can repeat).
				return errNotFound(q.name, token)
			}
			data, ver = forcedMarker, stat.Version
		}
		_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, s.conn.Delete(path, ver) }, nil)
		switch {
		case err == nil, errors.Is(err, zk.ErrNoNode):
			// Gone: deleted now, or by its owner, who saw the marker.
			if ctx := context.Background(); s.o.rec.Enabled(ctx, slog.LevelWarn) {
				s.o.rec.Warn(ctx, "force release", slog.String("name", q.name),
					slog.String("primitive", primitiveOf(e.kind)), slog.Uint64("token", token),
					slog.String("identity", identity), slog.String("node", path))
			}
			return nil
		default:
			if err := again(err); err != nil {
				return err
			}
		}
	}
}

// opAttrs are the log attributes of a retried operation.
func opAttrs(name, op string, err error) []slog.Attr {
	return []slog.Attr{slog.String("name", name), slog.String("op", op), slog.Any("error", err)}
}
