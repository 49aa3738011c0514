package distsynctest

import (
	"bytes"
	"context"
	"sync"

	"github.com/distsync/distsync"
)

// everyoneLeads is the control of the leader checks: an "election" in
// which Campaign returns at once, so every candidate leads at the same
// time. It reports each campaign and proclamation to its observers as the
// new leader, and "no leader" when nobody holds leadership.
type everyoneLeads struct {
	mu   sync.Mutex
	term uint64
	live int
	cur  distsync.Leader
	subs map[chan distsync.Leader]bool
}

func newEveryoneLeads() *everyoneLeads {
	return &everyoneLeads{cur: distsync.Leader{None: true}, subs: map[chan distsync.Leader]bool{}}
}

// set publishes a state to every leaderObserver; e.mu is held. Observer channels
// are buffered generously: the control is small.
func (e *everyoneLeads) set(l distsync.Leader) {
	e.cur = l
	for ch := range e.subs {
		ch <- l
	}
}

func (e *everyoneLeads) Campaign(_ context.Context, v []byte) (distsync.Leadership, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term++
	e.live++
	e.set(distsync.Leader{Term: e.term, Value: bytes.Clone(v)})
	return &fakeLeadership{e: e, term: e.term, done: make(chan struct{})}, nil
}

func (e *everyoneLeads) Leader(context.Context) (distsync.Leader, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur.None {
		return distsync.Leader{}, distsync.ErrNoLeader
	}
	return e.cur, nil
}

func (e *everyoneLeads) Observe(ctx context.Context) <-chan distsync.Leader {
	in := make(chan distsync.Leader, 1000)
	out := make(chan distsync.Leader)
	e.mu.Lock()
	e.subs[in] = true
	in <- e.cur
	e.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			e.mu.Lock()
			delete(e.subs, in)
			e.mu.Unlock()
		}()
		for {
			select {
			case l := <-in:
				select {
				case out <- l:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

type fakeLeadership struct {
	e        *everyoneLeads
	term     uint64
	done     chan struct{}
	released bool
}

func (l *fakeLeadership) Token() uint64         { return l.term }
func (l *fakeLeadership) Done() <-chan struct{} { return l.done }
func (l *fakeLeadership) Err() error            { return nil }
func (l *fakeLeadership) Release(context.Context) error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	if !l.released {
		l.released = true
		close(l.done)
		if l.e.live--; l.e.live == 0 {
			l.e.set(distsync.Leader{None: true})
		}
	}
	return nil
}
func (l *fakeLeadership) Proclaim(_ context.Context, v []byte) error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	l.e.set(distsync.Leader{Term: l.term, Value: bytes.Clone(v)})
	return nil
}
