package zksync

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// nodeRead is what a read of one node found.
type nodeRead struct {
	ok   bool // the node exists
	data []byte
	stat *zk.Stat
}

// existsW reports whether the node at path exists and, if it does, sets a
// watch that fires when it is deleted or its data changes. It reads with
// GetW, not ExistsW: an ExistsW on a missing node leaves a watch for its
// creation on the server and in go-zookeeper, and a node of ours is never
// created again, so that watch would stay for the session's life. The
// watch is the caller's own (a waiter's or a lease's on its node).
func (s *Session) existsW(ctx context.Context, path string) (nodeRead, <-chan zk.Event, error) {
	type res struct {
		r  nodeRead
		ch <-chan zk.Event
	}
	r, err := call(ctx, s, func() (res, error) {
		data, stat, ch, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return res{}, nil
		}
		return res{nodeRead{true, data, stat}, ch}, err
	}, nil)
	return r.r, r.ch, err
}

// getShared reads the node at path and, if it exists, returns a channel
// that receives or is closed at its deletion or the next change of its
// data (see shareWatch). A missing node gets no watch: GetW, unlike
// ExistsW, leaves no watch for its creation.
func (s *Session) getShared(ctx context.Context, path string) (nodeRead, <-chan zk.Event, error) {
	return shareWatch(ctx, s, "data "+path, func() (nodeRead, <-chan zk.Event, error) {
		data, stat, ch, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil, nil
		}
		return nodeRead{true, data, stat}, ch, err
	}, func() (nodeRead, error) {
		data, stat, err := s.conn.Get(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil
		}
		return nodeRead{true, data, stat}, err
	})
}

// armed returns the watch on the data of the node at path that
// getShared set, if it has not fired, else nil. deleted says that it fired
// just now, here, with the node's deletion: node names are never reused,
// so the node is gone for good and a read would only confirm it. (A watch
// that another receiver emptied is closed, and says nothing.)
func (s *Session) armed(path string) (ch <-chan zk.Event, deleted bool) {
	if ch = s.sharedWatch(path); ch == nil {
		return nil, false
	}
	select {
	case ev, ok := <-ch:
		return nil, ok && ev.Type == zk.EventNodeDeleted
	default:
		return ch, false
	}
}

// sharedWatch returns the last watch on the data of the node at path that
// getShared set, fired or not, or nil.
func (s *Session) sharedWatch(path string) <-chan zk.Event {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.watches["data "+path]
}

// childrenShared lists the children of the node at path and returns a
// channel that receives or is closed at the next change of the list or the
// node's deletion (see shareWatch). A missing node fails with
// zk.ErrNoNode and gets no watch.
func (s *Session) childrenShared(ctx context.Context, path string) ([]string, <-chan zk.Event, error) {
	return shareWatch(ctx, s, "children "+path, func() ([]string, <-chan zk.Event, error) {
		children, _, ch, err := s.conn.ChildrenW(path)
		return children, ch, err
	}, func() ([]string, error) {
		children, _, err := s.conn.Children(path)
		return children, err
	})
}

// shareWatch reads with watched, which sets a watch, or, while a watch
// that key names has been set and has not fired, with plain and returns
// that watch's channel. Callers that wait for the same change (waiters for
// one node, observers of one election) thus share one go-zookeeper watch:
// go-zookeeper keeps every watch's channel until the watch fires, and
// ZooKeeper has no request to remove a watch, so a watch per wait would
// pile up, one per cancelled wait, on a node that does not change for
// long. A receiver must treat any receive, even from a closed channel, as
// "it changed".
//
// Sharing is safe: a watch that was armed and has not fired yet fires at
// the next change, and the plain read that comes after the check sees any
// change before it.
func shareWatch[T any](ctx context.Context, s *Session, key string, watched func() (T, <-chan zk.Event, error), plain func() (T, error)) (T, <-chan zk.Event, error) {
	s.watchMu.Lock()
	ch := s.watches[key]
	s.watchMu.Unlock()
	if ch != nil && !fired(ch) {
		v, err := call(ctx, s, plain, nil)
		return v, ch, err
	}
	type res struct {
		v  T
		ch <-chan zk.Event
	}
	r, err := call(ctx, s, func() (res, error) {
		v, ch, err := watched()
		return res{v, ch}, err
	}, nil)
	if err == nil && r.ch != nil {
		s.watchMu.Lock()
		if s.watches == nil {
			s.watches = map[string]<-chan zk.Event{}
		}
		if len(s.watches) >= 16 {
			for k, c := range s.watches {
				if fired(c) {
					delete(s.watches, k)
				}
			}
		}
		s.watches[key] = r.ch
		s.watchMu.Unlock()
	}
	return r.v, r.ch, err
}

// fired reports whether a watch channel has received its event (which it
// consumes; other receivers then see the channel closed).
func fired(ch <-chan zk.Event) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
