package etcdq

import (
	"context"

	"github.com/distsync/distsync"
)

// The constructors of the etcd primitive packages (mutex, rwmutex,
// semaphore, election) over a Queue, registered by their init functions.
// A Session opens its primitives through them, so that their dynamic types
// are the public ones (*mutex.Mutex, ...) while no public signature names
// an internal type. Package etcdsync imports the four packages, which
// registers them.
var (
	mutexOf     func(*Queue) distsync.Mutex
	rwmutexOf   func(*Queue) distsync.RWMutex
	semaphoreOf func(*Queue, int64) distsync.Semaphore
	electionOf  func(*Queue) distsync.Election
)

// RegisterMutex registers package mutex's constructor.
func RegisterMutex(f func(*Queue) distsync.Mutex) { mutexOf = f }

// RegisterRWMutex registers package rwmutex's constructor.
func RegisterRWMutex(f func(*Queue) distsync.RWMutex) { rwmutexOf = f }

// RegisterSemaphore registers package semaphore's constructor.
func RegisterSemaphore(f func(*Queue, int64) distsync.Semaphore) { semaphoreOf = f }

// RegisterElection registers package election's constructor.
func RegisterElection(f func(*Queue) distsync.Election) { electionOf = f }

// open returns the queue of name for a primitive opened from s.
func (s *Session) open(name string, limited bool) (*Queue, error) {
	if s.Closed() {
		return nil, errClosed()
	}
	if limited {
		return NewSemaphoreQueue(s, name)
	}
	return NewQueue(s, name)
}

// Mutex returns the Mutex called name on s. It does no I/O.
func (s *Session) Mutex(name string) (distsync.Mutex, error) {
	q, err := s.open(name, false)
	if err != nil {
		return nil, err
	}
	return mutexOf(q), nil
}

// RWMutex returns the RWMutex called name on s. It does no I/O.
func (s *Session) RWMutex(name string) (distsync.RWMutex, error) {
	q, err := s.open(name, false)
	if err != nil {
		return nil, err
	}
	return rwmutexOf(q), nil
}

// Semaphore returns the Semaphore called name with limit on s, after
// checking limit against the stored one under ctx.
func (s *Session) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	if err := CheckLimitValue(limit); err != nil {
		return nil, err
	}
	q, err := s.open(name, true)
	if err != nil {
		return nil, err
	}
	if err := q.CheckLimit(ctx, limit); err != nil {
		return nil, err
	}
	return semaphoreOf(q, limit), nil
}

// Election returns the Election called name on s. It does no I/O.
func (s *Session) Election(name string) (distsync.Election, error) {
	q, err := s.open(name, false)
	if err != nil {
		return nil, err
	}
	return electionOf(q), nil
}

// CheckLimitValue fails with ErrInvalidConfig for a semaphore limit below 1.
func CheckLimitValue(limit int64) error {
	if limit < 1 {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d, want at least 1", limit)
	}
	return nil
}

// sessionOf finds the Session under a *etcdsync.Session; package etcdsync
// registers it.
var sessionOf func(distsync.Session) *Session

// RegisterSessionOf registers package etcdsync's accessor of its Session.
func RegisterSessionOf(f func(distsync.Session) *Session) { sessionOf = f }

// leaseOf finds the Lease under a lease of packages mutex, rwmutex,
// semaphore and election; each registers its own at init.
var leaseOf []func(distsync.Lease) *Lease

// RegisterLeaseOf registers a primitive package's accessor of its leases'
// engine Lease.
func RegisterLeaseOf(f func(distsync.Lease) *Lease) { leaseOf = append(leaseOf, f) }

// LeaseOf returns the Lease under l, a lease of an etcd primitive, or nil:
// the test kit deletes its key from outside through it.
func LeaseOf(l distsync.Lease) *Lease {
	for _, f := range leaseOf {
		if el := f(l); el != nil {
			return el
		}
	}
	return nil
}

// Of returns the Session under s, a *etcdsync.Session, or nil: tests reach
// its current lease through it (CurrentLease, Orphan) without a public
// method.
func Of(s distsync.Session) *Session {
	if sessionOf == nil {
		return nil
	}
	return sessionOf(s)
}
