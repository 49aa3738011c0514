package zksync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// ForceRelease writes forcedMarker over the data of the node it removes,
// then deletes the node; both writes are conditional on the data version
// just read. The node's own watch (a lease's follower, a waiter's wait)
// fires at the first write, and so does a watch on the name's children
// (see markForced). Its owner reads the node again and finds the marker,
// or, when the deletion came first, finds the node gone right after a
// change of its data it did not make. Either way it ends with
// distsync.LossForceReleased. A deletion without that change is
// distsync.LossDeleted. ForceRelease gives the owner ownerGrace to delete
// the node itself before deleting it, so that an owner woken by the
// children's watch reads the marker.

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
			stat, err := call(ctx, s, func() (*zk.Stat, error) { return s.markForced(q, path, ver) }, nil)
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
			s.awaitOwner(ctx, path)
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

// markForced writes forcedMarker over the node at path, at data version
// ver, and returns its Stat. The same transaction creates a child of the
// name's node and deletes it again: a lease that watches only the
// children (see lookFresh) is told too. The blip's name ends in the
// largest sequence number, so that a reader that sees it anyway (a
// zk.Lock, Inspect) takes it for the last of the queue, blocking nobody.
func (s *Session) markForced(q *queue, path string, ver int32) (*zk.Stat, error) {
	blip := nodePrefix(q.path, newGUID(), lockKind) + "9999999999"
	res, err := s.conn.Multi(
		&zk.SetDataRequest{Path: path, Data: forcedMarker, Version: ver},
		&zk.CreateRequest{Path: blip, Acl: s.o.acl, Flags: zk.FlagEphemeral},
		&zk.DeleteRequest{Path: blip, Version: -1})
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || res[0].Stat == nil {
		return nil, fmt.Errorf("mark %s: %w", path, zk.ErrAPIError)
	}
	return res[0].Stat, nil
}

// ownerGrace is how long ForceRelease waits for the owner of a marked node
// to delete it before deleting it itself. A distsync owner does so within
// a few round trips of seeing the marker; a zk.Lock, a stopped process or
// a disconnected one does not.
const ownerGrace = time.Second

// awaitOwner waits until the node at path is gone or written, ownerGrace
// has passed, or ctx has ended. The owner thus reads the marker before the
// deletion: a lease that watched only the children (see Lease.follow)
// could not tell ForceRelease's deletion from another.
func (s *Session) awaitOwner(ctx context.Context, path string) {
	r, ch, err := s.existsW(ctx, path)
	if err != nil || !r.ok {
		return
	}
	t := time.NewTimer(ownerGrace)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// opAttrs are the log attributes of a retried operation.
func opAttrs(name, op string, err error) []slog.Attr {
	return []slog.Attr{slog.String("name", name), slog.String("op", op), slog.Any("error", err)}
}
