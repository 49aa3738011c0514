package distsynctest

import (
	"context"
	"errors"
	"fmt"

	"github.com/distsync/distsync"
)

// MemorySession is a Session on a Memory, as one process's client would
// have it. It implements distsync.Session; see Memory for what it keeps.
// Open one with Memory.NewSession: the zero value is not usable.
type MemorySession struct {
	m        *Memory
	identity string
	done     chan struct{} // closed by Close

	// Guarded by m.mu.
	mine   map[*entry]bool // this session's entries, held or waiting
	closed bool
	down   bool          // between Disconnect and Reconnect
	up     chan struct{} // closed by Reconnect
}

var _ distsync.Session = (*MemorySession)(nil)

// errRequeue makes a waiter whose entry was withdrawn by Disconnect enqueue
// again once its session is reconnected.
var errRequeue = errors.New("distsynctest: requeue")

// NewSession opens a Session on m whose holder identity is identity (""
// for distsync.DefaultIdentity()). It fails with an error wrapping
// distsync.ErrInvalidConfig for an identity that breaks
// distsync.ValidateIdentity.
func (m *Memory) NewSession(identity string) (*MemorySession, error) {
	if identity == "" {
		identity = distsync.DefaultIdentity()
	}
	if err := distsync.ValidateIdentity(identity); err != nil {
		return nil, err
	}
	return &MemorySession{m: m, identity: identity, done: make(chan struct{}), mine: map[*entry]bool{}}, nil
}

// Close ends the Session: its held leases end as lost (LossSessionEnded),
// its waiting acquisitions fail with ErrClosed, its observers' channels
// close, and later calls fail with ErrClosed. Close is idempotent and
// returns nil.
func (s *MemorySession) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	s.endAllLocked(distsync.Lost(distsync.LossSessionEnded, nil, "memory session closed"),
		distsync.Errorf(distsync.ErrClosed, nil, "memory session closed while waiting"))
	return nil
}

// Disconnect cuts the session off, as a lost connection would: its held
// leases end with ErrLost (LossDisconnected) and their entries are removed,
// so the next waiters are served. Its waiting acquisitions leave the queue
// and keep waiting, bounded by their context, to enqueue again after
// Reconnect; its observers deliver nothing until then (they deliver what
// they missed afterwards). Other calls fail with ErrUnavailable.
func (s *MemorySession) Disconnect() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed || s.down {
		return
	}
	s.down, s.up = true, make(chan struct{})
	s.endAllLocked(distsync.Lost(distsync.LossDisconnected, nil, "memory session disconnected"), errRequeue)
}

// Reconnect undoes Disconnect: waiting acquisitions enqueue again, at the
// end of their queues, and observers catch up.
func (s *MemorySession) Reconnect() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.down {
		s.down = false
		close(s.up)
	}
}

// expireSession ends the backend session underneath s, as an etcd lease
// revoked: its leases end with LossSessionEnded and its waiters fail the
// same way. s goes on: later acquisitions work again.
func (s *MemorySession) expireSession() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	lost := distsync.Lost(distsync.LossSessionEnded, nil, "memory session expired")
	s.endAllLocked(lost, distsync.Lost(distsync.LossSessionEnded, nil, "memory session expired while waiting"))
}

// endAllLocked ends every entry of s, as queue.end does.
func (s *MemorySession) endAllLocked(lost, waiting error) {
	touched := map[*queue]bool{}
	for e := range s.mine {
		e.q.end(e, lost, waiting)
		touched[e.q] = true
	}
	for q := range touched {
		q.settle()
	}
}

// entries lists the entries of name, held or waiting, as "name/token".
func (s *MemorySession) entries(name string) []string {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	var out []string
	if q := s.m.names[name]; q != nil {
		for _, e := range q.entries {
			out = append(out, fmt.Sprintf("%s/%d", name, e.token))
		}
	}
	return out
}

// usableLocked returns the error of a call on name that does not wait:
// ErrClosed after Close, ErrDenied for a name Deny refuses, ErrUnavailable
// while disconnected or once ctx ended.
func (s *MemorySession) usableLocked(ctx context.Context, name, what string) error {
	switch {
	case s.closed:
		return distsync.Errorf(distsync.ErrClosed, nil, "%s", what)
	case s.m.deniedLocked(name):
		return distsync.Errorf(distsync.ErrDenied, nil, "%s: %q is denied", what, name)
	case s.down:
		return distsync.Errorf(distsync.ErrUnavailable, nil, "%s: memory session disconnected", what)
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrUnavailable, context.Cause(ctx), "%s", what)
	}
	return nil
}

// Inspect reads the holders and waiters of name in queue order, with the
// limit of a semaphore in use. TTL is zero: nothing expires by time.
func (s *MemorySession) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	if err := distsync.ValidateName(name); err != nil {
		return distsync.Status{}, err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.usableLocked(ctx, name, "inspect"); err != nil {
		return distsync.Status{}, err
	}
	st := distsync.Status{Name: name}
	q := s.m.names[name]
	if q == nil {
		return st, nil
	}
	st.Limit = q.limit
	for _, e := range q.entries {
		h := distsync.Holder{Token: e.token, Identity: e.s.identity, Mode: e.mode, Weight: e.weight, Since: e.since}
		if e.held {
			st.Holders = append(st.Holders, h)
		} else {
			st.Waiters = append(st.Waiters, h)
		}
	}
	return st, nil
}

// ForceRelease removes the holder or waiter of name whose token is token:
// a holder's lease ends, and a waiter's acquisition fails, with ErrLost
// (LossForceReleased), and the next waiter is served. It fails with
// ErrNotFound for an unknown token.
func (s *MemorySession) ForceRelease(ctx context.Context, name string, token uint64) error {
	if err := distsync.ValidateName(name); err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.usableLocked(ctx, name, "force release"); err != nil {
		return err
	}
	if q := s.m.names[name]; q != nil {
		for _, e := range q.entries {
			if e.token == token {
				lost := distsync.Lost(distsync.LossForceReleased, nil, "%q: token %d released by force", name, token)
				q.end(e, lost, lost)
				q.settle()
				return nil
			}
		}
	}
	return distsync.Errorf(distsync.ErrNotFound, nil, "%q has no holder or waiter with token %d", name, token)
}

// request is what an acquisition enqueues: its mode and weight, and what to
// check first.
type request struct {
	name   string
	mode   distsync.Mode
	weight int64
	value  []byte               // an election candidate's value
	sem    *memSemaphore        // for permits
	check  func(q *queue) error // run under the lock before enqueueing; may be nil
}

// acquire enqueues r and waits until it holds, it fails, or ctx ends; try
// gives up at once instead of waiting. On failure nothing of r is left.
func (s *MemorySession) acquire(ctx context.Context, r request, try bool) (*entry, error) {
	notAcquired := func() error {
		return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "%q", r.name)
	}
	m := s.m
	m.mu.Lock()
	for {
		if ctx.Err() != nil {
			m.mu.Unlock()
			return nil, notAcquired()
		}
		if s.closed {
			m.mu.Unlock()
			return nil, distsync.Errorf(distsync.ErrClosed, nil, "%q", r.name)
		}
		if s.down {
			up := s.up
			m.mu.Unlock()
			if try {
				return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "%q: memory session disconnected", r.name)
			}
			select {
			case <-up:
			case <-s.done:
			case <-ctx.Done():
				return nil, notAcquired()
			}
			m.mu.Lock()
			continue
		}
		q := m.queueLocked(r.name)
		if m.deniedLocked(r.name) {
			q.settle()
			m.mu.Unlock()
			return nil, distsync.Errorf(distsync.ErrDenied, nil, "%q is denied", r.name)
		}
		if r.check != nil {
			if err := r.check(q); err != nil {
				q.settle()
				m.mu.Unlock()
				return nil, err
			}
		}
		e := q.push(s, r.mode, r.weight)
		e.value, e.sem = r.value, r.sem
		if r.mode == distsync.ModePermit && q.limit == 0 {
			q.limit = r.sem.limit
		}
		q.settle()
		if e.held {
			m.mu.Unlock()
			return e, nil
		}
		if try {
			q.remove(e)
			q.settle()
			m.mu.Unlock()
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q", r.name)
		}
		m.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
		}
		m.mu.Lock()
		switch {
		case e.held: // granted, perhaps as ctx ended: the caller owns it
			m.mu.Unlock()
			return e, nil
		case e.fail == errRequeue:
			continue
		case e.fail != nil:
			m.mu.Unlock()
			return nil, e.fail
		}
		q.remove(e)
		q.settle()
		m.mu.Unlock()
		return nil, notAcquired()
	}
}
