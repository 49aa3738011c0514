package zksync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/go-zookeeper/zk"
)

// cleanupTimeout bounds the foreground attempt to delete a node after a
// failure or a Release; past it the deletion goes on in the background.
const cleanupTimeout = 5 * time.Second

// The Session remembers the nodes of its own that may exist, with their
// session, so that Close on a caller's connection, whose ZooKeeper session
// lives on, can delete them. A node is remembered from the moment its
// creation is known, on the goroutine of the request (which Close waits
// for), and forgotten once it is known to be gone.

// track remembers the node at path, of session sid.
func (s *Session) track(path string, sid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.zs != nil && s.zs.sid == sid {
		s.nodes[path] = sid
	}
}

// untrack forgets the node at path.
func (s *Session) untrack(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, path)
}

// deleteNodes deletes the nodes the Session remembers, all at once, on a
// caller's connection whose session lives on (Close). go-zookeeper bounds
// each request: it fails every pending one when the connection is lost.
func (s *Session) deleteNodes() {
	s.mu.Lock()
	var paths []string
	if s.zs != nil {
		for p, sid := range s.nodes {
			if sid == s.zs.sid {
				paths = append(paths, p)
			}
		}
	}
	s.nodes = map[string]int64{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Go(func() { _ = s.conn.Delete(p, -1) })
	}
	wg.Wait()
}

// remove deletes path, a node of session sid taken for name, waiting for at most
// cleanupTimeout, and until ctx's grace deadline once ctx has ended (see
// cleanupContext), and going on in the background after that. It returns
// an error wrapping ErrUnavailable when the deletion was not confirmed.
// After Close it deletes the node of a caller's connection at once.
func (s *Session) remove(ctx context.Context, name, path string, sid int64) error {
	cur, _, _, closed := s.state()
	switch {
	case closed && !s.owned && cur == sid:
		if err := s.conn.Delete(path, -1); err == nil || errors.Is(err, zk.ErrNoNode) {
			s.untrack(path)
		}
		return nil
	case cur != sid || closed:
		return nil // the session ended and its nodes with it
	}
	ctx, cancelGrace := cleanupContext(ctx)
	defer cancelGrace()
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	_, err := call(ctx, s, func() (struct{}, error) {
		return struct{}{}, s.conn.Delete(path, -1)
	}, nil)
	if err == nil || errors.Is(err, zk.ErrNoNode) {
		s.untrack(path)
		return nil
	}
	if permanent(err) {
		return s.classify(context.Background(), err, distsync.ErrUnavailable, fmt.Sprintf("%q: delete node %s", name, path))
	}
	s.removeLater(path, sid)
	return distsync.Errorf(distsync.ErrUnavailable, err, "%q: delete node %s not confirmed; retrying in the background", name, path)
}

// removeLater deletes path in the background, once the connection has the
// session sid again, retrying until the node is gone, the session has
// ended (taking its ephemeral nodes with it), the Session is closed, or
// ZooKeeper refuses (a permanent failure is never retried).
func (s *Session) removeLater(path string, sid int64) {
	s.cleanupLater(sid, "delete "+path, func() error {
		err := s.conn.Delete(path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			s.untrack(path)
			return nil
		}
		return err
	})
}

// cleanupLater runs op, described by what, in the background until it
// succeeds while the connection has session sid; see removeLater. Each
// failed attempt is logged at Warn.
func (s *Session) cleanupLater(sid int64, what string, op func() error) {
	if !s.goTracked() {
		return // Close ends the session or deletes the nodes it knows
	}
	go func() {
		defer s.bg.Done()
		var b backoff.Backoff
		for {
			id, connected, changed, closed := s.state()
			switch {
			case closed || id != sid:
				return
			case connected:
				err := op()
				if err == nil {
					return
				}
				if _, _, _, closed := s.state(); closed || errors.Is(err, zk.ErrConnectionClosed) {
					return // Close ends the session, and its nodes with it
				}
				if permanent(err) {
					s.o.rec.Warn(context.Background(), "background cleanup failed for good", slog.String("op", what), slog.Any("error", err))
					return
				}
				s.o.rec.Warn(context.Background(), "background cleanup retrying", slog.String("op", what), slog.Any("error", err))
				t := time.NewTimer(b.Next())
				select {
				case <-t.C:
				case <-changed:
				}
				t.Stop()
			default:
				<-changed
			}
		}
	}()
}

// goTracked adds a goroutine to the Session's WaitGroup unless it is closed.
func (s *Session) goTracked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.bg.Add(1)
	return true
}
