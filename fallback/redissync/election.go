package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// Election elects one leader among its candidates on Redis. The leader is
// the holder of an exclusive lease on the name; candidates wait in arrival
// order; the term is the lease's fencing token. Every change of leader or
// value is published and recorded in a capped stream, so Observe misses
// none. It is safe for concurrent use.
type Election struct{ primitive }

var _ distsync.Election = (*Election)(nil)

// NewElection returns the Election called name on session s. It does no
// I/O. It fails like NewMutex.
func NewElection(s *Session, name string) (*Election, error) {
	q, err := redisq.NewElectionQueue(s, name)
	if err != nil {
		return nil, err
	}
	return &Election{primitive{q: q}}, nil
}

// NewElectionWithClient returns the Election called name on a new session
// of c, which the Election owns: Close closes it.
func NewElectionWithClient(ctx context.Context, c Client, name string, opts ...Option) (*Election, error) {
	p, err := open(ctx, c, opts, func(s *Session) (*redisq.Queue, error) { return redisq.NewElectionQueue(s, name) })
	if err != nil {
		return nil, err
	}
	return &Election{p}, nil
}

// Leadership is a held leadership: a *Lease whose Token is the term, and
// Proclaim.
type Leadership struct {
	*Lease
	q *redisq.Queue
}

var _ distsync.Leadership = (*Leadership)(nil)

// Proclaim changes the leader's value while leadership is held, in one
// script that checks the lease; observers see the new value. It fails with
// an error wrapping distsync.ErrLost or distsync.ErrReleased when
// leadership has ended (changing nothing), or distsync.ErrUnavailable.
func (l *Leadership) Proclaim(ctx context.Context, value []byte) error {
	return l.q.Proclaim(ctx, l.Lease, value)
}

// Campaign blocks until this candidate leads or ctx ends, and returns the
// *Leadership. Candidates are granted in arrival order. A failed or
// cancelled campaign leaves no candidate behind; its error wraps
// distsync.ErrNotAcquired and ctx.Err() when ctx ended, distsync.ErrLost
// when the candidate's entry was deleted or expired while it waited,
// distsync.ErrClosed or distsync.ErrUnavailable.
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	if value == nil {
		value = []byte{}
	}
	l, err := e.q.Acquire(ctx, redisq.Exclusive, value)
	if err != nil {
		return nil, err
	}
	return &Leadership{Lease: l, q: e.q}, nil
}

// Leader returns the current leader, or an error wrapping
// distsync.ErrNoLeader (or distsync.ErrUnavailable).
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	return e.q.Leader(ctx)
}

// Observe delivers the current state, then every change of leader or value
// and every "no leader", in order, until ctx ends or the session is closed;
// then the channel is closed. It wakes on the name's pub/sub channel, and
// when the leader's TTL runs out (a crashed leader); after a reconnect it
// delivers the changes it missed from the recorded history (the last ~256
// are kept; beyond that it resumes from the current state). While Redis is
// unreachable it retries with a backoff.
func (e *Election) Observe(ctx context.Context) <-chan distsync.Leader {
	return e.q.Observe(ctx)
}
