package distsynctest

import (
	"context"

	"github.com/distsync/distsync"
)

// memMutex is a Mutex on a Memory; as the write side of an RWMutex it
// enqueues write entries instead of exclusive ones.
type memMutex struct {
	s    *MemorySession
	name string
	mode distsync.Mode // ModeExclusive or ModeWrite
}

// memRWMutex is an RWMutex on a Memory.
type memRWMutex struct{ memMutex }

// Mutex returns the Mutex called name. It fails with ErrInvalidName for a
// name that breaks distsync.ValidateName.
func (s *MemorySession) Mutex(name string) (distsync.Mutex, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	return &memMutex{s: s, name: name, mode: distsync.ModeExclusive}, nil
}

// RWMutex returns the RWMutex called name, as Mutex does.
func (s *MemorySession) RWMutex(name string) (distsync.RWMutex, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	return &memRWMutex{memMutex{s: s, name: name, mode: distsync.ModeWrite}}, nil
}

// Lock waits behind every older entry of the name, as distsync.Mutex
// documents. On failure or cancellation its entry is gone.
func (m *memMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return m.lock(ctx, m.mode, false)
}

// TryLock takes the lock only if nobody holds or waits for it, else it
// fails with ErrWouldBlock and leaves nothing.
func (m *memMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return m.lock(ctx, m.mode, true)
}

// RLock waits only for older writers, as distsync.RWMutex documents.
func (m *memRWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	return m.lock(ctx, distsync.ModeRead, false)
}

// TryRLock takes a read lock only if no writer holds or waits.
func (m *memRWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	return m.lock(ctx, distsync.ModeRead, true)
}

func (m *memMutex) lock(ctx context.Context, mode distsync.Mode, try bool) (distsync.Lease, error) {
	e, err := m.s.acquire(ctx, request{name: m.name, mode: mode, weight: 1}, try)
	if err != nil {
		return nil, err
	}
	return e.lease, nil
}
