package distsynctest

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
)

// Memory is an in-memory stand-in for a backend server, for fast unit tests
// of code written against distsync's contract. Sessions opened on one
// Memory share its state as the clients of one etcd cluster would; it
// serves one process only and keeps nothing once dropped. Nothing expires
// with time: a lease ends only by Release, Close, ForceRelease, or the
// kit's Expire and DeleteHolder (and Disconnect). Holders and waiters are
// served as on etcd, the reference backend: in arrival order, with
// strictly increasing fencing tokens.
//
// A Memory is safe for concurrent use. Its zero value is ready to use.
type Memory struct {
	mu    sync.Mutex
	names map[string]*queue // the names with entries or observers
	last  uint64            // the last token issued, Memory-wide
	deny  []string          // the name prefixes Deny refuses
}

// Deny makes every call on a name that starts with prefix fail at once
// with an error wrapping distsync.ErrDenied, on every Session of m, as a
// backend refuses a user whose permissions do not cover the name: a test
// sees how its code takes a permanent failure. Deny("") refuses every
// name. Entries already held or waiting are left as they are.
func (m *Memory) Deny(prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deny = append(m.deny, prefix)
}

// deniedLocked reports whether Deny refuses name.
func (m *Memory) deniedLocked(name string) bool {
	for _, p := range m.deny {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// queue is the state of one name: its entries in arrival order, the
// semaphore limit stored while it is in use, and its election observers.
// Every field is guarded by Memory.mu.
type queue struct {
	m         *Memory
	name      string
	entries   []*entry
	limit     int64 // stored semaphore limit; 0 when no permit entry is queued
	observers map[*observer]bool
	last      distsync.Leader // the election state observers saw last
}

// entry is one acquisition, held or waiting. Its fields are guarded by
// Memory.mu; ready is closed once, when it is granted or fails.
type entry struct {
	q      *queue
	s      *MemorySession
	token  uint64
	mode   distsync.Mode
	weight int64
	sem    *memSemaphore // the Semaphore acquiring, for permits
	value  []byte        // the campaign or proclaimed value
	since  time.Time
	held   bool
	gone   bool  // removed from its queue
	fail   error // why a waiter failed; errRequeue to enqueue again
	ready  chan struct{}
	lease  *memLease
}

// queueLocked returns the queue of name, created if needed.
func (m *Memory) queueLocked(name string) *queue {
	if m.names == nil {
		m.names = map[string]*queue{}
	}
	q := m.names[name]
	if q == nil {
		q = &queue{m: m, name: name, observers: map[*observer]bool{}, last: distsync.Leader{None: true}}
		m.names[name] = q
	}
	return q
}

// push enqueues a new entry of s at the end of q.
func (q *queue) push(s *MemorySession, mode distsync.Mode, weight int64) *entry {
	q.m.last++
	e := &entry{q: q, s: s, token: q.m.last, mode: mode, weight: weight, since: time.Now(), ready: make(chan struct{})}
	e.lease = &memLease{e: e, token: e.token}
	q.entries = append(q.entries, e)
	s.mine[e] = true
	return e
}

// remove takes e out of its queue; settle must follow.
func (q *queue) remove(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	q.entries = slices.DeleteFunc(q.entries, func(x *entry) bool { return x == e })
	delete(e.s.mine, e)
}

// failWaiter removes the waiting e and makes its acquisition return err.
func (q *queue) failWaiter(e *entry, err error) {
	q.remove(e)
	e.fail = err
	close(e.ready)
}

// end removes e, held or waiting: a holder's lease is lost with lost, a
// waiter's acquisition fails with waiting. settle must follow.
func (q *queue) end(e *entry, lost, waiting error) {
	if e.held {
		q.remove(e)
		e.lease.Lose(lost)
		return
	}
	q.failWaiter(e, waiting)
}

// grantable reports whether the entry at index i may hold: exclusive and
// write entries when first, readers behind no writer, permits behind
// holders only and within the limit.
func (q *queue) grantable(i int) bool {
	e := q.entries[i]
	switch e.mode {
	case distsync.ModeRead:
		for _, x := range q.entries[:i] {
			if x.mode != distsync.ModeRead {
				return false
			}
		}
		return true
	case distsync.ModePermit:
		sum := e.weight
		for _, x := range q.entries[:i] {
			if !x.held {
				return false
			}
			sum += x.weight
		}
		return sum <= q.limit
	default:
		return i == 0
	}
}

// settle grants every entry that may now hold, forgets the semaphore limit
// of an idle name, tells observers of a new election state, and drops an
// idle queue. Every change of q ends with it.
func (q *queue) settle() {
	for i, e := range q.entries {
		if !e.held && q.grantable(i) {
			e.held = true
			close(e.ready)
		}
	}
	if !slices.ContainsFunc(q.entries, func(e *entry) bool { return e.mode == distsync.ModePermit }) {
		q.limit = 0
	}
	q.publish()
	if len(q.entries) == 0 && len(q.observers) == 0 {
		delete(q.m.names, q.name)
	}
}
