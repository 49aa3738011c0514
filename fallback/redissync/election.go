package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// An Election elects one leader among its candidates on Redis, opened
// with Session.Election. The leader is the holder of an exclusive lease
// on the name; candidates wait in arrival order; the term is the lease's
// fencing token. Every change of leader or value is published and
// recorded in a capped stream, so Observe misses none. It is safe for
// concurrent use.
type Election struct{ q *redisq.Queue }

var _ distsync.Election = (*Election)(nil)

// Campaign blocks until this candidate leads or ctx ends, and returns a
// *Leadership. Candidates are granted in arrival order. A failed or
// cancelled campaign leaves no candidate behind. Its error wraps
// distsync.ErrNotAcquired and ctx.Err() when ctx ended, or
// distsync.ErrLost when the candidate's entry was deleted, expired or
// removed by ForceRelease while it waited (distsync.LostReason tells
// which). Otherwise it wraps distsync.ErrClosed, distsync.ErrDenied (at
// once) or distsync.ErrUnavailable.
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	if value == nil {
		value = []byte{}
	}
	l, err := e.q.Acquire(ctx, redisq.Exclusive, 1, value)
	if err != nil {
		return nil, err
	}
	return &Leadership{l: l, q: e.q}, nil
}

// Leader returns the current leader, or an error wrapping
// distsync.ErrNoLeader (or distsync.ErrClosed after Close,
// distsync.ErrDenied, distsync.ErrUnavailable).
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	return e.q.Leader(ctx)
}

// Observe delivers the current state, then every change of leader or value
// and every "no leader", in order, until ctx ends or the Session is
// closed; then the channel is closed. It wakes on the name's pub/sub
// channel, and when the leader's TTL runs out (a crashed leader). After a
// reconnect it delivers the changes it missed from the recorded history.
// The last ~256 are kept; beyond that it resumes from the current state.
// While Redis is unreachable it retries with a backoff. When Redis refuses
// the user (distsync.ErrDenied) the channel closes.
func (e *Election) Observe(ctx context.Context) <-chan distsync.Leader {
	return e.q.Observe(ctx)
}
