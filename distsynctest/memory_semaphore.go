package distsynctest

import (
	"context"

	"github.com/distsync/distsync"
)

// memSemaphore is a weighted Semaphore on a Memory. Its limit is guarded
// by Memory.mu.
type memSemaphore struct {
	s     *MemorySession
	name  string
	limit int64
}

// Semaphore returns the Semaphore called name with limit. It fails with
// ErrInvalidConfig for a limit below 1, ErrLimitMismatch when the
// semaphore is in use with another limit, ErrInvalidName, ErrClosed, or
// ErrUnavailable (disconnected, or ctx ended).
func (s *MemorySession) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore %q: limit %d below 1", name, limit)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.usableLocked(ctx, name, "semaphore"); err != nil {
		return nil, err
	}
	sem := &memSemaphore{s: s, name: name, limit: limit}
	if q := s.m.names[name]; q != nil {
		if err := sem.matchLocked(q); err != nil {
			return nil, err
		}
	}
	return sem, nil
}

// matchLocked fails with ErrLimitMismatch when q stores another limit.
func (sem *memSemaphore) matchLocked(q *queue) error {
	if q.limit != 0 && q.limit != sem.limit {
		return distsync.Errorf(distsync.ErrLimitMismatch, nil, "semaphore %q: limit %d, stored %d", sem.name, sem.limit, q.limit)
	}
	return nil
}

// Acquire is AcquireN(ctx, 1).
func (sem *memSemaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return sem.acquire(ctx, 1, false)
}

// TryAcquire is TryAcquireN(ctx, 1).
func (sem *memSemaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return sem.acquire(ctx, 1, true)
}

// AcquireN waits, in arrival order, until n permits fit under the limit;
// a waiting AcquireN holds back later ones. A SetLimit through another
// Semaphore value makes it fail with ErrLimitMismatch. On failure or
// cancellation its entry is gone.
func (sem *memSemaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return sem.acquire(ctx, n, false)
}

// TryAcquireN takes n permits only if they are free and nobody waits, else
// it fails with ErrWouldBlock and leaves nothing.
func (sem *memSemaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return sem.acquire(ctx, n, true)
}

func (sem *memSemaphore) acquire(ctx context.Context, n int64, try bool) (distsync.Lease, error) {
	if limit := sem.Limit(); n < 1 || n > limit {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore %q: %d permits, want 1 to %d", sem.name, n, limit)
	}
	e, err := sem.s.acquire(ctx, request{name: sem.name, mode: distsync.ModePermit, weight: n, sem: sem, check: sem.matchLocked}, try)
	if err != nil {
		return nil, err
	}
	return e.lease, nil
}

// Limit returns the limit this Semaphore acquires under.
func (sem *memSemaphore) Limit() int64 {
	sem.s.m.mu.Lock()
	defer sem.s.m.mu.Unlock()
	return sem.limit
}

// SetLimit changes this Semaphore's limit and, if the semaphore is in use,
// the stored one. Held permits are kept. Waiting acquisitions of other
// Semaphore values with another limit then fail with ErrLimitMismatch,
// and waiting ones of more permits than the new limit with
// ErrInvalidConfig.
func (sem *memSemaphore) SetLimit(ctx context.Context, limit int64) error {
	if limit < 1 {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore %q: limit %d below 1", sem.name, limit)
	}
	m := sem.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := sem.s.usableLocked(ctx, sem.name, "set limit"); err != nil {
		return err
	}
	sem.limit = limit
	q := m.names[sem.name]
	if q == nil || q.limit == 0 {
		return nil
	}
	q.limit = limit
	for _, e := range append([]*entry(nil), q.entries...) {
		switch {
		case e.held || e.mode != distsync.ModePermit:
		case e.sem.limit != limit:
			q.failWaiter(e, distsync.Errorf(distsync.ErrLimitMismatch, nil, "semaphore %q: limit %d, stored %d", sem.name, e.sem.limit, limit))
		case e.weight > limit:
			q.failWaiter(e, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore %q: %d permits, above the new limit %d", sem.name, e.weight, limit))
		}
	}
	q.settle()
	return nil
}
