package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// An observer follows one election for Observe. It reads the state, sets
// one watch that fires at the next change of it, delivers the state if it
// differs from the last one delivered, and waits for the watch. With a
// leader, the watch is a data watch on the leader's node: only its deletion
// (resignation, loss) or a new value (Proclaim) changes the state, since
// a later candidate's node is always higher. With no leader it is a child
// watch on the election's node, or an existence watch while that node
// does not exist. A waiting candidate joining or leaving wakes no observer.
type observer struct {
	q   *queue
	out chan<- distsync.Leader

	last distsync.Leader
	sent bool
}

// run delivers the state until ctx ends. A failed read is retried once
// the connection has a session again, with a backoff; after the Session is
// closed, run only waits for ctx.
func (o *observer) run(ctx context.Context) {
	defer close(o.out)
	b := newBackoff()
	for {
		l, watch, err := o.read(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !o.pause(ctx, b) {
				return
			}
			continue
		}
		if !o.emit(ctx, l) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-watch:
			if ev.Type == zk.EventNotWatching {
				// The session expired or the connection is closing:
				// read again once there is a session.
				if !o.pause(ctx, b) {
					return
				}
				continue
			}
		}
		*b = backoff{}
	}
}

// pause waits for a connection with a session and a backoff delay. It
// returns false when ctx ended; it waits for ctx when the Session is closed.
func (o *observer) pause(ctx context.Context, b *backoff) bool {
	if _, err := o.q.reconnected(ctx); err != nil {
		if errors.Is(err, distsync.ErrClosed) {
			<-ctx.Done()
		}
		return false
	}
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// read returns the election's state and a watch that fires when it
// changes.
func (o *observer) read(ctx context.Context) (distsync.Leader, <-chan zk.Event, error) {
	s := o.q.s
	for {
		children, err := call(ctx, s, func() ([]string, error) {
			ch, _, err := s.conn.Children(o.q.path)
			return ch, err
		}, nil)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return distsync.Leader{}, nil, err
		}
		if nodes := sortNodes(children); len(nodes) > 0 {
			type res struct {
				data []byte
				stat *zk.Stat
				ch   <-chan zk.Event
			}
			r, err := call(ctx, s, func() (res, error) {
				data, stat, ch, err := s.conn.GetW(o.q.path + "/" + nodes[0].name)
				return res{data, stat, ch}, err
			}, nil)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				continue // it resigned since the listing
			case err != nil:
				return distsync.Leader{}, nil, err
			}
			return distsync.Leader{Value: r.data, Term: uint64(r.stat.Czxid), Time: time.Now()}, r.ch, nil
		}
		// No leader: wait for a first candidate.
		type res struct {
			children []string
			ch       <-chan zk.Event
		}
		r, err := call(ctx, s, func() (res, error) {
			children, _, ch, err := s.conn.ChildrenW(o.q.path)
			if errors.Is(err, zk.ErrNoNode) {
				var exists bool
				exists, _, ch, err = s.conn.ExistsW(o.q.path)
				if err == nil && exists {
					err = zk.ErrNodeExists // created meanwhile: list again
				}
			}
			return res{children, ch}, err
		}, nil)
		switch {
		case errors.Is(err, zk.ErrNodeExists):
			continue
		case err != nil:
			return distsync.Leader{}, nil, err
		case len(sortNodes(r.children)) > 0:
			continue // a candidate came since the first listing
		}
		return distsync.Leader{None: true, Time: time.Now()}, r.ch, nil
	}
}

// emit delivers l unless it is the state delivered last. It returns false
// when ctx ended.
func (o *observer) emit(ctx context.Context, l distsync.Leader) bool {
	if o.sent && o.last.None == l.None && o.last.Term == l.Term && bytes.Equal(o.last.Value, l.Value) {
		return true
	}
	select {
	case o.out <- l:
		o.last, o.sent = l, true
		return true
	case <-ctx.Done():
		return false
	}
}
