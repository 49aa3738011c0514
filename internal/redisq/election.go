package redisq

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/observe"
)

// state is the reply of the "leader" operation.
type state struct {
	leader distsync.Leader
	ttl    time.Duration // until the leader expires; -1 with no leader
	last   string        // the history's last entry
	events []event       // history entries after the cursor
}

type event struct {
	id     string
	leader distsync.Leader
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

func (q *Queue) state(ctx context.Context, cursor string) (state, error) {
	r, err := runCtx(ctx, q.s.c, leaderScript, q.k, "", 0, cursor)
	if err != nil {
		return state{}, failure(err, "read leader of %q", q.name)
	}
	st := state{leader: distsync.Leader{None: true, Time: time.Now()}, ttl: -1}
	if len(r.extra) < 3 {
		return state{}, distsync.Errorf(distsync.ErrUnavailable, nil, "malformed leader reply")
	}
	if r.status == 1 {
		st.leader = distsync.Leader{Value: []byte(toString(r.extra[0])), Term: uint64(r.n), Time: st.leader.Time}
		ms, _ := r.extra[1].(int64)
		st.ttl = time.Duration(ms) * time.Millisecond
	}
	st.last = toString(r.extra[2])
	rest := r.extra[3:]
	for i := 0; i+2 < len(rest); i += 3 {
		e := event{id: toString(rest[i]), leader: distsync.Leader{Time: st.leader.Time}}
		term, _ := strconv.ParseUint(toString(rest[i+1]), 10, 64)
		if term == 0 {
			e.leader.None = true
		} else {
			e.leader.Term, e.leader.Value = term, []byte(toString(rest[i+2]))
		}
		st.events = append(st.events, e)
	}
	return st, nil
}

// Leader returns the current leader, or an error wrapping ErrNoLeader,
// ErrClosed, ErrDenied or ErrUnavailable.
func (q *Queue) Leader(ctx context.Context) (distsync.Leader, error) {
	if q.s.Closed() {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	st, err := q.state(ctx, "")
	if err != nil {
		return distsync.Leader{}, err
	}
	if st.leader.None {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "%q", q.name)
	}
	return st.leader, nil
}

// Proclaim sets the value of l, a leadership of q, while it is held.
func (q *Queue) Proclaim(ctx context.Context, l *Lease, value []byte) error {
	if err := l.Err(); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	r, err := runCtx(ctx, q.s.c, proclaimScript, q.k, l.member, 0, value)
	if err != nil {
		return failure(err, "proclaim on %q", q.name)
	}
	if r.status != 1 {
		return goneError(r.n, "leadership", q.name)
	}
	return nil
}

// Observe delivers the current state and then every recorded change, in
// order. It wakes on the name's pub/sub channel (and on a resubscription
// after a reconnect), and also when the leader's TTL runs out, to report
// a crashed leader; each wake reads the history from its last entry, so a
// change missed by pub/sub is not missed by the observer. If the history
// was trimmed past its entry (more than ~256 changes while it was away),
// it resumes from the current state.
func (q *Queue) Observe(ctx context.Context) <-chan distsync.Leader {
	out := make(chan distsync.Leader)
	// Subscribe and read the state before returning, so that the first
	// observation is the state when Observe was called; if Redis does not
	// answer, the goroutine keeps trying.
	sb, _ := q.s.hub.join(ctx, q.k.Channel)
	var (
		first    state
		firstErr = errors.New("not read")
	)
	if sb != nil {
		first, firstErr = q.state(ctx, "")
	}
	go func() {
		// The channel closes before leaving the name's channel, which may
		// wait for a pub/sub connection being dialled.
		closeOut := sync.OnceFunc(func() { close(out) })
		defer closeOut()
		var (
			err   error
			delay backoff.Backoff
		)
		// retry waits before trying again after err; a refusal
		// (ErrDenied) is never retried: the channel closes.
		retry := func(err error) bool {
			if errors.Is(err, distsync.ErrDenied) {
				return false
			}
			if q.s.rec.Enabled(ctx, slog.LevelDebug) {
				q.xt.Debug(ctx, "observe failed, retrying", slog.Any("error", err))
			}
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(q.s.hub.closingCtx, cancel)
			defer stop()
			return delay.Sleep(sctx)
		}
		if firstErr != nil && errors.Is(firstErr, distsync.ErrDenied) {
			if sb != nil {
				q.s.hub.leave(sb)
			}
			return
		}
		for sb == nil {
			if sb, err = q.s.hub.join(ctx, q.k.Channel); err == nil {
				break
			}
			if !retry(err) {
				return
			}
		}
		defer func() {
			closeOut()
			q.s.hub.leave(sb)
		}()
		var (
			last   observe.Dedupe
			cursor string
		)
		emit := func(l distsync.Leader) bool {
			if last.Repeats(l) {
				return true
			}
			select {
			case out <- l:
				last.Delivered(l)
				return true
			case <-ctx.Done():
				return false
			}
		}
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		for {
			st, err := first, firstErr
			if firstErr != nil || cursor != "" {
				st, err = q.state(ctx, cursor)
			}
			firstErr = errors.New("read")
			// With no leader only a message can change the state; the
			// long re-read guards against a silently dead connection.
			next := time.Minute
			switch {
			case err != nil:
				if ctx.Err() != nil || !retry(err) {
					return
				}
				continue
			case cursor == "" || (len(st.events) == 0 && st.last != cursor):
				// First read, or the history moved past our entry.
				if !emit(st.leader) {
					return
				}
			default:
				for _, e := range st.events {
					if !emit(e.leader) {
						return
					}
				}
			}
			delay.Reset()
			cursor = st.last
			if st.ttl >= 0 {
				next = st.ttl + time.Millisecond
			}
			timer.Reset(next)
			select {
			case <-ctx.Done():
				return
			case <-q.s.hub.closing:
				return
			case <-q.s.hub.deniedC:
				return
			case <-sb.wake:
				if !timer.Stop() {
					<-timer.C
				}
			case <-timer.C:
			}
		}
	}()
	return out
}
