package distsynctest

import (
	"bytes"
	"context"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/observe"
)

// memElection is an Election on a Memory: candidates queue in arrival
// order and the oldest leads.
type memElection struct {
	s    *MemorySession
	name string
}

// Election returns the Election called name, as Mutex does.
func (s *MemorySession) Election(name string) (distsync.Election, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	return &memElection{s: s, name: name}, nil
}

// Campaign queues a candidate with value and waits until it leads. A
// candidate whose session expires meanwhile fails with ErrLost. On failure
// or cancellation its candidacy is gone.
func (el *memElection) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	r := request{name: el.name, mode: distsync.ModeExclusive, weight: 1, value: bytes.Clone(value)}
	e, err := el.s.acquire(ctx, r, false)
	if err != nil {
		return nil, err
	}
	return memLeadership{e.lease}, nil
}

// Leader returns the current leader, or an error wrapping ErrNoLeader.
func (el *memElection) Leader(ctx context.Context) (distsync.Leader, error) {
	m := el.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := el.s.usableLocked(ctx, el.name, "leader"); err != nil {
		return distsync.Leader{}, err
	}
	l := distsync.Leader{None: true}
	if q := m.names[el.name]; q != nil {
		l = q.leader()
	}
	if l.None {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "%q", el.name)
	}
	l.Time = time.Now()
	return l, nil
}

// leader is q's election state: its first entry if it holds, else none.
func (q *queue) leader() distsync.Leader {
	if len(q.entries) == 0 || !q.entries[0].held {
		return distsync.Leader{None: true}
	}
	e := q.entries[0]
	return distsync.Leader{Value: bytes.Clone(e.value), Term: e.token}
}

// publish queues q's election state for every observer when it changed.
// It never blocks: each observer has an unbounded queue of its own.
func (q *queue) publish() {
	l := q.leader()
	if observe.Same(l, q.last) {
		return
	}
	q.last = l
	for o := range q.observers {
		o.push(l)
	}
}

// observer is one Observe call: the states not yet delivered (guarded by
// Memory.mu) and a wake-up for its goroutine.
type observer struct {
	pending []distsync.Leader
	wake    chan struct{} // capacity 1
}

func (o *observer) push(l distsync.Leader) {
	l.Time = time.Now()
	o.pending = append(o.pending, l)
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Observe delivers the current state, then every change, in order, never
// skipping a leader; while the session is disconnected it delivers
// nothing, and afterwards what it missed. The channel is closed, and its
// goroutine ends, when ctx ends or the session is closed.
func (el *memElection) Observe(ctx context.Context) <-chan distsync.Leader {
	out := make(chan distsync.Leader)
	s, m := el.s, el.s.m
	m.mu.Lock()
	if s.closed || ctx.Err() != nil {
		m.mu.Unlock()
		close(out)
		return out
	}
	q := m.queueLocked(el.name)
	o := &observer{wake: make(chan struct{}, 1)}
	q.observers[o] = true
	o.push(q.last)
	m.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			m.mu.Lock()
			delete(q.observers, o)
			q.settle()
			m.mu.Unlock()
		}()
		for {
			select {
			case <-o.wake:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
			for {
				m.mu.Lock()
				var up chan struct{}
				if s.down {
					up = s.up
				}
				if up == nil && len(o.pending) == 0 {
					m.mu.Unlock()
					break
				}
				var next distsync.Leader
				if up == nil {
					next = o.pending[0]
					o.pending = o.pending[1:]
				}
				m.mu.Unlock()
				if up != nil {
					select {
					case <-up:
						continue
					case <-ctx.Done():
						return
					case <-s.done:
						return
					}
				}
				select {
				case out <- next:
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
		}
	}()
	return out
}
