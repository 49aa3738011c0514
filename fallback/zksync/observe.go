package zksync

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/observe"
	"github.com/go-zookeeper/zk"
)

// An observer follows one election for Observe. It reads the state, sets
// one watch that fires at the next change of it, delivers the state if it
// differs from the last one delivered, and waits for the watch. With a
// leader, the watch is a data watch on the leader's node: only its deletion
// (resignation, loss) or a new value (Proclaim) changes the state, since
// a later candidate's node is always higher. With no leader it is a child
// watch on the election's node, or, while that node does not exist, on
// its nearest existing ancestor. A waiting candidate joining or leaving
// wakes no observer. The observers of a session share their watches.
type observer struct {
	q   *queue
	out chan<- distsync.Leader

	last observe.Dedupe // the last state delivered
}

// run delivers the state until ctx ends. A failed read is retried once
// the connection has a session again, with a backoff; after the Session is
// closed, or when ZooKeeper refuses the read (a permanent failure, never
// retried), run only waits for ctx.
func (o *observer) run(ctx context.Context) {
	defer close(o.out)
	var b backoff.Backoff
	for {
		l, watch, err := o.read(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && permanent(err):
			o.q.s.o.rec.Warn(ctx, "observer stopped: permanent error", opAttrs(o.q.name, "observe", err)...)
			<-ctx.Done()
			return
		case err != nil:
			o.q.s.o.rec.Debug(ctx, "observer retrying", opAttrs(o.q.name, "observe", err)...)
			if !o.pause(ctx, &b) {
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
				if !o.pause(ctx, &b) {
					return
				}
				continue
			}
		}
		b.Reset()
	}
}

// pause waits for a connection with a session and a backoff delay. It
// returns false when ctx ended; it waits for ctx when the Session is closed.
func (o *observer) pause(ctx context.Context, b *backoff.Backoff) bool {
	if _, err := o.q.s.reconnected(ctx, nil); err != nil {
		if errors.Is(err, distsync.ErrClosed) || permanent(err) {
			<-ctx.Done()
		}
		return false
	}
	return b.Sleep(ctx)
}

// read returns the election's state and a watch that fires when it
// changes. Observers of the session share their watches (see shareWatch),
// so an Observe that ends leaves no watch of its own: only the ones that
// other observers use too, which go when they fire.
func (o *observer) read(ctx context.Context) (distsync.Leader, <-chan zk.Event, error) {
	s := o.q.s
	for {
		children, err := call(ctx, s, func() ([]string, error) {
			ch, _, err := s.conn.Children(o.q.path)
			return ch, err
		}, nil)
		missing := errors.Is(err, zk.ErrNoNode)
		if err != nil && !missing {
			return distsync.Leader{}, nil, err
		}
		if nodes := sortNodes(children); len(nodes) > 0 {
			r, ch, err := s.getShared(ctx, o.q.path+"/"+nodes[0].name)
			switch {
			case err != nil:
				return distsync.Leader{}, nil, err
			case !r.ok:
				continue // it resigned since the listing
			}
			return distsync.Leader{Value: r.data, Term: uint64(r.stat.Czxid), Time: time.Now()}, ch, nil
		}
		// No leader: wait for a first candidate.
		var ch <-chan zk.Event
		if !missing {
			children, ch, err = s.childrenShared(ctx, o.q.path)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				continue // deleted since the listing
			case err != nil:
				return distsync.Leader{}, nil, err
			case len(sortNodes(children)) > 0:
				continue // a candidate came since the first listing
			}
		} else {
			var created bool
			ch, created, err = o.watchCreation(ctx)
			switch {
			case err != nil:
				return distsync.Leader{}, nil, err
			case created:
				continue
			}
		}
		return distsync.Leader{None: true, Time: time.Now()}, ch, nil
	}
}

// watchCreation watches for the creation of the election's node, which
// does not exist, with a child watch on its nearest existing ancestor (the
// root, mostly). created reports that the node exists by now. It sets no
// existence watch on the missing node itself: that would stay, on the
// server and in go-zookeeper, until the node is created, which may never
// happen. A child watch on an ancestor fires at the next change of its
// children, so it does not outlast the observers that need it by long.
func (o *observer) watchCreation(ctx context.Context) (ch <-chan zk.Event, created bool, err error) {
	s := o.q.s
	p := o.q.path
	for {
		parent, base := path.Split(p)
		if parent != "/" {
			parent = strings.TrimSuffix(parent, "/")
		}
		children, ch, err := s.childrenShared(ctx, parent)
		switch {
		case errors.Is(err, zk.ErrNoNode) && parent != "/":
			p = parent // the root is missing too: watch its parent
			continue
		case err != nil:
			return nil, false, err
		case slices.Contains(children, base):
			return nil, true, nil
		}
		return ch, false, nil
	}
}

// emit delivers l unless it is the state delivered last. It returns false
// when ctx ended.
func (o *observer) emit(ctx context.Context, l distsync.Leader) bool {
	if o.last.Repeats(l) {
		return true
	}
	select {
	case o.out <- l:
		o.last.Delivered(l)
		return true
	case <-ctx.Done():
		return false
	}
}
