package zksync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// What a Session knows of its connection: the ZooKeeper session it has
// (a zsession, which waiters bind to), the epoch leases bind to, and
// whether it is connected. follow.go feeds it samples of the connection.

// A zsession is one ZooKeeper session of the connection. Waiting
// acquisitions are bound to the session their node was created in: its
// end (an expiry, a new session ID, Close) ends them.
type zsession struct {
	sid  int64
	done chan struct{} // closed when the session is known to have ended
	err  error         // why, set before done is closed
}

// ended returns a channel closed when z ends; nil (never ready) for a nil z.
func (z *zsession) ended() <-chan struct{} {
	if z == nil {
		return nil
	}
	return z.done
}

// over reports whether z has ended; false for a nil z.
func (z *zsession) over() bool {
	select {
	case <-z.ended():
		return true
	default:
		return false
	}
}

// An epoch is a span of a session during which leases taken through it
// hold. It ends with its session, on Close, and, without a disconnect grace,
// on a disconnection (with a grace, when the grace runs out). The next
// reconnection to the same session starts a new epoch.
type epoch struct {
	zs   *zsession
	done chan struct{}
	err  error // why it ended, set before done is closed
}

// observeLocked feeds the Session's state machine one sample of the
// connection: its state and session ID. It reports whether the Session's
// state changed.
func (s *Session) observeLocked(state zk.State, sid int64) bool {
	if s.closed {
		return false
	}
	changed := false
	if s.zs != nil && sid != 0 && sid != s.zs.sid {
		s.endSessionLocked(fmt.Sprintf("zookeeper session 0x%x expired: the connection opened session 0x%x", s.zs.sid, sid))
		changed = true
	}
	switch state {
	case zk.StateHasSession:
		if sid == 0 {
			return changed
		}
		if s.grace != nil {
			s.grace.Stop()
			s.grace = nil
		}
		if s.zs == nil {
			s.zs = &zsession{sid: sid, done: make(chan struct{})}
		}
		if s.cur == nil {
			s.cur = &epoch{zs: s.zs, done: make(chan struct{})}
		}
		s.denied = nil
		if !s.connected {
			s.connected = true
			changed = true
		}
	case zk.StateExpired:
		if s.zs != nil {
			s.endSessionLocked(fmt.Sprintf("zookeeper session 0x%x expired", s.zs.sid))
			changed = true
		}
		if s.connected {
			s.connected = false
			changed = true
		}
	case zk.StateAuthFailed:
		s.denied = distsync.Errorf(distsync.ErrDenied, zk.ErrAuthFailed, "zookeeper refused the connection's credentials")
		changed = true
	default: // disconnected, connecting, connected without a session yet
		if !s.connected {
			return changed
		}
		s.connected = false
		changed = true
		e := s.cur
		switch {
		case e == nil:
		case s.o.grace == 0:
			s.disconnectedLocked(e, fmt.Sprintf("disconnected from ZooKeeper (session 0x%x): ownership uncertain", e.zs.sid))
		case s.grace == nil:
			s.grace = time.AfterFunc(s.o.grace, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.cur == e && !s.connected {
					s.disconnectedLocked(e, fmt.Sprintf("disconnected from ZooKeeper (session 0x%x) for longer than %v: ownership uncertain", e.zs.sid, s.o.grace))
					s.broadcastLocked()
				}
			})
		}
	}
	return changed
}

// disconnectedLocked ends epoch e, the current one, as lost to a
// disconnection, and logs it at Warn: the leases taken in it end.
func (s *Session) disconnectedLocked(e *epoch, msg string) {
	s.endEpochLocked(distsync.LossDisconnected, msg)
	if ctx := context.Background(); s.o.rec.Enabled(ctx, slog.LevelWarn) {
		s.o.rec.Warn(ctx, "disconnected: leases end", slog.String("session", fmt.Sprintf("0x%x", e.zs.sid)),
			slog.Duration("grace", s.o.grace))
	}
}

// broadcastLocked wakes everything that waits for a change of state.
func (s *Session) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// endEpochLocked ends the current epoch, if any, as lost for reason with
// msg.
func (s *Session) endEpochLocked(reason distsync.LossReason, msg string) {
	if e := s.cur; e != nil {
		e.err = distsync.Lost(reason, nil, "%s", msg)
		close(e.done)
		s.cur = nil
	}
}

// endSessionLocked ends the current session and its epoch with msg. The
// server deletes the session's nodes, so the Session forgets them.
func (s *Session) endSessionLocked(msg string) {
	s.endEpochLocked(distsync.LossSessionEnded, msg)
	if z := s.zs; z != nil {
		z.err = errors.New(msg)
		close(z.done)
		s.zs = nil
		for p, sid := range s.nodes {
			if sid == z.sid {
				delete(s.nodes, p)
			}
		}
	}
}

// usable returns the error of a call that cannot start: the Session is
// closed or its credentials were refused.
func (s *Session) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errClosed()
	case s.denied != nil:
		return s.denied
	}
	return nil
}

func errClosed() error { return distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed") }

// epoch waits until the Session has a live epoch and returns it. It fails
// with an error wrapping ErrClosed or ErrDenied, or ctx's cause.
func (s *Session) epoch(ctx context.Context) (*epoch, error) {
	for {
		if err := s.usable(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		e, changed := s.cur, s.changed
		s.mu.Unlock()
		if e != nil {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-changed:
		}
	}
}

// current returns the live epoch, or nil.
func (s *Session) current() *epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// session returns the connection's current session, or nil.
func (s *Session) session() *zsession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.zs
}

// state returns the ID of the connection's session (0 when it has none),
// whether it is connected, the channel closed at the next change, and
// whether the Session is closed.
func (s *Session) state() (sid int64, connected bool, changed <-chan struct{}, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.zs != nil {
		sid = s.zs.sid
	}
	return sid, s.connected, s.changed, s.closed
}

// errSessionEnded means the session a waiter's node belongs to has ended;
// the acquisition fails with ErrLost (see queue.lost).
var errSessionEnded = errors.New("the waiter's session ended")

// reconnected waits until the connection has a session and returns its
// ID. With a non-nil z it fails with errSessionEnded as soon as z ends.
func (s *Session) reconnected(ctx context.Context, z *zsession) (int64, error) {
	for {
		if err := s.usable(); err != nil {
			return 0, err
		}
		sid, connected, changed, _ := s.state()
		if connected {
			return sid, nil
		}
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-z.ended():
			return 0, errSessionEnded
		case <-changed:
		}
	}
}

// follow returns ctx, also cancelled (with cause errSessionEnded) when z
// ends, and the function that stops following; with a nil z, ctx itself.
func follow(ctx context.Context, z *zsession) (context.Context, func()) {
	if z == nil {
		return ctx, func() {}
	}
	fctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-z.done:
			cancel(errSessionEnded)
		case <-done:
		}
	}()
	return fctx, func() {
		close(done)
		cancel(context.Canceled)
	}
}
